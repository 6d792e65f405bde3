"""Benchmark: each serving variant's strict offline limit and its served throughput and tail latency (#13, 6).

In one run, on the same cores, on the project's test split (AG News preset: the official 7,600-row test split):
1. the strict offline limit of every variant present in the champion model (fp32, torch_int8 and the ONNX ones it
   stores, or --variants): texts/s in-process, windows of 64 texts sorted by length (what the service's scheduler
   hands its model calls), micro-batches of 8 and of 16 texts, as one call of 2 threads and as two concurrent
   calls of 1 thread each; the limit is the best of the four; one worker process per variant, exited before
   serving starts; each variant's accuracy and its agreement with fp32;
2. per variant, `bentoml serve` with serve.precision set to it, under closed loops of exactly c clients:
   1, 8, 32, 64 single-text clients and 64 clients sending 16 texts per request: texts/s, requests/s, p50, p99,
   errors by kind, the mean window size, server and client CPU, the served labels' agreement with offline;
3. the issue's checks with target and verdict: served single-text texts/s at 64 clients >= 0.5x the variant's
   strict limit (aim 0.7x), >= 0.85x with 16-text requests, p99 <= 2.5x p50 at 64 single-text clients, no errors.
Writes bench/results/serve.json (server logs in bench/results/serve-logs/). Run it on a quiet machine: on 2 cores
any other busy process skews every figure.

    python bench/lifecycle.py --preset configs/ag_news.yaml --keep ../agproj   # once: a project with a champion
    python bench/serve.py [--project ../agproj] [--quick]   # --quick: ~10x fewer requests and texts (smoke)
    python bench/serve.py --source . --variants onnx_int8 --set max_batch_tokens=768   # this checkout's service
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import gc
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_file import RESULTS, finish  # noqa: E402

from mlops.core import registry  # noqa: E402
from mlops.core.pipeline import stage_path  # noqa: E402
from mlops.ml.variants import SERVABLE, served_variant, variant_files  # noqa: E402
from tests.helpers import (  # noqa: E402
    closed_loop,
    free_port,
    percentile_ms,
    project_env,
    server_cpu_seconds,
    start_server,
    stop,
    wait_ready,
)

# clients x texts per request : requests; 64 x 1 runs ~15 s and 64 x 16 ~20 s with the int8 student on 2 cores,
# long enough that a second of another process's work moves the ratio by a few percent, not by a tenth
FULL_LEVELS = "1x1:600,8x1:2400,32x1:4800,64x1:9600,64x16:1200"
OFFLINE_TEXTS = 4096  # per layout and micro-batch size: ~5 s each for the student, the limit is the best of four
WINDOW, MICRO_BATCHES = 64, (8, 16)
LAYOUTS = {"1_call_2_threads": (1, 2), "2_calls_1_thread": (2, 1)}  # concurrent calls, threads per call
TARGETS = {"served_vs_limit": 0.5, "served_vs_limit_aim": 0.7, "served_16_texts_vs_limit": 0.85,
           "p99_over_p50": 2.5}


def present_variants(model_dir: Path) -> list[str]:
    """The variants a stored model can serve: the candidate's torch ones always, any other when its files (an ONNX
    directory, a distilled student's weights) are inside."""
    return [v for v in SERVABLE if all((model_dir / name).is_file() for name in variant_files(v))]


