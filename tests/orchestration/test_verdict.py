"""A lifecycle run's verdict: what the `record` task emits as the verdict asset's event and the run's note."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from airflow.sdk.execution_time.context import OutletEventAccessors

from mlops.orchestration.airflow_tasks import record
from mlops.orchestration.assets import VERDICT_ASSET
from mlops.orchestration.runs import APPROVAL_FILE, recorded_files, run_dir
from mlops.orchestration.verdict import NOTE_LIMIT, run_verdict

FIRST_REASON = ("non_inferior_on_recent: macro-F1 difference candidate \u2212 champion text-classifier:abc on the 198 "
                "recent rows: \u22120.0047 (95% CI \u22120.031 to +0.022; macro-F1 0.91 vs 0.9147), needs lower "
                "bound > \u22120.01")
COMPARISON = {"champion": "text-classifier:abc", "judged_on": "recent", "difference": 0.01, "ci_low": -0.002,
              "ci_high": 0.02, "rows": 1200,
              "recent": {"rows": 198, "difference": -0.0047, "ci_low": -0.031, "ci_high": 0.022}}
REJECTED = {"accepted": False, "basis": "absolute thresholds and a paired bootstrap against the champion",
            "champion": "text-classifier:abc", "candidate_digest": "0123456789abcdef", "comparison": COMPARISON,
            "reasons": [FIRST_REASON, "gain_on_recent: ..."],
            "next_step": "label about 120 more texts and run again; the champion keeps serving"}
ACCEPTED = {**REJECTED, "accepted": True, "reasons": ["all checks passed"], "next_step": None}
METRICS = {"accuracy": 0.93, "macro_f1": 0.91, "rows": 1200}
PACKAGE = {"status": "candidate", "model": "text-classifier:new123", "bento": "text-classifier-svc:b1"}
PROMOTED = {"promoted": True, "reason": "every infra-validation check passed", "champion": "text-classifier:new123"}


def write_run(project: Path, decision: dict, package: dict | None = None, promotion: dict | None = None) -> None:
    """The files a lifecycle run leaves in the project when `record` starts."""
    files = recorded_files(project)
    for name, content in (("gate", decision), ("evaluate", METRICS), ("package", package),
                          ("promotion", promotion)):
        if content is not None:
            path = project / files[name]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(content))


def recorded(project: Path, run_id: str) -> tuple[dict, OutletEventAccessors]:
    """The `record` task as the worker calls it: its return value (its XCom) and the asset events it set."""
    events = OutletEventAccessors()
    return record(str(project), run_id, outlet_events=events), events


def test_a_rejected_run_reads_rejected_with_its_first_reason(tmp_path):
    # given a run whose gate rejected the model (an earlier run's promotion.json still in the project)
    write_run(tmp_path, REJECTED, PACKAGE, PROMOTED)
    # when the record task runs
    verdict, events = recorded(tmp_path, "manual__1")
    # then its verdict asset event says REJECTED with the first reason, the scores and the next step
    assert events[VERDICT_ASSET].extra == verdict
    assert verdict["verdict"] == "rejected" and verdict["accepted"] is False
    assert verdict["headline"] == f"REJECTED: {FIRST_REASON}"
    assert verdict["note"].startswith(f"REJECTED: {FIRST_REASON}\n\n")
    assert verdict["candidate"] == "0123456789ab"  # not the stale package's model: this run packaged nothing
    assert verdict["scores"] == {"test_accuracy": 0.93, "test_macro_f1": 0.91, "test_rows": 1200,
                                 "judged_on": "recent", "rows": 198, "champion": "text-classifier:abc",
                                 "macro_f1_difference": -0.0047, "ci_low": -0.031, "ci_high": 0.022}
    assert "The champion text-classifier:abc keeps serving." in verdict["note"]
    assert f"Next step: {REJECTED['next_step']}" in verdict["note"]
    assert verdict["note"].endswith("Record: reports/runs/manual__1/run.json")
    json.dumps(verdict)  # an asset event's extra must be JSON


def test_an_accepted_and_promoted_run_reads_promoted(tmp_path):
    write_run(tmp_path, ACCEPTED, PACKAGE, PROMOTED)
    verdict, events = recorded(tmp_path, "manual__2")
    assert events[VERDICT_ASSET].extra["verdict"] == "promoted"
    assert verdict["headline"] == "PROMOTED: text-classifier:new123" and verdict["accepted"] is True
    assert verdict["champion"] == "text-classifier:new123" and "Next step" not in verdict["note"]
    assert ("Candidate text-classifier:new123: test accuracy 0.93, macro-F1 0.91; vs text-classifier:abc on the 198 "
            "recent rows: macro-F1 difference -0.0047 (CI -0.031 to 0.022).") in verdict["note"]


def test_a_promotion_a_person_rejected_reads_not_promoted(tmp_path):
    write_run(tmp_path, ACCEPTED, PACKAGE, PROMOTED)  # the promotion.json is an earlier run's: promote was skipped
    folder = run_dir(tmp_path, "manual__3")
    folder.mkdir(parents=True)
    reason = "promotion REJECTED by alice at 2026-01-03T09:00:00+00:00: nothing is promoted"
    (folder / APPROVAL_FILE).write_text(json.dumps({"approved": False, "by": "alice", "reason": reason}))
    verdict, _ = recorded(tmp_path, "manual__3")
    assert verdict["verdict"] == "not_promoted" and verdict["headline"] == "NOT PROMOTED: approval rejected"
    assert verdict["note"].startswith(f"NOT PROMOTED: approval rejected\n\n{reason}\n\n")


@pytest.mark.parametrize(("summary", "headline"), [
    ({"results": {}}, "NO VERDICT: the gate wrote no decision in this run"),
    ({"results": {}, "loop": {"status": "no_new_labels", "message": "drift, no new labels"}},
     "NOT RETRAINED: drift, no new labels"),
])
def test_a_run_without_a_decision_says_so(summary, headline):
    assert run_verdict(summary, recorded_files(Path(".")), "reports/runs/r/run.json")["headline"] == headline


def test_the_note_fits_what_airflow_accepts():
    long = {**REJECTED, "reasons": ["x" * 3000]}
    files = recorded_files(Path("."))
    verdict = run_verdict({"results": {files["gate"]: long}}, files, "reports/runs/r/run.json")
    assert len(verdict["note"]) == NOTE_LIMIT and verdict["note"].startswith("REJECTED: xxx")


VERDICT_DAG_TEST = """
import json, sys
from pathlib import Path
from airflow.dag_processing.dagbag import DagBag
from airflow.models.asset import AssetEvent
from airflow.models.dagrun import DagRun
from airflow.api_fastapi.core_api.datamodels.dag_run import DAGRunResponse
from airflow.api_fastapi.core_api.datamodels.assets import AssetEventResponse
from airflow.utils.session import create_session
from sqlalchemy import select

