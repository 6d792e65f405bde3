"""The service under concurrent load (2 workers, tiny untrained classifier): single- and multi-text requests
from 64 clients at once all answered, each text's answer the offline model's, and a graceful stop (SIGTERM)
writes a traffic-log line for every answered text (the log is written by a background thread)."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import yaml

from tests.helpers import BIN, ROOT, free_port, post, project_env, start_server, stop, tiny_params, wait_ready

pytestmark = pytest.mark.slow

LABELS = ["billing", "delivery", "technical"]


def test_concurrent_requests_are_answered_like_offline_and_logged_whole_after_a_graceful_stop(tmp_path,
                                                                                               tiny_model_dir):
    script = (
        "from pathlib import Path\n"
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
        "from mlops.ml.model import save_label_map\n"
        "from mlops.core.registry import register_model\n"
        f"out = Path({str(tmp_path / 'model')!r})\n"
        f"AutoModelForSequenceClassification.from_pretrained({str(tiny_model_dir)!r}, num_labels={len(LABELS)})"
        ".save_pretrained(out, safe_serialization=True)\n"
        f"AutoTokenizer.from_pretrained({str(tiny_model_dir)!r}).save_pretrained(out)\n"
        f"save_label_map(out, {LABELS!r}, 48)\n"
        "print(register_model('text-classifier', out, {}))\n")
    env = project_env(tmp_path) | {"PYTHONPATH": str(ROOT)}
    tag = subprocess.run([str(BIN / "python"), "-c", script], env=env, cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout.strip().splitlines()[-1]
    params = tiny_params(yaml.safe_load((ROOT / "params.yaml").read_text()), tiny_model_dir)
    params["serve"].update({"workers": 2, "micro_batch": 4, "max_batch_tokens": 64, "max_batch_size": 16})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    traffic = tmp_path / "traffic"
    env |= {"MLOPS_MODEL_TAG": tag, "MLOPS_PARAMS": str(tmp_path / "params.yaml"), "MLOPS_TRAFFIC_DIR": str(traffic)}
    env.pop("MLOPS_API_KEY", None)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    words = "parcel refund password courier invoice crash login delivery charged app screen late".split()
    texts = [" ".join(words[(i * 7 + j) % len(words)] for j in range(1 + i % 23)) for i in range(640)]
    bodies = [{"text": t} if i % 5 else {"texts": texts[i:i + 1 + i % 9]} for i, t in enumerate(texts)]
    server = start_server("mlops.serving.service:TextClassifier", ROOT, env, port, tmp_path / "server.log")
    try:
        wait_ready(base, server)
        with ThreadPoolExecutor(max_workers=64) as pool:
            answers = list(pool.map(lambda body: post(f"{base}/classify", json.dumps(body).encode()), bodies))
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
            metrics = response.read().decode()
    finally:
        killed = stop(server, grace=30)
    assert not killed, killed  # it stopped by itself on SIGTERM
    assert "path=/classify" not in (tmp_path / "server.log").read_text()  # no access log line per request (default)
    assert "mlops_traffic_log_dropped_total 0.0" in metrics  # nothing dropped, and the counter is exported
    assert (tmp_path / "server.log").read_text().count("Completed cleanup hook: shutdown") == 2  # each worker's flush
    assert all(status == 200 for status, _ in answers), [a for a in answers if a[0] != 200][:3]
    served: dict[str, str] = {}
    for body, (_, raw) in zip(bodies, answers, strict=True):
        answered = json.loads(raw)
        for text, answer in zip(body.get("texts", [body.get("text")]),
                                answered if isinstance(answered, list) else [answered], strict=True):
            served[answer["id"]] = text
            assert answer["model_version"] == tag and set(answer["probabilities"]) == set(LABELS)

    from mlops.ml.model import Classifier

    offline = Classifier.load(tmp_path / "model", device="cpu")
    check = sorted(set(texts))[:60]
    expected = dict(zip(check, offline.predict_proba(check), strict=True))
    by_text = {text: json.loads(raw) for body, (_, raw) in zip(bodies, answers, strict=True)
               if "text" in body for text in [body["text"]]}
    for text in check:
        if text in by_text:
            got = [by_text[text]["probabilities"][label] for label in LABELS]
            assert np.allclose(got, expected[text], atol=1e-4), text

    logged = [json.loads(line) for part in sorted(traffic.glob("traffic-*.jsonl")) for line in
              part.read_text().splitlines()]
    assert sorted(r["id"] for r in logged) == sorted(served)  # every answered text, once, after the stop
    assert all(served[r["id"]] == r["text"] and r["embedding"] for r in logged)
