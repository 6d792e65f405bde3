"""End to end: the whole lifecycle through `dvc repro` and through Airflow, on a tiny config.

Each test works on its own copy of the project (tiny BERT, 600 generated
rows), with its own DVC cache, BentoML store and Airflow home.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.helpers import (
    BIN,
    ROOT,
    copy_project,
    free_port,
    post,
    processes_of,
    project_env,
    run_cmd,
    start_server,
    stop,
    tiny_params,
    wait_ready,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory, tiny_model_dir):
    repo_params = yaml.safe_load((ROOT / "params.yaml").read_text())
    project = copy_project(tmp_path_factory.mktemp("lifecycle"), tiny_params(repo_params, tiny_model_dir))
    result = run_cmd([str(BIN / "dvc"), "repro"], cwd=project, timeout=900)
    assert not (project / ".bentoml/registry.json").is_file() or \
        read_json(project / ".bentoml/registry.json")["champion"] is None  # the pipeline promotes nothing
    promoted = run_cmd([str(BIN / "mlops"), "promote"], cwd=project, timeout=600)  # as `make run` does
    return project, result.stdout + promoted.stdout


def read_json(path: Path):
    return json.loads(path.read_text())


def gto_prod(project: Path) -> tuple[str | None, str | None]:
    """What `gto show` (DVC's model registry, on the project's git tags) lists in `prod`, and the GTO version of
    the JSON registry's champion."""
    from mlops.core.gto_registry import version_of

    shown = json.loads(run_cmd([str(BIN / "gto"), "show", "--json"], cwd=project).stdout)
    champion = read_json(project / ".bentoml/registry.json")["champion"]["model"]
    return shown["text-classifier"]["stage"].get("prod"), version_of(project, champion)


def test_repro_runs_every_stage_and_leaves_a_servable_champion(lifecycle):
    project, output = lifecycle
    for stage in ("generate", "ingest", "validate", "split", "train", "distill", "optimize", "evaluate", "gate",
                  "refit", "package", "monitor"):
        assert f"Running stage '{stage}'" in output
    metrics = read_json(project / "metrics/evaluate.json")
    assert metrics["rows"] > 0 and 0 <= metrics["accuracy"] <= 1
    decision = read_json(project / "reports/gate/decision.json")
    assert decision["accepted"] and decision["basis"].startswith("first run")
    package = read_json(project / "reports/package.json")
    assert package["status"] == "candidate"
    promotion = read_json(project / "reports/promotion.json")
    assert promotion["promoted"] and promotion["infra_validation"]["passed"], promotion
    assert [c["check"] for c in promotion["infra_validation"]["checks"]] == [
        "ready", "one_text", "list", "bad_request", "metrics", "agreement", "latency"]
    print(f"infra validation: {promotion['infra_validation']['checks']}")
    registry = read_json(project / ".bentoml/registry.json")
    assert registry["champion"]["bento"] == package["bento"]
    prod, version = gto_prod(project)  # the project is a git clone: `gto show` lists the champion in prod
    assert version is not None and prod == version
    name, version = package["bento"].split(":")
    assert (project / ".bentoml/bentos" / name / version / "bento.yaml").is_file()
    monitoring = read_json(project / "reports/monitoring/summary.json")
    assert "scored test split" in monitoring["current"]  # the stand-in, and the report says so
    assert monitoring["status"] in ("drift", "no_drift") and len(monitoring["signals"]) == 6
    assert (project / "reports/monitoring/report.html").is_file()
    assert read_json(project / "reports/validation/summary.json")["success"]
    assert (project / "plots/confusion_matrix.png").is_file()
    card = (project / "reports/gate/model_card.md").read_text()
    assert "first run: no champion yet" in card and "## Lineage" in card
    stored = project / ".bentoml/models/text-classifier" / package["model"].split(":")[1]
    assert (stored / "MODEL_CARD.md").is_file()  # the card travels with the registered model
    # the serving variant the gate chose travels inside the stored model, and the promoted server answered with it
    variant = decision["serve_variant"]
    assert read_json(stored / "serving.json") == {"variant": variant} and package["serve_variant"] == variant
    assert set(read_json(project / "metrics/evaluate_detail.json")["variants"]) == {"fp32", "onnx_fp32", "onnx_int8"}
    assert variant == "fp32" or (stored / variant / "model.onnx").is_file()
    assert promotion["infra_validation"]["precision"] == variant and "## Serving variants" in card


