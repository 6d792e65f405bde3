"""The shadow in a running service (tiny untrained models): clients get the champion's answers only, even from a
challenger that raises, and the traffic log holds both answers, linked by the served id."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from tests.helpers import BIN, ROOT, free_port, post, project_env, start_server, stop, tiny_params, wait_ready

pytestmark = pytest.mark.slow

LABELS = ["billing", "delivery", "technical"]


def register_models(tmp_path, tiny_model_dir, env) -> tuple[str, str]:
    """The champion (the tiny classifier) and then the challenger: another head on a BERT with 16 positions only,
    which raises on any text longer than 16 tokens (the service truncates at 48)."""
    script = (
        "from pathlib import Path\n"
        "import torch\n"
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig\n"
        "from mlops.ml.model import save_label_map\n"
        "from mlops.core.registry import register_model\n"
        f"base = {str(tiny_model_dir)!r}\n"
        "tags = []\n"
        "for name, positions in (('champion', None), ('challenger', 16)):\n"
        f"    out = Path({str(tmp_path)!r}) / name\n"
        "    torch.manual_seed(len(name))\n"
        "    if positions is None:\n"
        f"        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels={len(LABELS)})\n"
        "    else:\n"
        f"        config = BertConfig.from_pretrained(base, num_labels={len(LABELS)}, "
        "max_position_embeddings=positions)\n"
        "        model = AutoModelForSequenceClassification.from_config(config)\n"
        "    model.save_pretrained(out, safe_serialization=True)\n"
        "    AutoTokenizer.from_pretrained(base).save_pretrained(out)\n"
        f"    save_label_map(out, {LABELS!r}, 48)\n"
        "    tags.append(register_model('text-classifier', out, {}))\n"
        "print(' '.join(tags))\n")
    out = subprocess.run([str(BIN / "python"), "-c", script], env=env, cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout.strip().splitlines()[-1]
    champion, challenger = out.split()
    return champion, challenger


def metric(base: str, name: str) -> float:
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    return float("nan")


def wait_for(base: str, name: str, value: float, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while metric(base, name) < value:
        assert time.monotonic() < deadline, f"{name} did not reach {value}: {metric(base, name)}"
        time.sleep(0.5)


def test_clients_get_only_champion_answers_and_the_log_holds_both(tmp_path, tiny_model_dir):
    """Given a served champion and a registered challenger that raises on long texts, with serve.shadow on at a
    share of 0.5, when 40 short and then 40 long texts are classified by concurrent clients, then every answer is
    a 200 from the champion, the challenger scored half the short ones (its failures on the long ones counted,
    never seen), and after a graceful stop the traffic log holds the 80 served answers and, in its shadow parts,
    the challenger's 20 answers, each linked to a served id and carrying that answer's label."""
    env = project_env(tmp_path) | {"PYTHONPATH": str(ROOT)}
    champion, challenger = register_models(tmp_path, tiny_model_dir, env)
    params = tiny_params(yaml.safe_load((ROOT / "params.yaml").read_text()), tiny_model_dir)
    params["serve"].update({"shadow": True, "shadow_share": 0.5, "micro_batch": 4, "max_batch_tokens": 64,
                            "max_batch_size": 16})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    traffic = tmp_path / "traffic"
    env |= {"MLOPS_MODEL_TAG": champion, "MLOPS_PARAMS": str(tmp_path / "params.yaml"),
            "MLOPS_TRAFFIC_DIR": str(traffic)}
    env.pop("MLOPS_API_KEY", None)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    words = "parcel refund password courier invoice crash login delivery charged app screen late".split()
    short = [f"{words[i % 12]} {words[(i * 5) % 12]}" for i in range(40)]
    long = [" ".join(words[(i + j) % 12] for j in range(30)) for i in range(40)]
    server = start_server("mlops.serving.service:TextClassifier", ROOT, env, port, tmp_path / "server.log")
    try:
        wait_ready(base, server)
        assert metric(base, "mlops_shadow_active") == 1.0
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(lambda t: post(f"{base}/classify", json.dumps({"text": t}).encode()), short))
            wait_for(base, "mlops_shadow_scored_total", 20)  # the short ones scored before any long one is sent
            answers += list(pool.map(lambda t: post(f"{base}/classify", json.dumps({"text": t}).encode()), long))
        wait_for(base, "mlops_shadow_errors_total", 20)
        dropped = metric(base, "mlops_shadow_dropped_total")
    finally:
        killed = stop(server, grace=30)
    assert not killed, killed
    log = (tmp_path / "server.log").read_text()
    assert f"serve: shadow: the challenger {challenger} scores 50% of requests in shadow" in log
    assert all(status == 200 for status, _ in answers), [a for a in answers if a[0] != 200][:3]
    served = {answer["id"]: answer for answer in (json.loads(raw) for _, raw in answers)}
    assert len(served) == 80 and {a["model_version"] for a in served.values()} == {champion}
    assert dropped == 0.0

    logged = [json.loads(line) for part in sorted(traffic.glob("traffic-*.jsonl"))
              for line in part.read_text().splitlines()]
    assert sorted(r["id"] for r in logged) == sorted(served) and not any("shadow" in r for r in logged)
    shadows = [json.loads(line) for part in sorted(traffic.glob("shadow-*.jsonl"))
               for line in part.read_text().splitlines()]
    assert len(shadows) == 20 and all(r["shadow"] and r["model_version"] == challenger for r in shadows)
    assert {r["shadow_of"] for r in shadows} <= set(served)
    for record in shadows:
        answer = served[record["shadow_of"]]
        assert (record["champion_prediction"], record["champion_version"]) == (answer["label"], champion)
        assert record["prediction"] in LABELS
    texts = {r["id"]: r["text"] for r in logged}
    assert {texts[r["shadow_of"]] for r in shadows} <= set(short)  # the long ones failed in the shadow only
