"""End to end: served traffic drifts, the monitoring DAG says so, and the lifecycle DAG retrains on its own.

On a copy of the project with the tiny config, after `dvc repro` (the monitor
needs the scored reference and a champion), SMS messages instead of support
tickets are sent to the champion served by `bentoml serve`, which logs them;
then `airflow standalone` runs the `monitoring` DAG three times, triggered
through REST: on traffic from the project's own test split (no drift), on
too little traffic (no verdict), and on the served SMS traffic (drift). Only the last announces
drift; its asset event starts exactly one "asset_triggered" lifecycle run,
whose record names the drift report that started it. Then a fourth run, on
traffic like the test split's (no drift) that a labeller marked wrong
throughout, announces a live accuracy breach alone, and that starts a
lifecycle run of its own, recorded as started by the live accuracy.
"""

from __future__ import annotations

import csv
import json
import random
import time
import urllib.parse
from pathlib import Path

import pandas as pd
import pytest

from mlops.orchestration.assets import DRIFT_ASSET
from mlops.orchestration.runs import STARTED_BY_FILE, TRIGGER_FILE, monitoring_run_dir, run_dir
from tests.helpers import (
    BIN,
    SHARED_DATA,
    copy_project,
    free_port,
    post,
    project_env,
    run_cmd,
    start_server,
    stop,
    tiny_params,
    wait_ready,
)
from tests.integration.airflow_stack import Stack

pytestmark = pytest.mark.slow

def write_traffic(folder: Path, texts: list[str], predictions: list[str], confidences: list[float],
                  version: str) -> None:
    """Traffic as the service logs it (mlops.serving.traffic's own writer), without a running service."""
    from mlops.serving.traffic import TrafficLog

    results = [{"label": label, "score": float(score), "model_version": version}
               for label, score in zip(predictions, confidences, strict=True)]
    TrafficLog(folder).append(texts, results, latency_ms=12.5)


def serve_and_send(project: Path, env: dict[str, str], texts: list[str]) -> None:
    """Send the texts, ten per request, to the champion under `bentoml serve`; it logs them as traffic."""
    bento = json.loads((project / ".bentoml/registry.json").read_text())["champion"]["bento"]
    port = free_port()
    server = start_server(bento, project, env, port)
    try:
        wait_ready(f"http://127.0.0.1:{port}", server)
        for start in range(0, len(texts), 10):
            status, body = post(f"http://127.0.0.1:{port}/classify",
                                json.dumps({"texts": texts[start:start + 10]}).encode())
            assert status == 200, body
    finally:
        stop(server)


def label_all_wrong(project: Path, folder: Path, frame: pd.DataFrame, labels: list[str], version: str) -> None:
    """Traffic like `frame` served by `version`, every answer then labelled wrong by a labeller through the
    feedback store: a live accuracy of 0 on traffic that does not drift."""
    from mlops.serving.credentials import Identity
    from mlops.serving.feedback import record_feedback
    from mlops.serving.traffic import TrafficLog, new_ids

    ids = new_ids(len(frame))
    TrafficLog(folder).append(frame["text"].tolist(), [
        {"id": i, "label": str(row.prediction), "score": float(row.confidence), "model_version": version}
        for i, row in zip(ids, frame.itertuples(), strict=True)], 12.5, embeddings=frame["embedding"].tolist())
    wrong = [labels[(labels.index(str(p)) + 1) % len(labels)] for p in frame["prediction"]]
    body = json.dumps([{"id": i, "label": label} for i, label in zip(ids, wrong, strict=True)]).encode()
    record_feedback(body, labels, len(ids), traffic=folder, log_dir=project / "logs" / "feedback",
                    identity=Identity("alice", "labeller"))


def sms_texts(count: int) -> list[str]:
    with open(SHARED_DATA / "sms_spam_collection" / "SMSSpamCollection", encoding="utf-8", newline="") as handle:
        texts = [row[1] for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]
    return random.Random(0).sample(texts, count)


