"""End to end through REST API v2: `airflow standalone`, runs triggered with parameters, isolation.

On a copy of the project with the tiny config: a bad parameter is refused at
trigger time (HTTP 400 naming it) or, when only the merged params can tell,
in the run's first task (the run fails there, naming the key, and writes a
failure summary); a missing local data_source fails `configure` at its first
try; two runs triggered back to back with different parameters queue (one
active run at a time), both succeed, leave the DAG at one version, the
rejected one's note reads REJECTED naming the check and the accepted one's
not, and each run's record under reports/runs/<run id>/ matches its own
parameters, not the other run's.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from mlops.orchestration.runs import run_dir
from tests.helpers import copy_project, free_port, project_env, tiny_params
from tests.integration.airflow_stack import Stack

pytestmark = pytest.mark.slow


def test_rest_triggered_runs_with_params_are_validated_and_isolated(tmp_path, repo_params, tiny_model_dir):
    project = copy_project(tmp_path / "project", tiny_params(repo_params, tiny_model_dir))
    params_before = (project / "params.yaml").read_bytes()
    port = free_port()
    env = project_env(project) | {
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "5",
    }
    stack = Stack(project, env, tmp_path / "logs")
    started = time.monotonic()
    try:
        stack.start("standalone", "standalone")
        stack.wait_healthy(timeout=180)
        stack.login()
        stack.wait_dag("lifecycle")
        print(f"standalone up and DAG parsed in {time.monotonic() - started:.0f}s")

        # Refused at trigger time by the Params' JSON schema, naming the parameter.
        for conf, name in (({"epochs": -1}, "epochs"), ({"data_format": "xml"}, "data_format"),
                           ({"batch_size": "big"}, "batch_size"), ({"min_accuracy": 1.5}, "min_accuracy")):
            status, body = stack.trigger("lifecycle", conf)
            assert 400 <= status < 500, (conf, status, body)
            assert name in json.dumps(body), (conf, body)

        # Only the run can tell: an unknown parameter fails the first task, naming it, with a summary.
        status, bad = stack.trigger("lifecycle", {"epoch": 1})
        assert status == 200, bad
        # A missing local data_source fails configure at its first try, naming the path, before any stage.
        status, missing = stack.trigger("lifecycle", {"data_source": "data/no-such-file.csv"})
        assert status == 200, missing
        # Two good runs, triggered at once: they queue behind the bad one and each other.
        status, first = stack.trigger("lifecycle", {"epochs": 1, "seed": 7, "min_accuracy": 0.0,
                                                    "min_macro_f1": 0.0})
        assert status == 200, first
        # The second is rejected: no tiny model reaches accuracy 1.0.
        status, second = stack.trigger("lifecycle", {"epochs": 2, "seed": 7, "learning_rate": 0.002,
                                                     "min_accuracy": 1.0, "min_macro_f1": 0.0})
        assert status == 200, second
        assert first["logical_date"] is None and second["logical_date"] is None

        assert stack.wait_run("lifecycle", bad["dag_run_id"], timeout=120) == "failed"
        states = stack.task_states("lifecycle", bad["dag_run_id"])
        assert states["configure"]["state"] == "failed" and states["configure"]["try"] == 1, states
        assert "unknown trigger parameter(s): epoch" in stack.task_log("lifecycle", bad["dag_run_id"], "configure")
        failure = (run_dir(project, bad["dag_run_id"]) / "failure.md").read_text()
        assert "failed at task `configure`" in failure and "epoch" in failure
        assert len(failure.strip().splitlines()) == 1  # one paragraph
        assert stack.wait_run("lifecycle", missing["dag_run_id"], timeout=120) == "failed"
        states = stack.task_states("lifecycle", missing["dag_run_id"])
        assert states["configure"]["state"] == "failed" and states["configure"]["try"] == 1, states
        assert states["ingest"]["state"] in (None, "upstream_failed"), states
        assert "data/no-such-file.csv" in stack.task_log("lifecycle", missing["dag_run_id"], "configure")

        for run in (first, second):
            state = stack.wait_run("lifecycle", run["dag_run_id"], timeout=600)
            assert state == "success", (run["dag_run_id"], stack.task_states("lifecycle", run["dag_run_id"]),
                                        stack.log_tails())
        print(f"four runs done in {time.monotonic() - started:.0f}s")

        # Runs with different parameters left the DAG at one version.
        status, versions = stack.request("GET", "/api/v2/dags/lifecycle/dagVersions")
        assert status == 200 and versions["total_entries"] == 1, versions

        # The rejected run reads so in its note (the grid marks it), naming what was compared; the accepted not.
        notes = {}
        for run in (first, second):
            for _ in range(20):  # the plugin's listener writes the note as the run succeeds
                _, body = stack.request("GET", f"/api/v2/dags/lifecycle/dagRuns/{run['dag_run_id']}")
                if body.get("note"):
                    break
                time.sleep(1)
            notes[run["dag_run_id"]] = body.get("note") or ""
        rejected, accepted_note = notes[second["dag_run_id"]], notes[first["dag_run_id"]]
        assert rejected.startswith("REJECTED: ") and "accuracy" in rejected.splitlines()[0], rejected
        assert accepted_note and not accepted_note.startswith("REJECTED"), accepted_note

        # Runs did not overlap: the second started after the first ended.
        _, one = stack.request("GET", f"/api/v2/dags/lifecycle/dagRuns/{first['dag_run_id']}")
        _, two = stack.request("GET", f"/api/v2/dags/lifecycle/dagRuns/{second['dag_run_id']}")
        assert one["end_date"] <= two["start_date"], (one, two)

        # Task logs carry the stage's own output.
        train_log = stack.task_log("lifecycle", first["dag_run_id"], "train")
        assert "Running stage 'train'" in train_log and re.search(r"train: \d+ rows x", train_log), train_log[-3000:]
    finally:
        stack.stop()

    # Each run's record matches its own parameters.
    for run, epochs, lr, min_accuracy in ((first, 1, tiny_params(repo_params, tiny_model_dir)["train"]["lr"], 0.0),
                                          (second, 2, 0.002, 1.0)):
        record = json.loads((run_dir(project, run["dag_run_id"]) / "run.json").read_text())
        assert record["run_id"] == run["dag_run_id"]
        assert record["params"]["train"]["epochs"] == epochs and record["params"]["train"]["lr"] == lr
        assert record["params"]["seed"] == 7 and record["params"]["gate"]["min_accuracy"] == min_accuracy
        assert record["results"]["metrics/train.json"]["epochs"] == epochs
        accepted = record["results"]["reports/gate/decision.json"]["accepted"]
        status = record["results"]["reports/package.json"]["status"]
        assert status in ("candidate", "unchanged") if accepted else status == "skipped"  # the gate branch
        if accepted:
            assert record["results"]["reports/promotion.json"]["infra_validation"]["passed"] or \
                "already the champion" in record["results"]["reports/promotion.json"]["reason"]
    assert json.loads((run_dir(project, first["dag_run_id"]) / "overrides.json").read_text()) == {
        "train.epochs": 1, "seed": 7, "gate.min_accuracy": 0.0, "gate.min_macro_f1": 0.0}
    # The workspace holds the last run's outputs; params.yaml is as it was before the runs.
    assert json.loads((project / "metrics/train.json").read_text())["epochs"] == 2
    assert (project / "params.yaml").read_bytes() == params_before