def test_second_repro_is_a_no_op(lifecycle):
    project, _ = lifecycle
    started = time.perf_counter()
    output = run_cmd([str(BIN / "dvc"), "repro"], cwd=project).stdout
    elapsed = time.perf_counter() - started
    assert "Running stage" not in output and "Data and pipelines are up to date" in output
    print(f"no-op dvc repro took {elapsed:.2f}s")


def test_hand_runs_of_validate_and_monitor_leave_the_pipeline_alone(lifecycle):
    project, _ = lifecycle
    kept = ("reports/validation/summary.json", "reports/validation/report.html", "reports/monitoring/summary.json")
    before = {name: (project / name).read_bytes() for name in kept}
    ingested = pd.read_parquet(project / "data/ingested.parquet")
    ingested.head(120)[["text", "label"]].to_csv(project / "sample.csv", index=False)
    validated = run_cmd([str(BIN / "mlops"), "validate", "--data", "sample.csv"], cwd=project, check=False)
    monitored = run_cmd([str(BIN / "mlops"), "monitor", "--current", "sample.csv"], cwd=project)
    for result, command in ((validated, "validate"), (monitored, "monitor")):
        found = re.search(rf"{command}: no output folder given; this hand run writes to (\S+)/", result.stdout)
        assert found and found.group(1).startswith("reports/adhoc/"), result.stdout + result.stderr
        assert (project / found.group(1) / "summary.json").is_file()
    assert {name: (project / name).read_bytes() for name in kept} == before
    status = run_cmd([str(BIN / "dvc"), "status"], cwd=project).stdout
    assert "Data and pipelines are up to date" in status, status


def test_gate_threshold_change_reruns_only_gate_and_after(lifecycle):
    project, _ = lifecycle
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["gate"]["min_accuracy"] = round(params["gate"]["min_accuracy"] - 0.01, 4)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    output = run_cmd([str(BIN / "dvc"), "repro"], cwd=project).stdout
    ran = [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]
    assert ran == ["gate", "refit", "package"]  # refit: a new decision, and (no feedback) nothing to train
    assert read_json(project / "reports/package.json")["status"] == "unchanged"  # same model, same champion