def run_windows(runtime: Any, windows: list[list[str]], micro: int, calls: int) -> float:
    """Seconds for `calls` concurrent threads to predict every window (each takes the next one when free)."""
    pending, lock = list(windows), threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if not pending:
                    return
                window = pending.pop(0)
            runtime.predict(window, micro)

    started = time.perf_counter()
    workers = [threading.Thread(target=work) for _ in range(calls)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started


def measure_offline(config: dict[str, Any]) -> dict[str, Any]:
    """In a worker process, one variant: texts/s per micro-batch size and call layout; its labels."""
    import torch

    from mlops.ml.variants import load_variant

    texts, out = config["texts"], {"texts_per_s": {}}
    windows = [texts[i:i + WINDOW] for i in range(0, len(texts), WINDOW)]
    for layout, (calls, threads) in LAYOUTS.items():
        torch.set_num_threads(threads)
        runtime = load_variant(config["model_dir"], config["variant"], threads=threads)
        for micro in MICRO_BATCHES:
            runtime.predict(config["warmup"], micro)
            seconds = run_windows(runtime, windows, micro, calls)
            out["texts_per_s"][f"{layout}_micro_{micro}"] = round(len(texts) / seconds, 1)
        if "labels" not in out:
            out["labels"] = [runtime.labels[int(i)] for i in runtime.predict_proba(config["label_texts"]).argmax(1)]
    out["limit"], out["limit_setting"] = max((v, k) for k, v in out["texts_per_s"].items())
    return out


def run_offline(project: Path, model_dir: Path, variant: str, texts: list[str], label_texts: list[str],
                workdir: Path) -> dict[str, Any]:
    """One worker process per variant (so that neither its threads nor its memory live on into serving): texts/s
    over `texts`, and the labels of `label_texts` (the whole test split, for the variant's accuracy)."""
    config = workdir / f"offline-{variant}.json"
    config.write_text(json.dumps({"model_dir": str(model_dir), "variant": variant, "texts": texts,
                                  "warmup": texts[-WINDOW:], "label_texts": label_texts}))
    env = project_env(project) | {"OMP_WAIT_POLICY": "PASSIVE"}  # what the service runs with
    subprocess.run([sys.executable, __file__, "--offline-worker", str(config)], env=env, check=True)
    result = json.loads(config.read_text())  # the worker replaced its input with its figures
    print(f"offline {variant}: texts/s {result['texts_per_s']}; limit {result['limit']}", flush=True)
    return result


def batch_histogram(base: str) -> tuple[float, float]:
    """(sum, count) of the adaptive batch size histogram over all workers, from /metrics; (0, 0) without it."""
    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
            text = response.read().decode(errors="replace")
    except OSError:
        return 0.0, 0.0
    samples = [sample for family in text_string_to_metric_families(text) for sample in family.samples]
    return tuple(sum(x.value for x in samples if x.name == f"bentoml_service_adaptive_batch_size_{part}")
                 for part in ("sum", "count"))


def run_level(server: subprocess.Popen, base: str, bodies: list[bytes], start: int, level: tuple[int, int, int],
              labels: dict[int, str]) -> dict[str, Any]:
    (concurrency, per_request, count), cpu = level, server_cpu_seconds(server)
    (batch_sum, batches), load = batch_histogram(base), os.getloadavg()[0]
    out = asyncio.run(closed_loop(f"{base}/classify", bodies, start, count, concurrency))
    cpu, (batch_sum_after, batches_after) = server_cpu_seconds(server) - cpu, batch_histogram(base)
    batch_sum, batches = batch_sum_after - batch_sum, batches_after - batches
    if per_request == 1:
        labels.update((index, json.loads(raw)["label"]) for index, raw in out["answers"])
    ok, wall = len(out["latencies"]), out["wall"]
    p50, p99 = percentile_ms(out["latencies"], 50), percentile_ms(out["latencies"], 99)
    return {"concurrency": concurrency, "texts_per_request": per_request, "requests": count, "ok": ok,
            "errors": dict(out["errors"]), "seconds": round(wall, 2), "requests_per_s": round(ok / wall, 2),
            "texts_per_s": round(ok * per_request / wall, 2), "p50_ms": p50, "p99_ms": p99,
            "p99_over_p50": ratio(p99, p50), "mean_window_texts": round(batch_sum / batches, 2) if batches else None,
            "client_cpu_cores": round(out["client_cpu"] / wall, 2), "server_cpu_cores": round(cpu / wall, 2),
            "load_average_1m_before": round(load, 2)}


def serve_variant(variant: str, keys: dict[str, Any], project: Path, target: str, cwd: Path,
                  base_params: dict[str, Any], bodies: dict[int, list[bytes]], levels: list[tuple[int, int, int]],
                  warmup: int, workdir: Path, reference: list[str]) -> dict[str, Any]:
    """Serve `target` with serve.precision = `variant` (and `keys`), warm it up, and run every load level; the
    single-text answers' agreement with the variant's offline labels."""
    params = copy.deepcopy(base_params)
    params["serve"].update({"precision": variant, **keys})
    (workdir / f"{variant}.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = project_env(project) | {"MLOPS_PARAMS": str(workdir / f"{variant}.yaml"),
                                  "MLOPS_TRAFFIC_DIR": str(workdir / variant)}
    env.pop(params["serve"]["api_key_env"], None)  # no key: the endpoint is open to the load generator
    port, log = free_port(), RESULTS / "serve-logs" / f"{variant}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"\n[{variant}] serve: {json.dumps(params['serve'])}; bentoml serve {target}", flush=True)
    base, started, labels = f"http://127.0.0.1:{port}", time.monotonic(), {}
    server = start_server(target, cwd, env, port, log)
    result: dict[str, Any] = {"serve": params["serve"], "levels": [], "log": str(log)}
    try:
        wait_ready(base, server, timeout=300)
        result["ready_seconds"] = round(time.monotonic() - started, 1)
        warm = asyncio.run(closed_loop(f"{base}/classify", bodies[1], 0, warmup, min(8, warmup)))
        result["warmup"] = {"requests": warmup, "errors": dict(warm["errors"])}
        for level in levels:
            start = warmup + sum(x["requests"] for x in result["levels"] if x["texts_per_request"] == level[1])
            result["levels"].append(x := run_level(server, base, bodies[level[1]], start, level, labels))
            print(f"[{variant}] c={x['concurrency']:<3} x{x['texts_per_request']:<2} {x['ok']}/{x['requests']} ok, "
                  f"{x['texts_per_s']} texts/s, p50 {x['p50_ms']} ms, p99 {x['p99_ms']} ms (x{x['p99_over_p50']}), "
                  f"window {x['mean_window_texts']}, errors {x['errors'] or 0}", flush=True)
    except AssertionError as error:  # wait_ready: the server exited or never became ready
        result["failed"] = f"{error}; log tail: " + " | ".join(log.read_text(errors="replace").splitlines()[-15:])
        print(f"[{variant}] FAILED: {result['failed']}", flush=True)
    finally:
        started = time.monotonic()
        result["stop"] = {"killed": stop(server, grace=10), "seconds": round(time.monotonic() - started, 1)}
    agree, compared = agreement(labels, reference)
    result["quality"] = {"texts": len(labels), "agreement_with_offline": agree, "compared_with_offline": compared}
    return result


def agreement(labels: dict[int, str], reference: list[str]) -> tuple[float | None, int]:
    """The share of `labels` (by text index) equal to `reference` at the same index, and how many were compared."""
    common = [i for i in labels if i < len(reference)]
    return (round(sum(labels[i] == reference[i] for i in common) / len(common), 4) if common else None), len(common)


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def check(name: str, observed: Any, op: str, target: float, passed: bool | None = None, **details: Any) -> dict:
    if passed is None and isinstance(observed, int | float):
        passed = observed <= target if op == "<=" else observed >= target
    return {"check": name, "observed": observed, "target": f"{op} {target}", "passed": passed, **details}


def level(result: dict[str, Any], clients: int, per_request: int) -> dict[str, Any]:
    found = [x for x in result.get("levels", [])
             if (x["concurrency"], x["texts_per_request"]) == (clients, per_request)]
    return found[0] if found else {}


def checks(offline: dict[str, Any], served: dict[str, Any], headline: str) -> list[dict[str, Any]]:
    """The issue's checks per served variant (the model's own serving variant first): observed, target, verdict."""
    out = []
    for variant in sorted(served, key=lambda v: v != headline):
        limit, single, multi = offline[variant]["limit"], level(served[variant], 64, 1), level(served[variant], 64, 16)
        name = f"{variant}{' (the model serves it)' if variant == headline else ''}"
        errors = sum((Counter(x["errors"]) for x in served[variant].get("levels", [])), Counter())
        out += [
            check(f"{name}: served texts/s, 64 single-text clients / strict limit",
                  ratio(single.get("texts_per_s"), limit), ">=", TARGETS["served_vs_limit"],
                  aim=TARGETS["served_vs_limit_aim"], served=single.get("texts_per_s"), limit=limit),
            check(f"{name}: served texts/s, 64 clients x 16 texts / strict limit",
                  ratio(multi.get("texts_per_s"), limit), ">=", TARGETS["served_16_texts_vs_limit"],
                  served=multi.get("texts_per_s"), limit=limit),
            check(f"{name}: p99 / p50, 64 single-text clients", single.get("p99_over_p50"), "<=",
                  TARGETS["p99_over_p50"], p50_ms=single.get("p50_ms"), p99_ms=single.get("p99_ms")),
            check(f"{name}: errors over every level", sum(errors.values()), "<=", 0,
                  None if "failed" in served[variant] else not errors, by_kind=dict(errors)),
        ]
    return out


def parse_levels(text: str) -> list[tuple[int, int, int]]:
    """`clients x texts per request : requests`, comma-separated, e.g. 64x1:2400,64x16:600."""
    try:
        return [(int(c), int(t), int(n)) for c, t, n in
                (part.replace("x", ":").split(":") for part in text.split(","))]
    except ValueError:
        raise argparse.ArgumentTypeError("clientsxtexts:requests,... e.g. 1x1:300,64x16:600") from None


def parse_set(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError("key=value, a key of serve:")
    return key, yaml.safe_load(value)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--offline-worker":  # run_offline's worker process
        config = Path(sys.argv[2])
        config.write_text(json.dumps(measure_offline(json.loads(config.read_text()))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT.parent / "agproj",
                        help="a project with a packaged champion (bench/lifecycle.py --keep); default ../agproj")
    parser.add_argument("--source", type=Path, help="serve mlops.serving.service:TextClassifier from this checkout "
                                                    "(with its params.yaml and the champion model), not the Bento")
    parser.add_argument("--levels", type=parse_levels, help=f"clientsxtexts:requests,... (default {FULL_LEVELS})")
    parser.add_argument("--variants", help="comma-separated (default: every variant present in the model)")
    parser.add_argument("--set", dest="overrides", type=parse_set, action="append", default=[],
                        help="key=value of serve: for every variant, e.g. --set max_batch_tokens=768 (repeatable)")
    parser.add_argument("--quick", action="store_true", help="about 10x fewer requests and texts (development)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # through the finally blocks that stop servers
    levels = args.levels or [(c, t, max(c, n // (10 if args.quick else 1))) for c, t, n in parse_levels(FULL_LEVELS)]
    project = args.project.resolve()
    os.environ["BENTOML_HOME"] = str(project / ".bentoml")  # before mlops.core.registry reads it
    import bentoml

    champion = registry.champion()
    if not champion or not (args.source or champion.get("bento")):
        parser.error(f"{registry.registry_path()}: no champion{'' if champion else ' Bento (use --source)'}")
    model_dir = registry.model_path(champion["model"])
    present = present_variants(model_dir)
    variants = args.variants.split(",") if args.variants else present
    if set(variants) - set(present):
        parser.error(f"--variants: {sorted(set(variants) - set(present))} not in the model (it has {present})")
    test = pd.read_parquet(project / stage_path(project, "split", "out-dir") / "test.parquet")
    texts, gold = test["text"].tolist(), test["label"].astype(str).tolist()
    if args.source:
        target, cwd = "mlops.serving.service:TextClassifier", args.source.resolve()
        params_file = cwd / "params.yaml"
        os.environ["MLOPS_MODEL_TAG"] = champion["model"]  # project_env passes it on to the server
    else:
        target, cwd = champion["bento"], project
        params_file = Path(bentoml.bentos.get(target).path) / "src" / "params.yaml"
    headline = served_variant(model_dir, "auto")
    result: dict[str, Any] = {
        "project": str(project), "model": champion["model"], "model_serves": headline, "serving": target,
        "params_base": str(params_file), "quick": args.quick, "levels": levels, "texts": len(texts),
        "targets": TARGETS, "overrides": dict(args.overrides),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_start": os.getloadavg()},
        "versions": {name: version(name) for name in ("bentoml", "torch", "transformers", "onnxruntime")},
    }
    print(f"project {project}: model {champion['model']} (serves {headline}), variants {variants}, serving {target}; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
          + (" (busy: every figure is skewed)" if os.getloadavg()[0] > 0.5 else ""))
    count, rows = (256, 256) if args.quick else (OFFLINE_TEXTS, len(texts))
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        offline = {v: run_offline(project, model_dir, v, texts[:count], texts[:rows], Path(tmp))
                   for v in variants}
        reference = {v: offline[v].pop("labels") for v in variants}
        for v in variants:
            offline[v]["accuracy"] = agreement(dict(enumerate(reference[v])), gold)[0]
            offline[v]["agreement_with_fp32"] = agreement(dict(enumerate(reference[v])), reference["fp32"])[0] \
                if "fp32" in reference else None
        per_request = sorted({t for _, t, _ in levels})
        gc.collect()  # the load generator's own full collections (pandas, BentoML loaded) would stall its clocks
        gc.freeze()
        bodies = {t: [json.dumps({"text": x} if t == 1 else {"texts": (texts * 2)[i:i + t]}).encode()
                      for i, x in enumerate(texts)] for t in per_request}
        served = {v: serve_variant(v, dict(args.overrides), project, target, cwd,
                                   yaml.safe_load(params_file.read_text()), bodies, levels,
                                   16 if args.quick else 50, Path(tmp), reference[v]) for v in variants}
        result.update({"offline": offline, "served": served})
    result["checks"] = checks(offline, served, headline)
    finish("serve", result)


if __name__ == "__main__":
    main()