def test_drift_starts_a_lifecycle_run_that_names_the_report(tmp_path, repo_params, tiny_model_dir):
    params = tiny_params(repo_params, tiny_model_dir)
    # Only the runs this test triggers; the tiny config's reference is the 90-row scored validation split,
    # against which another 90-row sample of the same corpus (the test split) moves the text descriptors by
    # up to ~0.2 normed Wasserstein: thresholds for that size, and a minimum the test split meets.
    params["monitor"].update({"schedule": None, "min_rows": 40, "num_threshold": 0.3})
    params["loop"] = {**params.get("loop", {}), "cooldown_minutes": 0}  # the breach's run follows the drift's
    project = copy_project(tmp_path / "project", params)
    started = time.monotonic()
    run_cmd([str(BIN / "dvc"), "repro"], cwd=project, timeout=900)
    run_cmd([str(BIN / "mlops"), "promote"], cwd=project, timeout=600)  # as `make run` does
    print(f"dvc repro on the tiny config: {time.monotonic() - started:.0f}s")

    version = json.loads((project / "reports/package.json").read_text())["model"]
    env = project_env(project)
    shifted = Path(env["MLOPS_TRAFFIC_DIR"])  # where the service logs and the monitoring DAG reads
    serve_and_send(project, env, sms_texts(150))
    served = [json.loads(line) for part in shifted.glob("traffic-*.jsonl") for line in part.read_text().splitlines()]
    assert len(served) == 150 and all(r["model_version"] == version and r["embedding"] for r in served)
    test_split = pd.read_parquet(project / "data/scored/test.parquet")
    calm, small = tmp_path / "traffic-calm", tmp_path / "traffic-small"
    write_traffic(calm, test_split["text"].tolist(), test_split["prediction"].astype(str).tolist(),
                  test_split["confidence"].tolist(), version)
    write_traffic(small, test_split["text"].tolist()[:20], test_split["prediction"].astype(str).tolist()[:20],
                  test_split["confidence"].tolist()[:20], version)

    port = free_port()
    env |= {"AIRFLOW__API__PORT": str(port), "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "5"}
    stack = Stack(project, env, tmp_path / "logs")
    try:
        stack.start("standalone", "standalone")
        stack.wait_healthy(timeout=180)
        stack.login()
        stack.wait_dag("monitoring")
        stack.wait_dag("lifecycle")
        print(f"standalone up and DAGs parsed at {time.monotonic() - started:.0f}s")

        runs = {}
        for name, conf in (("calm", {"current": str(calm)}), ("small", {"current": str(small)}),
                           ("shifted", {})):
            status, body = stack.trigger("monitoring", conf)
            assert status == 200, (name, status, body)
            runs[name] = body["dag_run_id"]
        expected = {"calm": ("skipped", "no drift"), "small": ("skipped", "insufficient data"),
                    "shifted": ("success", "DRIFT")}
        for name, run_id in runs.items():
            state = stack.wait_run("monitoring", run_id, timeout=240)
            states = stack.task_states("monitoring", run_id)
            assert state == "success", (name, states, stack.log_tails())
            announce, said = expected[name]
            assert states["monitor"]["state"] == "success" and states["drift_detected"]["state"] == "success"
            assert states["announce_drift"]["state"] == announce, (name, states)
            assert said in stack.task_log("monitoring", run_id, "drift_detected"), name
            summary = json.loads((monitoring_run_dir(project, run_id) / "summary.json").read_text())
            assert summary["status"] == {"calm": "no_drift", "small": "insufficient_data",
                                         "shifted": "drift"}[name], (name, summary)
        print(f"three monitoring runs done at {time.monotonic() - started:.0f}s")

        report = monitoring_run_dir(project, runs["shifted"]).resolve() / "report.html"
        assert report.is_file()
        deadline = time.monotonic() + 90
        while True:  # the scheduler turns the asset event into a lifecycle run within seconds
            status, body = stack.request("GET", "/api/v2/dags/lifecycle/dagRuns")
            assert status == 200, body
            if body["dag_runs"]:
                break
            assert time.monotonic() < deadline, f"no lifecycle run after the drift event\n{stack.log_tails()}"
            time.sleep(2)
        time.sleep(10)  # an event a negative run wrongly emitted would have made its run by now
        status, body = stack.request("GET", "/api/v2/dags/lifecycle/dagRuns")
        assert [run["run_type"] for run in body["dag_runs"]] == ["asset_triggered"], body
        lifecycle_run = body["dag_runs"][0]["dag_run_id"]

        quoted = urllib.parse.quote(lifecycle_run, safe="")
        status, body = stack.request("GET", f"/api/v2/dags/lifecycle/dagRuns/{quoted}/upstreamAssetEvents")
        assert status == 200, body
        [event] = body["asset_events"]  # exactly the shifted run's event: the negatives emitted none
        assert event["uri"] == DRIFT_ASSET.uri and event["source_dag_id"] == "monitoring"
        assert event["source_run_id"] == runs["shifted"] and event["source_task_id"] == "announce_drift"
        assert event["extra"]["report"] == str(report)
        assert event["extra"]["monitoring_run_id"] == runs["shifted"]
        assert {"text_length", "embedding"} <= set(event["extra"]["drifted"]), event["extra"]

        deadline = time.monotonic() + 120
        while stack.task_states("lifecycle", lifecycle_run).get("configure", {}).get("state") != "success":
            assert time.monotonic() < deadline, (stack.task_states("lifecycle", lifecycle_run), stack.log_tails())
            time.sleep(2)
        trigger = json.loads((run_dir(project, lifecycle_run) / TRIGGER_FILE).read_text())
        assert trigger["reports"] == [str(report)]
        assert f"[drift report]({report})" in stack.task_log("lifecycle", lifecycle_run, "configure")
        print(f"lifecycle run {lifecycle_run} recorded its trigger at {time.monotonic() - started:.0f}s")

        # a live accuracy breach alone: traffic that does not drift, labelled wrong throughout by a labeller
        status, body = stack.request("PATCH", f"/api/v2/dags/lifecycle/dagRuns/{quoted}", {"state": "failed"})
        assert status == 200, body  # the drift's retrain gives way (one lifecycle run at a time)
        labelled = tmp_path / "traffic-labelled"
        labels = sorted(test_split["label"].astype(str).unique())
        label_all_wrong(project, labelled, test_split, labels, version)
        status, body = stack.trigger("monitoring", {"current": str(labelled)})
        assert status == 200, body
        breach_run = body["dag_run_id"]
        assert stack.wait_run("monitoring", breach_run, timeout=240) == "success", stack.log_tails()
        states = stack.task_states("monitoring", breach_run)
        assert states["announce_drift"]["state"] == "success", states
        assert "LIVE QUALITY BREACH" in stack.task_log("monitoring", breach_run, "drift_detected")
        summary = json.loads((monitoring_run_dir(project, breach_run) / "summary.json").read_text())
        assert summary["status"] == "no_drift" and summary["live_quality_breach"]["model_version"] == version
        deadline = time.monotonic() + 120
        while True:  # the breach's asset event starts a second lifecycle run
            status, body = stack.request("GET", "/api/v2/dags/lifecycle/dagRuns")
            others = [run for run in body["dag_runs"] if run["dag_run_id"] != lifecycle_run]
            if others:
                break
            assert time.monotonic() < deadline, f"no lifecycle run after the breach\n{stack.log_tails()}"
            time.sleep(2)
        [breach_lifecycle] = others
        assert breach_lifecycle["run_type"] == "asset_triggered", breach_lifecycle
        breach_id = breach_lifecycle["dag_run_id"]
        deadline = time.monotonic() + 180
        while stack.task_states("lifecycle", breach_id).get("configure", {}).get("state") != "success":
            assert time.monotonic() < deadline, (stack.task_states("lifecycle", breach_id), stack.log_tails())
            time.sleep(2)
        started_by = json.loads((run_dir(project, breach_id) / STARTED_BY_FILE).read_text())
        assert started_by["trigger"] == "live_accuracy" and started_by["triggers"] == ["live_accuracy"], started_by
        print(f"lifecycle run {breach_id} started by the live accuracy at {time.monotonic() - started:.0f}s")
    finally:
        stack.stop()