def test_serving_change_rebuilds_the_bento_around_the_same_model(lifecycle):
    project, _ = lifecycle
    before = read_json(project / "reports/package.json")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["serve"]["micro_batch"] = params["serve"]["micro_batch"] + 1
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    output = run_cmd([str(BIN / "dvc"), "repro"], cwd=project).stdout
    assert [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")] == ["package"]
    after = read_json(project / "reports/package.json")
    assert after["status"] == "candidate" and after["rebuilt"]
    assert after["model"] == before["model"] and after["bento"] != before["bento"]
    run_cmd([str(BIN / "mlops"), "promote"], cwd=project)
    champion = read_json(project / ".bentoml/registry.json")["champion"]
    assert (champion["model"], champion["bento"]) == (after["model"], after["bento"])


def test_serve_champion_classify_log_and_monitor(lifecycle):
    project, _ = lifecycle
    bento = read_json(project / ".bentoml/registry.json")["champion"]["bento"]
    port = free_port()
    key = "test-key-" + str(port)
    # MLOPS_PROJECT_DIR: where the service finds the monitoring runs for its drift metrics (`bentoml serve <bento>`
    # runs in the Bento's own folder)
    env = project_env(project) | {"MLOPS_API_KEY": key, "MLOPS_PROJECT_DIR": str(project)}
    server = start_server(bento, project, env, port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, server)
        texts = [f"I was charged twice for order {i}, please refund" for i in range(12)]
        status, body = post(f"{base}/classify", json.dumps({"texts": texts}).encode(), key=key)
        assert status == 200, body
        answers = json.loads(body)
        assert len(answers) == 12
        labels = set(yaml.safe_load((project / "params.yaml").read_text())["validate"]["labels"])
        for answer in answers:
            assert answer["label"] in labels and set(answer["probabilities"]) == labels
            assert abs(sum(answer["probabilities"].values()) - 1) < 1e-4
            assert answer["model_version"].startswith("text-classifier:")
        status, body = post(f"{base}/classify", json.dumps({"text": texts[0]}).encode(), key=key)
        assert status == 200 and json.loads(body)["label"] == answers[0]["label"], body  # one text, one answer
        # concurrent single-text requests are merged into batches: each must get its own text's answer back
        scored = pd.read_parquet(project / "data/scored/test.parquet").head(24)
        with ThreadPoolExecutor(max_workers=24) as pool:
            replies = list(pool.map(lambda text: post(f"{base}/classify", json.dumps({"text": text}).encode(),
                                                      key=key), scored["text"]))
        assert all(status == 200 for status, _ in replies), replies
        served = [json.loads(body) for _, body in replies]
        # against the variant the champion serves, offline (the gate may pick an int8 one: ~3e-3 off fp32's scores)
        from mlops.ml.variants import is_int8, load_served, served_variant

        name, version = served[0]["model_version"].split(":")
        runtime = load_served(project / ".bentoml/models" / name / version, "auto")
        offline = runtime.predict_proba(scored["text"].tolist())
        assert [answer["label"] for answer in served] == [runtime.labels[int(i)] for i in offline.argmax(1)]
        # int8 quantises activations with a range taken from each batch: its scores move with what it is batched with
        tolerance = 1e-2 if is_int8(served_variant(project / ".bentoml/models" / name / version, "auto")) else 1e-3
        assert max(abs(a["score"] - c) for a, c in zip(served, offline.max(1), strict=True)) < tolerance
        # batch scoring gives the same answers as the service, with the champion it serves
        scored[["text"]].to_csv(project / "sample.csv", index=False)
        run_cmd([str(BIN / "mlops"), "predict", "--input", "sample.csv", "--output", "sample.jsonl", "--no-progress"],
                cwd=project)
        batch = pd.read_json(project / "sample.jsonl", lines=True)
        assert batch["label"].tolist() == [answer["label"] for answer in served]
        assert set(batch["model_version"]) == {served[0]["model_version"]}
        assert max(abs(b - a["score"]) for b, a in zip(batch["score"], served, strict=True)) < tolerance
        # the model's own metrics: answers by label, their scores, the version served, the latest drift verdict
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
            exposed = response.read().decode()
        version = served[0]["model_version"]
        counted = sum(float(line.rsplit(" ", 1)[1]) for line in exposed.splitlines()
                      if line.startswith("mlops_predictions_total{") and f'model_version="{version}"' in line)
        assert counted >= 12 + 1 + 24, counted
        assert f'mlops_prediction_confidence_count{{model_version="{version}"}}' in exposed
        assert f'mlops_model_info{{model_version="{version}"' in exposed
        status = read_json(project / "reports/monitoring/summary.json")["status"]
        assert f'mlops_drift_status{{status="{status}"}} 1.0' in exposed
        assert 'mlops_drift_signal_score{signal="embedding"}' in exposed
        too_many = json.dumps({"texts": ["hello"] * 65}).encode()
        too_long = json.dumps({"texts": ["x" * 5001]}).encode()
        huge = json.dumps({"texts": ["y" * 4000] * 400}).encode()  # 1.6 MB
        bad_requests = {
            "empty list": b'{"texts": []}', "string for list": b'{"texts": 5}', "numbers": b'{"texts": [1, 2]}',
            "missing field": b'{"wrong": ["x"]}', "both fields": b'{"text": "a", "texts": ["b"]}',
            "empty body object": b"{}", "empty text": b'{"text": ""}', "null text": b'{"text": null}',
            "invalid JSON": b"{not json", "too many texts": too_many, "over-long text": too_long,
            "non-UTF-8 bytes": b'{"texts": ["\xff\xfe"]}', "huge body": huge, "JSON array body": b'["a"]',
        }
        for kind, bad in bad_requests.items():
            status, body = post(f"{base}/classify", bad, key=key)
            assert 400 <= status < 500, (kind, status, body)
            assert "Traceback" not in body and 'File "' not in body, (kind, body)
        assert post(f"{base}/classify", huge, key=key)[0] == 413
        assert post(f"{base}/classify", b'{"texts": ["hi"]}')[0] == 401  # no key
        assert post(f"{base}/classify", b'{"texts": ["hi"]}', key="wrong")[0] == 401
        assert post(f"{base}/classify", b'{"text": "hi"}', content_type="text/plain", key=key)[0] == 415
        assert post(f"{base}/classify", b"text=hi", content_type="application/x-www-form-urlencoded",
                    key=key)[0] == 415
        with urllib.request.urlopen(f"{base}/readyz", timeout=5) as response:
            assert response.status == 200
        for path in ("/docs", "/docs.json", "/metrics"):  # open without the key; /docs leads to the Swagger UI
            with urllib.request.urlopen(f"{base}{path}", timeout=5) as response:
                assert response.status == 200, path
                page = response.read().decode()
                assert {"/docs": "swagger-ui", "/docs.json": '"/classify"',
                        "/metrics": "bentoml_service_adaptive_batch_size"}[path] in page, path
    finally:
        stop(server)
    traffic = project / "logs/traffic"
    records = [json.loads(line) for path in traffic.glob("*.jsonl") for line in path.read_text().splitlines()]
    assert len(records) == 13 + 24 and {r["text"] for r in records} == set(texts) | set(scored["text"])
    assert all(r["model_version"] == answers[0]["model_version"] and r["embedding"] for r in records)
    result = run_cmd([str(BIN / "mlops"), "monitor", "--current", str(traffic), "--out-dir", "reports/live"],
                     cwd=project)
    summary = read_json(project / "reports/live/summary.json")
    assert summary["current_rows"] == 37 and summary["current"].startswith("served traffic")
    assert summary["baseline"] == f"reference stored with {answers[0]['model_version']}"
    assert summary["status"] == "insufficient_data" and "NO VERDICT" in result.stdout  # 37 < min_rows


def test_a_killed_server_takes_its_workers_with_it(lifecycle, tmp_path):
    # given the champion served, one request answered
    project, _ = lifecycle
    bento = read_json(project / ".bentoml/registry.json")["champion"]["bento"]
    port, traffic = free_port(), tmp_path / "traffic"
    server = start_server(bento, project, project_env(project) | {"MLOPS_TRAFFIC_DIR": str(traffic)}, port)
    try:
        wait_ready(f"http://127.0.0.1:{port}", server)
        assert post(f"http://127.0.0.1:{port}/classify", b'{"text": "where is my parcel"}')[0] == 200
        # when `bentoml serve` alone is SIGKILLed (its workers run in sessions of their own)
        os.kill(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
        # then its workers end too, after writing what they logged
        assert processes_of(project, grace=30) == []
    finally:
        stop(server)
    records = [json.loads(line) for path in traffic.glob("*.jsonl") for line in path.read_text().splitlines()]
    assert [record["text"] for record in records] == ["where is my parcel"]


def test_rollback_then_make_serve_serves_the_previous_champion(lifecycle):
    project, _ = lifecycle
    first = read_json(project / ".bentoml/registry.json")["champion"]
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["lr"] = 2.5e-3  # a second model, accepted if not worse beyond the (wide) margin
    params["gate"].update({"promote_if": "expected_gain", "min_gain_probability": 0.0, "max_regression": 1.0})
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_cmd([str(BIN / "dvc"), "repro"], cwd=project)
    run_cmd([str(BIN / "mlops"), "promote"], cwd=project)
    second = read_json(project / ".bentoml/registry.json")["champion"]
    assert second["model"] != first["model"], read_json(project / "reports/gate/decision.json")["reasons"]
    assert read_json(project / "reports/gate/decision.json")["comparison"]["champion"] == first["model"]
    listing = run_cmd([str(BIN / "mlops"), "registry", "list"], cwd=project).stdout
    assert f"{second['model']}" in listing and "champion" in listing and "previous-1" in listing
    output = run_cmd([str(BIN / "mlops"), "registry", "rollback"], cwd=project).stdout
    assert first["model"] in output
    assert read_json(project / ".bentoml/registry.json")["champion"]["model"] == first["model"]
    prod, version = gto_prod(project)  # the rollback moved GTO's prod back to the first model's version
    assert version is not None and prod == version

    (project / ".venv").symlink_to(BIN.parent)  # `make` runs the project's .venv
    port = free_port()
    server = subprocess.Popen(["make", "serve", f"PORT={port}"], cwd=project, env=project_env(project),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, server)
        status, body = post(f"{base}/classify", b'{"texts": ["my parcel never arrived"]}')
        assert status == 200 and json.loads(body)[0]["model_version"] == first["model"]
    finally:
        stop(server)


def test_killed_promotion_leaves_a_valid_champion(lifecycle):
    project, _ = lifecycle
    env = project_env(project)
    register = ("from pathlib import Path; from mlops.core import registry; "
                "print(registry.register_model('text-classifier', Path('models/candidate'), {'note': 'kill test'}))")
    tag = run_cmd([str(BIN / "python"), "-c", register], cwd=project).stdout.strip().splitlines()[-1]
    before = read_json(project / ".bentoml/registry.json")["champion"]
    for delay in (0.5, 2.0, 4.0):  # mid-way through building the new model's Bento
        process = subprocess.Popen([str(BIN / "mlops"), "registry", "promote", tag], cwd=project, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(delay)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        registry = read_json(project / ".bentoml/registry.json")  # still parses
        champion = registry["champion"]
        assert champion["model"] in (before["model"], tag)
        name, version = champion["bento"].split(":")
        assert (project / ".bentoml/bentos" / name / version / "bento.yaml").is_file()  # and is servable
        if champion["model"] == tag:
            break
    # nothing outlives the killed command: not the candidate's server, nor its workers (circus starts them in
    # sessions of their own, out of reach of the killed process group; mlops/serving/worker_lifetime.py)
    assert processes_of(project, grace=30) == []
    output = run_cmd([str(BIN / "mlops"), "registry", "promote", tag], cwd=project).stdout
    assert tag in output and read_json(project / ".bentoml/registry.json")["champion"]["model"] == tag


def test_dvc_experiments_run_and_list(lifecycle):
    project, _ = lifecycle
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "state before experiments"], cwd=project, check=True)
    run_cmd([str(BIN / "dvc"), "exp", "run", "-n", "lower-lr", "-S", "train.lr=0.002"], cwd=project)
    shown = json.loads(run_cmd([str(BIN / "dvc"), "exp", "show", "--json"], cwd=project).stdout)
    names = {experiment["revs"][0].get("name") for rev in shown for experiment in rev.get("experiments") or []}
    assert "lower-lr" in names, shown
    assert "lr: 0.002" in (project / "params.yaml").read_text()  # applied to the workspace, as DVC does


def test_airflow_dags_test_runs_the_lifecycle(tmp_path, repo_params, tiny_model_dir):
    project = copy_project(tmp_path / "airflow-project", tiny_params(repo_params, tiny_model_dir))
    env = project_env(project)
    run_cmd([str(BIN / "airflow"), "db", "migrate"], cwd=project, env=env, timeout=300)
    result = run_cmd([str(BIN / "airflow"), "dags", "test", "lifecycle"], cwd=project, env=env, timeout=900,
                     check=False)
    assert result.returncode == 0, (result.stdout[-5000:], result.stderr[-5000:])
    assert read_json(project / "reports/package.json")["status"] == "candidate"
    assert read_json(project / "reports/promotion.json")["promoted"]  # the `promote` task after `package`
    assert read_json(project / "reports/monitoring/summary.json")["current_rows"] > 0
    champion = read_json(project / ".bentoml/registry.json")["champion"]["model"]

    # A rejected model: the gate_decision branch skips packaging and says why; the trigger's parameter
    # applies to that run only: params.yaml is byte-identical afterwards.
    params_before = (project / "params.yaml").read_bytes()
    result = run_cmd([str(BIN / "airflow"), "dags", "test", "lifecycle", "-c", '{"min_accuracy": 0.999}'],
                     cwd=project, env=env, timeout=900, check=False)
    assert result.returncode == 0, (result.stdout[-5000:], result.stderr[-5000:])
    assert read_json(project / "reports/gate/decision.json")["accepted"] is False
    records = sorted((project / "reports/runs").glob("*/run.json"), key=lambda p: read_json(p)["finished"])
    last = read_json(records[-1])
    assert last["overrides"] == {"gate.min_accuracy": 0.999}
    assert last["results"]["reports/package.json"]["status"] == "skipped"
    assert read_json(project / ".bentoml/registry.json")["champion"]["model"] == champion  # nothing deployed
    assert last["params"]["gate"]["min_accuracy"] == 0.999  # the record keeps the parameters the run used
    assert (project / "params.yaml").read_bytes() == params_before
