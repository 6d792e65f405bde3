"""A drift-triggered run: with new labels it retrains; without, it ends non-failed and says so, naming the queue."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from mlops.core.batch_files import list_batches
from mlops.loop.retrain import prepare
from mlops.orchestration.runs import run_dir
from mlops.serving.feedback import record_feedback
from mlops.serving.traffic import TrafficLog, new_ids
from tests.helpers import BIN, ROOT, run_cmd

MESSAGE = "drift, no new labels since the champion's data: 37 texts queued for labelling at /q/queue.csv"


def drift_summary(path, status="drift"):
    path.write_text(json.dumps({"status": status, "labelling_queue": {"path": "/q/queue.csv", "rows": 37}}))
    return path


@pytest.mark.slow  # runs `mlops` as a child process (seconds of imports)
def test_cli_drift_run_without_new_labels_ends_ok_and_says_so(tmp_path):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    env = {"PATH": str(BIN), "PYTHONPATH": str(ROOT), "MLOPS_FEEDBACK_DIR": str(tmp_path / "fb")}
    result = run_cmd([str(BIN / "mlops"), "retrain-on-drift", "--summary", str(drift_summary(tmp_path / "s.json"))],
                     cwd=tmp_path, env=env)
    assert f"retrain-on-drift: {MESSAGE}" in result.stdout
    assert MESSAGE in result.stdout.splitlines()[-1]  # the record's line says it too, not "gate accepted"
    record = json.loads(next((tmp_path / "reports" / "runs").glob("cli_drift*/run.json")).read_text())
    assert record["loop"]["status"] == "no_new_labels" and record["loop"]["message"] == MESSAGE
    calm = run_cmd([str(BIN / "mlops"), "retrain-on-drift", "--summary",
                    str(drift_summary(tmp_path / "c.json", "no_drift"))], cwd=tmp_path, env=env)
    assert "says no_drift, not drift: nothing to do" in calm.stdout


def test_posted_labels_make_a_new_batch_and_the_run_retrains_until_ingested(tmp_path, monkeypatch):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setenv("MLOPS_FEEDBACK_DIR", str(tmp_path / "fb"))
    ids = new_ids(2)
    TrafficLog(tmp_path / "traffic").append(["parcel lost", "charged twice"], [
        {"id": i, "label": "billing", "score": 0.3, "model_version": "m:1"} for i in ids], 1.0)
    record_feedback(json.dumps([{"id": ids[0], "label": "delivery"}, {"id": ids[1], "label": "billing"}]).encode(),
                    params["validate"]["labels"], 10, tmp_path / "traffic", tmp_path / "fb")
    result = prepare(tmp_path, [str(drift_summary(tmp_path / "s.json"))])
    batches = list_batches(tmp_path / "data" / "feedback")
    assert result["status"] == "retrain" and result["collected"] == 2 and result["new_batches"] == [batches[0].name]
    (tmp_path / "data").mkdir(exist_ok=True)
    pd.DataFrame({"text": ["parcel lost"], "label": ["delivery"], "subset": ["feedback"],
                  "batch": [batches[0].name]}).to_parquet(tmp_path / "data" / "ingested.parquet")  # ingest ran
    again = prepare(tmp_path, [str(tmp_path / "s.json")])
    assert again["status"] == "no_new_labels" and again["message"] == MESSAGE and again["collected"] == 0


def test_airflow_drift_run_records_the_message(tmp_path, capsys, monkeypatch):
    from types import SimpleNamespace

    from mlops.orchestration.airflow_tasks import configure
    from mlops.orchestration.runs import record
    from tests.orchestration.test_airflow_tasks import triggering_events

    monkeypatch.setenv("MLOPS_FEEDBACK_DIR", str(tmp_path / "fb"))
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    extra = {"report": "/p/report.html", "summary": str(drift_summary(tmp_path / "s.json")), "drifted": ["embedding"],
             "monitoring_run_id": "m1"}
    run_id = "asset_triggered__2026-12-01T10:00:00+00:00"
    configure(str(tmp_path), params={}, dag_run=SimpleNamespace(conf={}), run_id=run_id,
              triggering_asset_events=triggering_events(extra))
    assert f"configure: {MESSAGE}" in capsys.readouterr().out
    assert (tmp_path / "data" / "feedback").is_dir()
    summary = record(tmp_path, run_id)
    assert summary["loop"]["message"] == MESSAGE and MESSAGE in capsys.readouterr().out
    assert json.loads((run_dir(tmp_path, run_id) / "run.json").read_text())["loop"]["status"] == "no_new_labels"
