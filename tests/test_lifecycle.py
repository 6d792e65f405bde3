"""End to end: the whole lifecycle through `dvc repro` and through Airflow, on a tiny config.

Each test works on its own copy of the project (tiny BERT, 600 generated
rows), with its own DVC cache, BentoML store and Airflow home.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import BIN, ROOT, copy_project, project_env, run_cmd, tiny_params

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory, tiny_model_dir):
    repo_params = yaml.safe_load((ROOT / "params.yaml").read_text())
    project = copy_project(tmp_path_factory.mktemp("lifecycle"), tiny_params(repo_params, tiny_model_dir))
    result = run_cmd([str(BIN / "dvc"), "repro"], cwd=project, timeout=900)
    return project, result.stdout


def read_json(path: Path):
    return json.loads(path.read_text())


def test_repro_runs_every_stage_and_leaves_a_servable_champion(lifecycle):
    project, output = lifecycle
    for stage in ("generate", "ingest", "validate", "split", "train", "evaluate", "gate", "package", "monitor"):
        assert f"Running stage '{stage}'" in output
    metrics = read_json(project / "metrics/evaluate.json")
    assert metrics["rows"] > 0 and 0 <= metrics["accuracy"] <= 1
    decision = read_json(project / "reports/gate/decision.json")
    assert decision["accepted"] and decision["basis"].startswith("first run")
    package = read_json(project / "reports/package.json")
    assert package["status"] == "promoted"
    registry = read_json(project / ".bentoml/registry.json")
    assert registry["champion"]["bento"] == package["bento"]
    name, version = package["bento"].split(":")
    assert (project / ".bentoml/bentos" / name / version / "bento.yaml").is_file()
    monitoring = read_json(project / "reports/monitoring/summary.json")
    assert "scored test split" in monitoring["current"] and monitoring["drift"] is False
    assert (project / "reports/monitoring/report.html").is_file()
    assert read_json(project / "reports/validation/summary.json")["success"]
    assert (project / "plots/confusion_matrix.png").is_file()


def test_second_repro_is_a_no_op(lifecycle):
    project, _ = lifecycle
    started = time.perf_counter()
    output = run_cmd([str(BIN / "dvc"), "repro"], cwd=project).stdout
    elapsed = time.perf_counter() - started
    assert "Running stage" not in output and "Data and pipelines are up to date" in output
    print(f"no-op dvc repro took {elapsed:.2f}s")


def test_gate_threshold_change_reruns_only_gate_and_after(lifecycle):
    project, _ = lifecycle
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["gate"]["min_accuracy"] = round(params["gate"]["min_accuracy"] - 0.01, 4)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    output = run_cmd([str(BIN / "dvc"), "repro"], cwd=project).stdout
    ran = [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]
    assert ran == ["gate", "package"]
    assert read_json(project / "reports/package.json")["status"] == "unchanged"  # same model, same champion


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_serve_champion_classify_log_and_monitor(lifecycle):
    project, _ = lifecycle
    bento = read_json(project / ".bentoml/registry.json")["champion"]["bento"]
    port = free_port()
    env = project_env(project)
    server = subprocess.Popen([str(BIN / "bentoml"), "serve", bento, "--host", "127.0.0.1", "--port", str(port)],
                              cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "service did not become ready"
            assert server.poll() is None, "service exited"
            time.sleep(1)
        texts = [f"I was charged twice for order {i}, please refund" for i in range(12)]
        status, body = post(f"{base}/classify", json.dumps({"texts": texts}).encode())
        assert status == 200, body
        answers = json.loads(body)
        assert len(answers) == 12
        labels = set(yaml.safe_load((project / "params.yaml").read_text())["validate"]["labels"])
        for answer in answers:
            assert answer["label"] in labels and set(answer["probabilities"]) == labels
            assert abs(sum(answer["probabilities"].values()) - 1) < 1e-4
            assert answer["model_version"].startswith("text-classifier:")
        too_many = json.dumps({"texts": ["hello"] * 65}).encode()
        too_long = json.dumps({"texts": ["x" * 5001]}).encode()
        for bad in (b'{"texts": []}', b'{"texts": "not a list"}', b'{"texts": [1, 2]}', b'{"wrong": ["x"]}',
                    b"{not json", too_many, too_long):
            status, body = post(f"{base}/classify", bad)
            assert 400 <= status < 500, (bad, status, body)
            assert "Traceback" not in body
        with urllib.request.urlopen(f"{base}/readyz", timeout=5) as response:
            assert response.status == 200
    finally:
        import os
        import signal

        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    traffic = project / "logs/traffic"
    records = [json.loads(line) for path in traffic.glob("*.jsonl") for line in path.read_text().splitlines()]
    assert len(records) == 12 and {r["text"] for r in records} == set(texts)
    result = run_cmd([str(BIN / "mlops"), "monitor", "--current", str(traffic), "--out-dir", "reports/live"],
                     cwd=project)
    summary = read_json(project / "reports/live/summary.json")
    assert summary["current_rows"] == 12 and summary["current"].startswith("served traffic")
    assert "monitor:" in result.stdout


def test_airflow_dags_test_runs_the_lifecycle(tmp_path, repo_params, tiny_model_dir):
    project = copy_project(tmp_path / "airflow-project", tiny_params(repo_params, tiny_model_dir))
    env = project_env(project)
    run_cmd([str(BIN / "airflow"), "db", "migrate"], cwd=project, env=env, timeout=300)
    result = run_cmd([str(BIN / "airflow"), "dags", "test", "lifecycle"], cwd=project, env=env, timeout=900,
                     check=False)
    assert result.returncode == 0, (result.stdout[-5000:], result.stderr[-5000:])
    assert read_json(project / "reports/package.json")["status"] == "promoted"
    assert read_json(project / "reports/monitoring/summary.json")["current_rows"] > 0
