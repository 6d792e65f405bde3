"""The drift -> retraining loop, without a running Airflow: both DAGs, the asset wiring, the verdict branch,
the monitor task's command, the asset event's extra and the trigger record of an asset-triggered run."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from mlops.orchestration.assets import DRIFT_ASSET, NEW_LABELS_ASSET
from mlops.orchestration.runs import TRIGGER_FILE, monitoring_run_dir, record, run_dir
from tests.helpers import ROOT, project_env

DAGS_PROBE = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag('dags')
monitoring, lifecycle = bag.dags.get('monitoring'), bag.dags.get('lifecycle')
params = monitoring.params
refused = []
for value in ('', 3):
    try:
        params.update({'current': value})
        params.validate()
    except Exception:
        refused.append(value)
print(json.dumps({
    'errors': {k: str(v) for k, v in bag.import_errors.items()},
    'schedule': monitoring.schedule, 'catchup': monitoring.catchup, 'max_active_runs': monitoring.max_active_runs,
    'tasks': {t.task_id: sorted(t.downstream_task_ids) for t in monitoring.tasks},
    'outlets': {t.task_id: [a.uri for a in t.outlets] for t in monitoring.tasks},
    'params': {name: monitoring.params.get_param(name).value for name in monitoring.params},
    'refused': refused,
    'lifecycle_schedule': [a.uri for a in lifecycle.timetable.asset_condition.objects],
    'lifecycle_condition': type(lifecycle.timetable.asset_condition).__name__,
    'lifecycle_run_types': str(type(lifecycle.timetable).__name__),
    'lifecycle_cron': getattr(getattr(lifecycle.timetable, 'timetable', None), 'expression', None),
}))
"""


