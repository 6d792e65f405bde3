"""The loop end to end on the tiny config: serve, shifted traffic, drift and the labelling queue, labels through
/feedback, a drift-triggered retrain on them (new batch validated, recent set held out, gate judging both sets),
and a second drift run without new labels that says so and retrains nothing."""

from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest
import yaml

from tests.helpers import BIN, ROOT, copy_project, free_port, post, project_env, run_cmd, stop, tiny_params, wait_ready

pytestmark = pytest.mark.slow


def read_json(path):
    return json.loads(path.read_text())


@pytest.mark.timeout(3600)  # two lifecycles and a served phase: over 15 minutes on a busy 2-core machine
def test_drift_labels_retrain_and_a_run_without_labels(tmp_path, tiny_model_dir):
    from mlops.core.records import read_metrics
    from mlops.stages.generate import generate_corpus

    params = tiny_params(yaml.safe_load((ROOT / "params.yaml").read_text()), tiny_model_dir)
    params["feedback"].update({"min_recent_rows": 20, "oversample": 2, "queue_size": 200})
    # the continued candidate loses one of the 90 tiny test rows (CPU training is deterministic): allowed here, so
    # that the accepted path runs (refit on every label, package, promote); exit 3 on rejection: tests/test_cli.py
    params["gate"].update({"promote_if": "non_inferior", "max_regression": 0.05})
    # the refit's own checks are unit-tested (tests/stages/test_refit.py); here: the wiring, whatever the tiny model
    params["refit_feedback"].update({"max_test_drop_points": 100.0, "min_agreement": 0.0})
    project = copy_project(tmp_path / "project", params)
    env = project_env(project) | {"PYTHONPATH": str(project)}
    run_cmd([str(BIN / "dvc"), "repro"], cwd=project, env=env, timeout=1800)  # minutes on a busy 2-core machine
    run_cmd([str(BIN / "mlops"), "promote"], cwd=project, env=env, timeout=600)  # the pipeline only builds a candidate
    first = read_json(project / ".bentoml/registry.json")["champion"]
    # a first training has no feedback: nothing refit, the judged candidate packaged
    initial = read_json(project / "metrics/refit.json")
    assert not initial["refit"] and initial["packaged"] == "candidate" and "base model" in initial["why"]
    assert first["digest"] == initial["candidate_digest"] and "refit_of" not in first

    shifted = generate_corpus(160, params["data"]["generated"]["classes"], seed=77, variant="shifted")
    port = free_port()
    server = subprocess.Popen([str(BIN / "bentoml"), "serve", first["bento"], "--host", "127.0.0.1", "--port",
                               str(port)], cwd=project, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, server)
        answers = []
        for at in range(0, len(shifted), 16):
            status, body = post(f"{base}/classify", json.dumps({"texts": shifted["text"][at:at + 16].tolist()}
                                                               ).encode())
            assert status == 200, body
            answers += json.loads(body)
        truth = dict(zip([a["id"] for a in answers], shifted["label"], strict=True))
        out = run_cmd([str(BIN / "mlops"), "monitor", "--current", str(project / "logs/traffic"), "--out-dir",
                       "reports/live"], cwd=project, env=env).stdout
        summary = read_json(project / "reports/live/summary.json")
        assert summary["status"] == "drift", out
        queue = pd.read_csv(summary["labelling_queue"]["path"], dtype=str, keep_default_na=False)
        assert len(queue) == summary["labelling_queue"]["rows"] == 160 and "texts queued for labelling" in out
        assert queue["confidence"].astype(float).is_monotonic_increasing  # least confident first
        body = json.dumps([{"id": i, "label": truth[i]} for i in queue["id"][:120]]).encode()
        status, answer = post(f"{base}/feedback", body)
        assert status == 200 and all(a["status"] == "recorded" for a in json.loads(answer)), answer
    finally:
        stop(server)

    # The tiny champion is as sure of the shifted texts as of its own (its lower quartile of confidence on its
    # reference is about 0.5) and wrong on most of them: screening holds the honest batch for review, as it
    # would a poisoned one, and an operator who checked it approves it. The next run trains on it.
    collected = run_cmd([str(BIN / "mlops"), "feedback", "collect"], cwd=project, env=env).stdout
    assert "120 labels from" in collected and "HELD for review" in collected, collected
    held = next((project / "data/feedback-held").glob("batch-*-served.csv")).stem
    assert held in run_cmd([str(BIN / "mlops"), "feedback", "held"], cwd=project, env=env).stdout
    approved = run_cmd([str(BIN / "mlops"), "feedback", "approve", held, "--note", "labelled from the queue"],
                       cwd=project, env=env | {"MLOPS_OPERATOR": "tester"}).stdout
    assert f"{held} approved" in approved, approved

    retrained = run_cmd([str(BIN / "mlops"), "retrain-on-drift", "--summary", "reports/live/summary.json"],
                        cwd=project, env=env, timeout=1800, check=False)
    out = retrained.stdout
    assert "new labelled batch(es) since the champion's data" in out and "Lifecycle finished." in out, out
    batch = next((project / "data/feedback").glob("batch-*-served.csv")).name
    validation = read_json(project / "reports/validation/summary.json")
    assert validation["new_batches"] == [batch] and validation["batches"][batch]["rows"] == 120
    recent = pd.read_parquet(project / "data/split/recent.parquet")
    assert len(recent) == 60 and set(recent["batch"]) == {batch}
    metrics = read_metrics(project / "metrics/evaluate.json")  # the headline and its detail, where the recent set is
    assert metrics["recent"]["rows"] == 60 and len(metrics["recent"]["accuracy_ci"]) == 2
    assert read_json(project / "metrics/train.json")["started_from"] == first["model"]  # continued, not from scratch
    decision = read_json(project / "reports/gate/decision.json")
    assert decision["comparison"]["recent"]["rows"] == 60 and decision["sets"]["recent"]["rows"] == 60
    assert any(c["check"] == "non_inferior_on_recent" for c in decision["checks"])
    assert "recent set" in out and "vs champion" in out
    champion = read_json(project / ".bentoml/registry.json")["champion"]
    assert (champion["model"] != first["model"]) == decision["accepted"]  # promoted exactly when accepted
    # a rejection is an outcome: exit 3 and the verdict with the next step, the labels it needs among them
    assert retrained.returncode == (0 if decision["accepted"] else 3), (out, retrained.stderr)
    assert ("Verdict: PROMOTED" in out) == decision["accepted"]
    # judge, then use every label: the accepted candidate is refit on all 120 feedback rows (the 60 recent ones the
    # gate judged on included), from the same champion, and the refit is what was packaged and promoted
    refit = read_json(project / "metrics/refit.json")
    if decision["accepted"]:
        training = refit["training"]
        assert refit["refit"] and refit["packaged"] == "refit", refit
        assert training["feedback_rows"] == 120 and training["recent_rows"] == 60, training
        assert training["started_from"] == first["model"]
        assert training["rows"] == 120 * params["feedback"]["oversample"] + training["replay_rows"]
        assert {c["check"] for c in refit["checks"]} == {"refit_test_accuracy_drop_points",
                                                         "refit_agreement_with_judged"}
        assert refit["figures"]["test_rows"] == metrics["rows"] and refit["figures"]["recent_rows"] == 60
        assert refit["digest"] != decision["candidate_digest"]  # other weights than the judged ones
        assert champion["digest"] == refit["digest"] and champion["refit_of"] == decision["candidate_digest"]
        assert champion["serve_variant"] == decision["serve_variant"]
        assert "Packaged: **refit**" in (project / "reports/refit/model_card.md").read_text()
        assert "  refit           packaged refit" in out
    else:  # a rejected candidate is not refit
        assert not refit["refit"] and refit["packaged"] is None and "rejected" in refit["why"]
    assert decision["comparison"]["recent"]["evidence"]["significant"].keys() == {"rows_needed", "more_rows",
                                                                                  "more_labels"}
    record = read_json(next((project / "reports/runs").glob("cli_drift*/run.json")))
    assert record["loop"]["status"] == "retrain" and record["loop"]["new_batches"] == [batch]

    again = run_cmd([str(BIN / "mlops"), "retrain-on-drift", "--summary", "reports/live/summary.json"],
                    cwd=project, env=env).stdout
    assert ("drift, no new labels since the champion's data: 160 texts queued for labelling at "
            f"{summary['labelling_queue']['path']}") in again, again
    assert "Lifecycle finished." not in again  # nothing retrained
    status = run_cmd([str(BIN / "dvc"), "status"], cwd=project, env=env).stdout
    assert "up to date" in status