project, decisions = Path(sys.argv[1]), json.loads(sys.argv[2])
dag = DagBag('dags').dags['lifecycle']
report = []
for decision in decisions:
    (project / 'reports/gate/decision.json').write_text(json.dumps(decision))
    # every task but record is marked successful without running: no stage, no Bento
    run = dag.test(mark_success_pattern=r'^(?!record$).*')
    with create_session() as session:  # what GET .../dagRuns/<run> and GET /api/v2/assets/events answer
        dag_run = session.scalars(select(DagRun).where(DagRun.run_id == run.run_id)).one()
        event = session.scalars(select(AssetEvent).where(AssetEvent.source_run_id == run.run_id)).one()
        report.append({'run': json.loads(DAGRunResponse.model_validate(dag_run).model_dump_json()),
                       'event': json.loads(AssetEventResponse.model_validate(event).model_dump_json())})
print(json.dumps(report))
"""


@pytest.mark.slow  # two real DAG runs (dag.test) against a fresh Airflow database
def test_a_rejected_and_an_accepted_run_differ_in_the_rest_apis_objects(tmp_path):
    import subprocess
    import sys

    from tests.helpers import ROOT, project_env

    # given the lifecycle DAG on a project with its plugin, and a fresh Airflow database
    project = tmp_path / "project"
    project.mkdir()
    (project / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    (project / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    write_run(project, REJECTED, PACKAGE, PROMOTED)
    env = project_env(project) | {"AIRFLOW_HOME": str(tmp_path / "airflow-home"), "MLOPS_PROJECT_DIR": str(project),
                                  "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                                  "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins")}
    migrated = subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], env=env,
                              capture_output=True, text=True, timeout=300)
    assert migrated.returncode == 0, migrated.stdout[-3000:] + migrated.stderr[-3000:]
    # when one run's gate rejected the model and the next one's accepted it (and promote promoted it)
    result = subprocess.run([sys.executable, "-c", VERDICT_DAG_TEST, str(project), json.dumps([REJECTED, ACCEPTED])],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rejected, accepted = json.loads(result.stdout.strip().splitlines()[-1])
    # then both runs are green, and the DagRun JSON's note and the asset event's extra tell them apart
    assert rejected["run"]["state"] == accepted["run"]["state"] == "success"
    assert rejected["run"]["note"].startswith(f"REJECTED: {FIRST_REASON}\n\n")
    assert accepted["run"]["note"].startswith("PROMOTED: text-classifier:new123\n\n")
    assert rejected["event"]["extra"]["verdict"] == "rejected" and accepted["event"]["extra"]["verdict"] == "promoted"
    assert rejected["event"]["extra"]["note"] == rejected["run"]["note"]
    assert rejected["event"]["uri"] == VERDICT_ASSET.uri
