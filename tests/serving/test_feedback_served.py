"""`POST /feedback` on a running service (2 workers, client and labeller keys set): ids on /classify answers,
every bad input's 4xx, a client's labels kept apart as suggestions, two servers sharing one store, and a SIGKILL
while labels are being posted loses no acknowledged label."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.helpers import BIN, ROOT, free_port, post, project_env, tiny_params, wait_ready

pytestmark = pytest.mark.slow

LABELS = ["billing", "delivery", "technical", "account", "feedback"]


@pytest.fixture(scope="module")
def store(tmp_path_factory, tiny_model_dir) -> tuple[Path, str, Path]:
    """An untrained tiny classifier registered in a private BentoML home; (home, tag, params file)."""
    root = tmp_path_factory.mktemp("feedback-serve")
    model_dir = root / "model"
    script = (
        "import sys, shutil; from pathlib import Path\n"
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
        "from mlops.ml.model import save_label_map\n"
        "from mlops.core.registry import register_model\n"
        f"labels = {LABELS!r}; out = Path({str(model_dir)!r})\n"
        f"AutoModelForSequenceClassification.from_pretrained({str(tiny_model_dir)!r}, num_labels=len(labels))"
        ".save_pretrained(out, safe_serialization=True)\n"
        f"AutoTokenizer.from_pretrained({str(tiny_model_dir)!r}).save_pretrained(out)\n"
        "save_label_map(out, labels, 48)\n"
        "print(register_model('text-classifier', out, {}))\n")
    env = project_env(root) | {"PYTHONPATH": str(ROOT)}
    tag = subprocess.run([str(BIN / "python"), "-c", script], env=env, cwd=root, capture_output=True, text=True,
                         check=True).stdout.strip().splitlines()[-1]
    params = tiny_params(yaml.safe_load((ROOT / "params.yaml").read_text()), tiny_model_dir)
    params["serve"]["max_body_kb"] = 16
    params["serve"]["workers"] = 2  # labels posted to two processes, one feedback log
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root, tag, root / "params.yaml"


CLIENT_KEY, LABEL_KEY = "client-key", "label-key"


def start(root: Path, tag: str, params: Path, key: str = CLIENT_KEY) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = project_env(root) | {"PYTHONPATH": str(ROOT), "MLOPS_MODEL_TAG": tag, "MLOPS_PARAMS": str(params),
                               "MLOPS_API_KEY": key, "MLOPS_LABEL_KEY": LABEL_KEY,
                               "MLOPS_FEEDBACK_DIR": str(root / "logs" / "feedback")}
    server = subprocess.Popen([str(BIN / "bentoml"), "serve", "mlops.serving.service:TextClassifier", "--host",
                               "127.0.0.1", "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, server)
    return server, base


def kill(server: subprocess.Popen) -> None:
    """SIGKILL to the server and its workers (BentoML starts each worker in a session of its own)."""
    import psutil

    try:
        workers = psutil.Process(server.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        workers = []
    os.killpg(server.pid, signal.SIGKILL)
    for worker in workers:
        try:
            worker.kill()
        except psutil.NoSuchProcess:
            pass
    server.wait(timeout=30)
    psutil.wait_procs(workers, timeout=30)


def classify(base: str, key: str, texts: list[str]) -> list[dict]:
    status, body = post(f"{base}/classify", json.dumps({"texts": texts}).encode(), key=key)
    assert status == 200, body
    return json.loads(body)


def test_feedback_answers_and_every_bad_input_gets_its_4xx(store):
    root, tag, params = store
    key = LABEL_KEY
    server, base = start(root, tag, params)
    try:
        answers = classify(base, CLIENT_KEY, ["my parcel never came", "charged twice", "app crashes on start"])
        ids = [answer["id"] for answer in answers]
        assert len(set(ids)) == 3 and all(len(i) == 26 for i in ids)
        one = post(f"{base}/classify", b'{"text": "reset my password"}', key=key)
        assert one[0] == 200 and json.loads(one[1])["id"] not in ids

        status, body = post(f"{base}/feedback", json.dumps({"id": ids[0], "label": "delivery"}).encode(), key=key)
        assert (status, json.loads(body)) == (200, {"id": ids[0], "label": "delivery", "status": "recorded"})
        status, body = post(f"{base}/feedback", json.dumps([{"id": ids[0], "label": "billing"},
                                                             {"id": ids[1], "label": "billing"}]).encode(), key=key)
        assert status == 200 and json.loads(body)[0] == {"id": ids[0], "label": "billing", "status": "replaced",
                                                          "previous_label": "delivery"}, body

        unknown = "01JD0000000000000000000000"
        cases = {
            "unknown id": (json.dumps({"id": unknown, "label": "billing"}).encode(), key, 404, unknown),
            "unknown label": (json.dumps({"id": ids[2], "label": "refund"}).encode(), key, 422, "allowed_labels"),
            "wrong type": (json.dumps({"id": ids[2], "label": 3}).encode(), key, 400, "must be a string"),
            "missing field": (json.dumps({"id": ids[2]}).encode(), key, 400, "missing field 'label'"),
            "empty body": (b"", key, 400, "not JSON"),
            "empty list": (b"[]", key, 400, "empty list"),
            "oversized": (json.dumps([{"id": ids[2], "label": "x" * 100}] * 300).encode(), key, 413, "exceeds"),
            "no key": (json.dumps({"id": ids[2], "label": "billing"}).encode(), None, 401, "API key"),
            "wrong key": (json.dumps({"id": ids[2], "label": "billing"}).encode(), "nope", 401, "API key"),
        }
        for kind, (body, given, expected, fragment) in cases.items():
            status, answer = post(f"{base}/feedback", body, key=given)
            assert status == expected and fragment in answer, (kind, status, answer)
        status, answer = post(f"{base}/feedback", b'{"id": "x", "label": "billing"}', content_type="text/plain",
                              key=key)
        assert status == 415, answer
        allowed = json.loads(post(f"{base}/feedback", json.dumps({"id": ids[2], "label": "refund"}).encode(),
                                  key=key)[1])["allowed_labels"]
        assert allowed == LABELS
        # a client's label is a suggestion: answered as such, kept apart from the labellers' log
        status, body = post(f"{base}/feedback", json.dumps({"id": ids[2], "label": "account"}).encode(),
                            key=CLIENT_KEY)
        assert (status, json.loads(body)) == (200, {"id": ids[2], "label": "account", "status": "suggested"})
    finally:
        kill(server)
    suggestions = [json.loads(line) for line in (root / "logs/feedback/suggestions.jsonl").read_text().splitlines()]
    assert [(r["id"], r["label"], r["source"], r["role"]) for r in suggestions] == [
        (ids[2], "account", "client", "client")]
    records = [json.loads(line) for line in (root / "logs/feedback/feedback.jsonl").read_text().splitlines()]
    assert [(r["id"], r["label"], r["text"], r["source"], r["role"]) for r in records] == [
        (ids[0], "delivery", "my parcel never came", "labeller", "labeller"),
        (ids[0], "billing", "my parcel never came", "labeller", "labeller"),
        (ids[1], "billing", "charged twice", "labeller", "labeller")]
    assert all(r["model_version"] == tag and r["labelled_at"] for r in records)


def test_two_servers_share_one_store_and_a_new_one_loses_nothing(store):
    """Given two server processes on one traffic and feedback store (replicas, or a container and its successor),
    when a labeller labels on the second the texts the first answered, then every label is accepted and
    collected; a client's contradicting labels posted there never reach the data; and after the first server is
    killed, a new one still accepts labels for what it served."""
    root, tag, params = store
    first, first_base = start(root, tag, params)
    second, second_base = start(root, tag, params)
    try:
        served = [answer for at in range(0, 220, 50) for answer in classify(
            first_base, CLIENT_KEY, [f"replica text number {i}" for i in range(at, min(at + 50, 220))])]
        agreeing = [{"id": a["id"], "label": a["label"]} for a in served[:120]]
        status, body = post(f"{second_base}/feedback", json.dumps(agreeing).encode(), key=LABEL_KEY)
        assert status == 200 and {a["status"] for a in json.loads(body)} == {"recorded"}, body
        contradicting = [{"id": a["id"], "label": LABELS[(LABELS.index(a["label"]) + 1) % 5]} for a in served[120:]]
        status, body = post(f"{second_base}/feedback", json.dumps(contradicting).encode(), key=CLIENT_KEY)
        assert status == 200 and {a["status"] for a in json.loads(body)} == {"suggested"}, body
        kill(first)
        third, third_base = start(root, tag, params)  # the first one's successor, on the same store
        try:
            late = [{"id": served[0]["id"], "label": served[0]["label"]}]
            assert post(f"{third_base}/feedback", json.dumps(late).encode(), key=LABEL_KEY)[0] == 200
        finally:
            kill(third)
    finally:
        for server in (first, second):
            if server.poll() is None:
                kill(server)
    batches = root / "replica-batches"
    settings = yaml.safe_load(params.read_text())
    settings["feedback"]["batches_dir"] = str(batches)
    (root / "replica-params.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    out = subprocess.run([str(BIN / "mlops"), "--params", "replica-params.yaml", "feedback", "collect", "--log",
                          str(root / "logs/feedback/feedback.jsonl")], cwd=root, capture_output=True, text=True,
                         env=project_env(root) | {"PYTHONPATH": str(ROOT)}, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = pd.concat([pd.read_csv(path, dtype=str) for path in batches.glob("batch-*.csv")])
    ours = rows[rows["id"].isin([a["id"] for a in served])]
    assert sorted(ours["id"]) == sorted(a["id"] for a in served[:120])  # every labeller label, no client one
    assert dict(zip(ours["id"], ours["label"], strict=True)) == {a["id"]: a["label"] for a in served[:120]}


def test_sigkill_while_feedback_is_posted_loses_no_acknowledged_label(store):
    root, tag, params = store
    key = LABEL_KEY
    server, base = start(root, tag, params)
    acknowledged: list[tuple[str, str]] = []
    lock = threading.Lock()
    try:
        ids = [answer["id"] for start_at in range(0, 400, 50)
               for answer in classify(base, key, [f"message number {i}" for i in range(start_at, start_at + 50)])]

        def label(index: int) -> None:
            given = LABELS[index % len(LABELS)]
            try:
                status, _ = post(f"{base}/feedback", json.dumps({"id": ids[index], "label": given}).encode(), key=key)
            except (OSError, http.client.HTTPException):
                return  # the server died mid-request (no answer, or a cut one): not acknowledged
            if status == 200:
                with lock:
                    acknowledged.append((ids[index], given))
            if index == 120:
                kill(server)  # SIGKILL to every process of the server while other requests are in flight

        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(label, range(len(ids))))
    finally:
        if server.poll() is None:
            kill(server)
    assert len(acknowledged) >= 100, len(acknowledged)
    assert len(acknowledged) < len(ids)  # the kill did cut the stream
    kept = {}
    for line in (root / "logs/feedback/feedback.jsonl").read_bytes().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        kept[record["id"]] = record["label"]
    lost = [pair for pair in acknowledged if kept.get(pair[0]) != pair[1]]
    assert not lost, lost