def probe_dags(tmp_path: Path, project: Path | None = None) -> dict:
    env = project_env(ROOT) | {"AIRFLOW_HOME": str(tmp_path / "airflow-home")}
    if project is not None:
        env["MLOPS_PROJECT_DIR"] = str(project)
    result = subprocess.run([sys.executable, "-c", DAGS_PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # parses the DAGs in a fresh interpreter (seconds)
def test_both_dags_import_and_are_wired_through_the_drift_and_new_labels_assets(tmp_path, repo_params):
    report = probe_dags(tmp_path)
    assert report["errors"] == {}
    assert report["schedule"] == repo_params["monitor"]["schedule"]
    assert report["catchup"] is False and report["max_active_runs"] == 1
    assert report["tasks"] == {"monitor": ["drift_detected"], "drift_detected": ["announce_drift"],
                               "announce_drift": [], "new_labels": ["announce_new_labels"],
                               "announce_new_labels": []}
    assert report["outlets"] == {"monitor": [], "drift_detected": [], "announce_drift": [DRIFT_ASSET.uri],
                                 "new_labels": [], "announce_new_labels": [NEW_LABELS_ASSET.uri]}
    assert report["params"] == {"current": None}
    assert report["refused"] == ["", 3]
    assert report["lifecycle_schedule"] == [DRIFT_ASSET.uri, NEW_LABELS_ASSET.uri]
    assert report["lifecycle_condition"] == "AssetAny"  # either asset's event starts a run
    assert report["lifecycle_run_types"] == "AssetTriggeredTimetable"  # loop.schedule is null: no clock


@pytest.mark.slow  # parses the DAGs in a fresh interpreter (seconds)
def test_monitoring_schedule_comes_from_params(tmp_path, repo_params):
    project = tmp_path / "project"
    project.mkdir()
    (project / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    for schedule, expected in ((None, None), ("*/15 * * * *", "*/15 * * * *")):
        repo_params["monitor"]["schedule"] = schedule
        (project / "params.yaml").write_text(yaml.safe_dump(repo_params, sort_keys=False))
        report = probe_dags(tmp_path, project)
        assert report["errors"] == {} and report["schedule"] == expected


@pytest.mark.slow  # parses the DAGs in a fresh interpreter (seconds)
def test_loop_schedule_adds_a_clock_to_the_lifecycles_assets(tmp_path, repo_params):
    # given a project whose params.yaml sets loop.schedule
    project = tmp_path / "project"
    project.mkdir()
    (project / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    repo_params.setdefault("loop", {})["schedule"] = "0 3 * * 1"
    (project / "params.yaml").write_text(yaml.safe_dump(repo_params, sort_keys=False))
    # when the DAGs are parsed
    report = probe_dags(tmp_path, project)
    # then the lifecycle runs on either asset or on that cron schedule
    assert report["errors"] == {}
    assert report["lifecycle_run_types"] == "AssetOrTimeSchedule" and report["lifecycle_cron"] == "0 3 * * 1"
    assert report["lifecycle_schedule"] == [DRIFT_ASSET.uri, NEW_LABELS_ASSET.uri]


def write_summary(project: Path, run_id: str, summary: dict) -> Path:
    folder = monitoring_run_dir(project, run_id)
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "report.html").write_text("<html></html>")
    return folder


SIGNALS = {"text_length": {"score": 0.42, "threshold": 0.1, "drifted": True},
           "prediction": {"score": 0.03, "threshold": 0.1, "drifted": False},
           "confidence": {"score": 0.2, "threshold": 0.1, "drifted": True}}


@pytest.mark.parametrize(("summary", "expected"), [
    ({"status": "drift", "drift": True, "signals": SIGNALS}, True),
    ({"status": "no_drift", "drift": False, "signals": SIGNALS}, False),
    ({"status": "insufficient_data", "drift": False, "signals": {}}, False),
    ({"drift": True, "signals": SIGNALS}, True),  # a summary from before `status` existed
    ({"drift": False, "signals": SIGNALS}, False),
])
def test_drift_detected_lets_only_drift_through(tmp_path, capsys, summary, expected):
    from mlops.orchestration.airflow_tasks import drift_detected

    write_summary(tmp_path, "scheduled__2026-11-22T10:00:00+00:00", summary)
    assert drift_detected(str(tmp_path), "scheduled__2026-11-22T10:00:00+00:00") is expected
    out = capsys.readouterr().out
    if summary["signals"]:
        assert "text_length: score 0.42 (threshold 0.1) DRIFTED" in out and "prediction: score 0.03" in out
    if expected:
        assert "DRIFT" in out and "drifted: text_length, confidence" in out
    elif summary.get("status") == "insufficient_data":
        assert "insufficient data" in out


def test_drift_detected_fails_on_a_missing_or_unknown_verdict(tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    from mlops.orchestration.airflow_tasks import drift_detected

    with pytest.raises(AirflowFailException, match="wrote no summary"):
        drift_detected(str(tmp_path), "r0")
    write_summary(tmp_path, "r1", {"status": "maybe"})
    with pytest.raises(AirflowFailException, match="status 'maybe'"):
        drift_detected(str(tmp_path), "r1")


def test_announce_drift_sets_the_asset_events_extra(tmp_path):
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from mlops.orchestration.airflow_tasks import announce_drift

    run_id = "manual__2026-11-22T10:00:00+00:00"
    folder = write_summary(tmp_path, run_id, {"status": "drift", "drift": True, "signals": SIGNALS})
    events = OutletEventAccessors()
    extra = announce_drift(str(tmp_path), run_id, outlet_events=events)
    assert events[DRIFT_ASSET].extra == extra == {
        "report": str(folder.resolve() / "report.html"), "summary": str(folder.resolve() / "summary.json"),
        "drifted": ["confidence", "text_length"], "monitoring_run_id": run_id, "reasons": ["drift"]}
    assert Path(extra["report"]).is_absolute()


BREACH = {"model_version": "text-classifier:v1", "labelled": 200, "accuracy": 0.5, "accuracy_ci": [0.4314, 0.5686],
          "min_accuracy": 0.8, "reason": "live accuracy of text-classifier:v1 is 0.5 (95% CI 0.4314-0.5686, 200 "
                                        "labels): even its upper bound is below gate.min_accuracy 0.8"}


@pytest.mark.parametrize("status", ["no_drift", "insufficient_data", "drift"])
def test_a_live_quality_breach_is_announced_whatever_the_drift_verdict(tmp_path, capsys, status):
    """Given a monitoring summary with a live quality breach, when the branch and the announcement run, then the
    breach lets the announcement through and its event carries the breach as a reason of its own."""
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from mlops.orchestration.airflow_tasks import announce_drift, drift_detected

    run_id = "scheduled__2026-11-22T11:00:00+00:00"
    signals = SIGNALS if status != "insufficient_data" else {}
    write_summary(tmp_path, run_id, {"status": status, "drift": status == "drift", "signals": signals,
                                     "live_quality_breach": BREACH})
    assert drift_detected(str(tmp_path), run_id) is True
    out = capsys.readouterr().out
    assert f"LIVE QUALITY BREACH: {BREACH['reason']}" in out and "nothing to do" not in out
    events = OutletEventAccessors()
    extra = announce_drift(str(tmp_path), run_id, outlet_events=events)
    expected = ["drift", "live_quality_breach"] if status == "drift" else ["live_quality_breach"]
    assert events[DRIFT_ASSET].extra == extra and extra["reasons"] == expected
    assert extra["live_quality_breach"] == BREACH


def test_a_run_started_by_a_breach_says_so(tmp_path, capsys):
    from mlops.orchestration.runs import record_trigger

    extra = {"report": "/p/reports/monitoring-runs/m3/report.html", "summary": "/p/m3/summary.json",
             "drifted": [], "monitoring_run_id": "m3", "reasons": ["live_quality_breach"],
             "live_quality_breach": BREACH}
    record_trigger(tmp_path, "asset_triggered__x", [{"asset": DRIFT_ASSET.uri, "extra": extra}])
    out = capsys.readouterr().out
    assert "was started by a live quality breach in monitoring run m3" in out and BREACH["reason"] in out
    assert "started by drift" not in out


def fake_mlops(tmp_path: Path, body: str):
    """A MonitorOperator whose `mlops` is a bash script with `body` (its arguments logged to args.txt)."""
    from mlops.orchestration.airflow_tasks import MonitorOperator

    project = tmp_path / "project"
    (project / "bin").mkdir(parents=True, exist_ok=True)
    script = project / "bin" / "mlops"
    script.write_text(f"#!/usr/bin/env bash\necho \"$@\" > {project / 'args.txt'}\n{body}\n")
    script.chmod(0o755)
    operator = MonitorOperator(task_id="monitor", project=str(project),
                               env={"PATH": f"{project / 'bin'}:/usr/bin:/bin"})
    return operator, project


def test_monitor_task_runs_mlops_monitor_on_the_traffic_into_the_runs_folder(tmp_path, monkeypatch, capsys):
    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

    operator, project = fake_mlops(tmp_path, "echo 'monitor: no drift'")
    context = {"run_id": "scheduled__2026-11-22T10:00:00+00:00", "params": {"current": None}}
    out_dir = monitoring_run_dir(project, context["run_id"])

    monkeypatch.setenv("MLOPS_TRAFFIC_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(AirflowSkipException, match="no traffic log"):  # the service never served: nothing to do
        operator.execute(context)
    assert not (project / "args.txt").exists()

    traffic = tmp_path / "traffic"
    traffic.mkdir()
    monkeypatch.setenv("MLOPS_TRAFFIC_DIR", str(traffic))
    result = operator.execute(context)
    assert (project / "args.txt").read_text().split() == ["monitor", "--current", str(traffic), "--out-dir",
                                                         str(out_dir)]
    assert result == {"summary": str(out_dir / "summary.json"), "report": str(out_dir / "report.html")}
    assert "monitor: no drift" in capsys.readouterr().out

    monkeypatch.delenv("MLOPS_TRAFFIC_DIR")
    (project / "logs" / "traffic").mkdir(parents=True)
    operator.execute({**context, "params": {}})
    assert (project / "args.txt").read_text().split()[2] == str(project / "logs" / "traffic")

    operator, project = fake_mlops(tmp_path, "echo 'error: monitor: bad'; exit 2")
    with pytest.raises(AirflowFailException, match="error: monitor: bad"):  # a given path is used as given
        operator.execute({**context, "params": {"current": "elsewhere.jsonl"}})
    assert (project / "args.txt").read_text().split()[2] == "elsewhere.jsonl"
    operator, _ = fake_mlops(tmp_path, "exit 1")
    with pytest.raises(AirflowException) as caught:  # retried by Airflow
        operator.execute({**context, "params": {"current": "elsewhere.jsonl"}})
    assert not isinstance(caught.value, AirflowFailException)



def test_promote_task_skips_on_a_rejection_and_fails_on_a_refusal(tmp_path, monkeypatch):
    """A candidate the gate rejected is an outcome (exit 3): the promote task is skipped, never failed."""
    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

    from mlops.orchestration.airflow_tasks import PromoteOperator

    monkeypatch.delenv("MLOPS_WORKSPACE_MODE", raising=False)
    _, project = fake_mlops(tmp_path, "echo 'verdict: REJECTED by the gate, nothing promoted'; exit 3")
    operator = PromoteOperator(task_id="promote", project=str(project),
                               env={"PATH": f"{project / 'bin'}:/usr/bin:/bin"})
    with pytest.raises(AirflowSkipException, match="REJECTED by the gate, nothing promoted"):
        operator.execute({"run_id": "manual__1"})
    assert (project / "args.txt").read_text().split() == ["promote"]
    fake_mlops(tmp_path, "echo 'error: NOT promoted'; exit 2")
    with pytest.raises(AirflowFailException, match="refused the candidate"):
        operator.execute({"run_id": "manual__1"})
    fake_mlops(tmp_path, "exit 1")
    with pytest.raises(AirflowException) as caught:
        operator.execute({"run_id": "manual__1"})
    assert not isinstance(caught.value, (AirflowFailException, AirflowSkipException))

def triggering_events(*extras: dict):
    """The context's `triggering_asset_events`, as the task SDK builds it from the run's consumed events."""
    from airflow.sdk.api.datamodels._generated import AssetReferenceAssetEventDagRun
    from airflow.sdk.execution_time.comms import AssetEventDagRunReferenceResult
    from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor

    return TriggeringAssetEventsAccessor.build(
        AssetEventDagRunReferenceResult(
            asset=AssetReferenceAssetEventDagRun(name=DRIFT_ASSET.name, uri=DRIFT_ASSET.uri, extra={}),
            extra=extra, source_task_id="announce_drift", source_dag_id="monitoring",
            source_run_id=extra["monitoring_run_id"], source_map_index=-1, source_aliases=[],
            timestamp=datetime(2026, 11, 22, 10, minute, tzinfo=UTC))
        for minute, extra in enumerate(extras)
    )


def test_asset_triggered_run_records_the_report_that_started_it(tmp_path, capsys):
    from types import SimpleNamespace

    from mlops.orchestration.airflow_tasks import configure

    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    extra = {"report": "/p/reports/monitoring-runs/m1/report.html", "summary": "/p/reports/monitoring-runs/m1/"
             "summary.json", "drifted": ["text_length", "confidence"], "monitoring_run_id": "m1"}
    later = {**extra, "report": "/p/reports/monitoring-runs/m2/report.html", "monitoring_run_id": "m2"}
    run_id = "asset_triggered__2026-11-22T10:05:00+00:00"
    params = {"epochs": None, "seed": None}
    overrides = configure(str(tmp_path), params=params, dag_run=SimpleNamespace(conf={}), run_id=run_id,
                          triggering_asset_events=triggering_events(extra, later))
    assert overrides == {}
    trigger = json.loads((run_dir(tmp_path, run_id) / TRIGGER_FILE).read_text())
    assert trigger["reports"] == [extra["report"], later["report"]]
    assert trigger["events"][0] == {"asset": DRIFT_ASSET.uri, "timestamp": "2026-11-22T10:00:00+00:00",
                                    "source_dag_id": "monitoring", "source_run_id": "m1",
                                    "source_task_id": "announce_drift", "extra": extra}
    out = capsys.readouterr().out
    assert f"[drift report]({extra['report']})" in out and "drifted: text_length, confidence" in out

    summary = record(tmp_path, run_id)
    assert summary["triggered_by"]["reports"] == trigger["reports"]
    assert json.loads((run_dir(tmp_path, run_id) / "run.json").read_text())["triggered_by"] == \
        summary["triggered_by"]
    assert "started by drift report(s)" in capsys.readouterr().out

    # A manual run (no asset events) has no trigger record, and a re-run configure clears a stale one.
    configure(str(tmp_path), params=params, dag_run=SimpleNamespace(conf={}), run_id=run_id,
              triggering_asset_events=triggering_events())
    assert not (run_dir(tmp_path, run_id) / TRIGGER_FILE).exists()
    assert "triggered_by" not in record(tmp_path, run_id)
