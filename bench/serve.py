"""Benchmark: the served classifier under load against the offline limit, fp32 and int8 (issue 6).

One run measures, on the same cores:

1. the offline limit: the champion model in-process with all cores' threads, in subprocesses that exit before
   serving starts (one per OpenMP wait policy: libgomp's default, and PASSIVE, which the service sets): texts/s
   of `predict_proba` at batch sizes 8-64 after a warm-up, and one text per call, fp32 and int8; the limit is the
   best. Both precisions' labels on the test split give their accuracy;
2. the served endpoint: for each variant (batched fp32, unbatched fp32 = `serve.batching: false`, batched int8
   = `serve.precision: int8`, batched fp32 without the traffic log = `serve.traffic.enabled: false`),
   `bentoml serve` of the champion Bento with a params file that changes only those serve: keys
   (MLOPS_PARAMS), then a closed-loop load generator (exactly c clients, each sending single-text requests
   `{"text": ...}` in the test split's order) at concurrency 1, 8, 32 and 64: throughput, p50, p99, errors by
   kind (status code or exception), the adaptive batch size the server reports, and the CPU the client and the
   server used; the served labels give each variant's accuracy and its agreement with the offline model;
3. the cost of one traffic-log append, in-process;
4. the issue's checks, each with observed value, target and verdict.

The texts are the project's test split (with the AG News preset: the official 7,600-row test split). Writes
bench/results/serve.json (server logs in bench/results/serve-logs/) and prints a table. Run it on a quiet
machine: on 2 cores any other busy process skews every figure.

    python bench/lifecycle.py --preset configs/ag_news.yaml --keep ../agproj   # once: a project with a champion
    python bench/serve.py [--project ../agproj]     # the full run (about 16 minutes)
    python bench/serve.py --quick                   # ~10x fewer requests and texts
    python bench/serve.py --levels 64:2400 --variants batched_fp32 --set workers=1 --set model_calls=2
    python bench/serve.py --source .                # this checkout's service with the champion model
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_file import RESULTS, write_result  # noqa: E402

from tests.helpers import free_port, project_env, start_server, stop, wait_ready  # noqa: E402

# serve: keys each variant changes; everything else stays as the params file has it
VARIANTS: dict[str, dict[str, Any]] = {
    "batched_fp32": {"batching": True, "precision": "fp32"},
    "unbatched_fp32": {"batching": False, "precision": "fp32"},
    "batched_int8": {"batching": True, "precision": "int8"},
    "batched_fp32_nolog": {"batching": True, "precision": "fp32", "traffic": {"enabled": False}},  # what logging costs
}
FULL_LEVELS = "1:300,8:1200,32:2400,64:2400"
BATCH_SIZES = (8, 16, 32, 64)
WAIT_POLICIES = ("default", "PASSIVE")
PRECISIONS = ("fp32", "int8")
TARGETS = {"served_vs_offline": 0.8, "batched_vs_unbatched": 1.0, "min_requests": 2000, "int8_speedup": 1.5,
           "int8_max_loss_points": 1.0, "traffic_log_max_cost": 0.05}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def measure_offline(config: dict[str, Any]) -> dict[str, Any]:
    """In a worker process: per precision, texts/s of predict_proba per batch size and one text per call; the
    labels of `label_texts` when given."""
    import torch

    from mlops.ml.model import Classifier

    torch.set_num_threads(config["threads"])
    sample = config["texts"]
    out: dict[str, Any] = {"torch_threads": torch.get_num_threads()}
    for precision in PRECISIONS:
        started = time.perf_counter()
        classifier = Classifier.load(config["model_dir"], device="cpu", precision=precision)
        entry: dict[str, Any] = {"load_seconds": round(time.perf_counter() - started, 2), "texts_per_s": {}}
        for size in BATCH_SIZES:  # warm-up: every batch size once, on texts not measured
            classifier.predict_proba(config["warmup"][:2 * size], batch_size=size)
        for size in BATCH_SIZES:
            started = time.perf_counter()
            classifier.predict_proba(sample, batch_size=size)
            entry["texts_per_s"][str(size)] = round(len(sample) / (time.perf_counter() - started), 2)
        single = sample[:max(20, len(sample) // 5)]
        started = time.perf_counter()
        for text in single:
            classifier.predict_proba([text], batch_size=1)
        entry["one_text_per_call"] = round(len(single) / (time.perf_counter() - started), 2)
        if config["label_texts"]:
            proba = classifier.predict_proba(config["label_texts"], batch_size=64)
            entry["labels"] = [classifier.labels[int(i)] for i in proba.argmax(axis=1)]
        out[precision] = entry
    return out


def run_offline(project: Path, model_dir: Path, texts: list[str], count: int, rows: int,
                workdir: Path) -> dict[str, Any]:
    """One worker process per OpenMP wait policy (libgomp's default spins, PASSIVE sleeps), so that neither the
    policy nor the model's threads live on into serving; the limit is the best texts/s over policies and batch
    sizes. Labels from the first worker only."""
    threads = os.cpu_count() or 1
    result: dict[str, Any] = {"threads": threads, "texts": count, "label_rows": rows,
                              "load_average_before": load_average()}
    for number, policy in enumerate(WAIT_POLICIES):
        config_path, out_path = workdir / "offline-config.json", workdir / f"offline-{policy}.json"
        config_path.write_text(json.dumps({"model_dir": str(model_dir), "threads": threads, "texts": texts[:count],
                                           "warmup": texts[-128:], "label_texts": texts[:rows] if number == 0 else [],
                                           "out": str(out_path)}))
        env = {key: value for key, value in project_env(project).items() if not key.startswith("OMP_")}
        env.update({} if policy == "default" else {"OMP_WAIT_POLICY": policy})
        print(f"  offline, OMP_WAIT_POLICY {policy}", flush=True)
        subprocess.run([sys.executable, __file__, "--offline-worker", str(config_path)], env=env, check=True)
        measured = json.loads(out_path.read_text())
        result["torch_threads"] = measured.pop("torch_threads")
        for precision, entry in measured.items():
            merged = result.setdefault(precision, {})
            for key in ("texts_per_s", "one_text_per_call", "load_seconds"):
                merged.setdefault(key, {})[policy] = entry[key]
            merged.update({"labels": entry["labels"]} if "labels" in entry else {})
    for precision in PRECISIONS:
        entry = result[precision]
        entry["limit"], entry["limit_batch"], entry["limit_wait_policy"] = max(
            (value, int(size), policy) for policy, table in entry["texts_per_s"].items()
            for size, value in table.items())
    result["load_average_after"] = load_average()
    return result


def server_cpu(process: subprocess.Popen) -> Counter[str]:
    """User + system CPU seconds of the server's process tree by role: each worker of each service
    (`name#worker`), and the rest (the CLI, circusd) as "arbiter"."""
    import psutil

    out: Counter[str] = Counter()
    try:
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return out
    for member in tree:
        try:
            times, command = member.cpu_times(), member.cmdline()
        except psutil.NoSuchProcess:
            continue
        role = "arbiter"
        if "--service-name" in command[:-1]:
            role = command[command.index("--service-name") + 1]
            if "--worker-id" in command[:-1]:
                role += f"#{command[command.index('--worker-id') + 1]}"
        out[role] += times.user + times.system
    return out


def batch_histogram(base: str) -> tuple[float, float]:
    """(sum, count) of the adaptive batch size histogram over all workers, from /metrics; (0, 0) without it."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
            text = response.read().decode(errors="replace")
    except OSError:
        return 0.0, 0.0
    totals: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] += sample.value
    return totals["bentoml_service_adaptive_batch_size_sum"], totals["bentoml_service_adaptive_batch_size_count"]


async def closed_loop(url: str, bodies: list[bytes], start: int, count: int, concurrency: int) -> dict[str, Any]:
    """Exactly `concurrency` clients, each sending its next request when its last one is answered, until `count`
    requests are done; bodies[start], bodies[start + 1], ... in order (wrapping around)."""
    import aiohttp

    latencies: list[float] = []
    answers: list[tuple[int, bytes]] = []
    errors: Counter[str] = Counter()
    issued = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal issued
        while issued < count:
            index = (start + issued) % len(bodies)
            issued += 1
            sent = time.perf_counter()
            try:
                async with session.post(url, data=bodies[index], headers={"Content-Type": "application/json"}) as r:
                    raw, status = await r.read(), r.status
            except Exception as error:  # every failure counts, by its kind
                errors[type(error).__name__] += 1
                continue
            if status == 200:
                latencies.append(time.perf_counter() - sent)
                answers.append((index, raw))
            else:
                errors[str(status)] += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency),
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:
        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"latencies": latencies, "answers": answers, "errors": errors, "wall": wall, "client_cpu": cpu}


def percentile_ms(seconds: list[float], q: float) -> float | None:
    """Nearest-rank percentile, in milliseconds."""
    ordered = sorted(seconds)
    return round(1000 * ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))], 1) if seconds else None


def run_level(server: subprocess.Popen, base: str, bodies: list[bytes], start: int, count: int, concurrency: int,
              labels: dict[int, str]) -> dict[str, Any]:
    (batch_sum, batches), cpu_before, load = batch_histogram(base), server_cpu(server), os.getloadavg()[0]
    out = asyncio.run(closed_loop(f"{base}/classify", bodies, start, count, concurrency))
    cpu = server_cpu(server)
    cpu.subtract(cpu_before)
    batch_sum_after, batches_after = batch_histogram(base)
    labels.update((index, json.loads(raw)["label"]) for index, raw in out["answers"])
    ok, wall, batches = len(out["latencies"]), out["wall"], batches_after - batches
    return {"concurrency": concurrency, "requests": count, "ok": ok, "errors": dict(out["errors"]),
            "seconds": round(wall, 2), "throughput": round(ok / wall, 2),
            "p50_ms": percentile_ms(out["latencies"], 0.5), "p99_ms": percentile_ms(out["latencies"], 0.99),
            "mean_batch": round((batch_sum_after - batch_sum) / batches, 2) if batches else None,
            "client_cpu_cores": round(out["client_cpu"] / wall, 2),
            "server_cpu_cores": round(sum(cpu.values()) / wall, 2),
            "server_cpu_cores_by_role": {role: round(seconds / wall, 2) for role, seconds in cpu.items()},
            "load_average_1m_before": round(load, 2)}


def serve_variant(name: str, keys: dict[str, Any], project: Path, target: str, cwd: Path, base_params: dict[str, Any],
                  bodies: list[bytes], levels: list[tuple[int, int]], warmup: int, workdir: Path) -> dict[str, Any]:
    """Serve `target` with the serve: keys changed by `keys`, warm it up, and run every load level."""
    params = copy.deepcopy(base_params)
    params["serve"].update(keys)
    params_path = workdir / f"params-{name}.yaml"
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    env = project_env(project) | {"MLOPS_PARAMS": str(params_path), "MLOPS_TRAFFIC_DIR": str(workdir / name)}
    env.pop(params["serve"]["api_key_env"], None)  # no key: the endpoint is open to the load generator
    port, log = free_port(), RESULTS / "serve-logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"\n[{name}] serve: {json.dumps(keys)}; bentoml serve {target}", flush=True)
    base, started, labels = f"http://127.0.0.1:{port}", time.monotonic(), {}
    server = start_server(target, cwd, env, port, log)
    result: dict[str, Any] = {"serve": params["serve"], "levels": [], "log": str(log)}
    try:
        wait_ready(base, server, timeout=300)
        result["ready_seconds"] = round(time.monotonic() - started, 1)
        warm = asyncio.run(closed_loop(f"{base}/classify", bodies, 0, warmup, min(8, warmup)))
        result["warmup"] = {"requests": warmup, "errors": dict(warm["errors"])}
        for number, (concurrency, count) in enumerate(levels):
            level = run_level(server, base, bodies, warmup + sum(n for _, n in levels[:number]), count, concurrency,
                              labels)
            result["levels"].append(level)
            print(f"[{name}] c={concurrency:<3} {level['ok']}/{count} ok, {level['throughput']} req/s, p50 "
                  f"{level['p50_ms']} ms, p99 {level['p99_ms']} ms, batch {level['mean_batch']}, errors "
                  f"{level['errors'] or 0}", flush=True)
    except AssertionError as error:  # wait_ready: the server exited or never became ready
        result["failed"] = f"{error}; log tail: " + " | ".join(log.read_text(errors="replace").splitlines()[-15:])
        print(f"[{name}] FAILED: {result['failed']}", flush=True)
    finally:
        started = time.monotonic()
        result["stop"] = {"killed": stop(server, grace=10), "seconds": round(time.monotonic() - started, 1)}
    result["labels"] = labels
    return result


def traffic_log_append_cost(workdir: Path, texts: list[str], records: int = 2000) -> dict[str, Any]:
    """In-process: CPU microseconds of one TrafficLog.append of one text with its embedding, as the service logs."""
    import numpy as np

    from mlops.ml.model import encode_embedding
    from mlops.serving.traffic import TrafficLog

    log = TrafficLog(workdir / "traffic-append-cost")
    embedding = encode_embedding(np.random.default_rng(0).standard_normal(384).astype(np.float32))
    answer = {"label": "World", "score": 0.9, "probabilities": {}, "model_version": "bench:1"}
    started = time.process_time()
    for index in range(records):
        log.append([texts[index % len(texts)]], [answer], 12.5, [embedding])
    return {"records": records, "cpu_us_per_request": round(1e6 * (time.process_time() - started) / records, 1)}


def share(labels: dict[int, str], reference: list[str]) -> tuple[float | None, int]:
    """The share of `labels` (by text index) equal to `reference` at the same index, and how many were compared."""
    common = [i for i in labels if i < len(reference)]
    return (round(sum(labels[i] == reference[i] for i in common) / len(common), 4) if common else None), len(common)


def served_quality(served: dict[str, Any], gold: list[str], offline: dict[str, Any]) -> dict[str, Any]:
    """Each variant's accuracy on the texts it sent and agreement with the offline labels of its precision."""
    out: dict[str, Any] = {}
    for name, variant in served.items():
        if variant["labels"]:
            agreement, compared = share(variant["labels"], offline[variant["serve"]["precision"]]["labels"])
            out[name] = {"texts": len(variant["labels"]), "accuracy": share(variant["labels"], gold)[0],
                         "agreement_with_offline": agreement, "compared_with_offline": compared}
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def checks(offline: dict[str, Any], served: dict[str, Any], top: int, append: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's checks: observed value, target, verdict (None when a variant it needs did not run)."""
    def level(variant: str, concurrency: int = top) -> dict[str, Any]:
        found = [x for x in served.get(variant, {}).get("levels", []) if x["concurrency"] == concurrency]
        return found[0] if found else {}

    def check(name: str, observed: Any, op: str, target: float, passed: bool | None = None,
              **details: Any) -> dict[str, Any]:
        if passed is None and observed is not None:
            passed = observed <= target if op == "<=" else observed >= target
        return {"check": name, "observed": observed, "target": f"{op} {target}", "passed": passed, **details}

    fp32, limit = level("batched_fp32"), offline["fp32"]["limit"]
    per_level = {x["concurrency"]: ratio(x["throughput"], level("unbatched_fp32", x["concurrency"]).get("throughput"))
                 for x in served.get("batched_fp32", {}).get("levels", [])}
    measured = [v for v in per_level.values() if v is not None]
    requests = sum(x["requests"] for variant in served.values() for x in variant["levels"])
    errors: Counter[str] = Counter()
    for variant in served.values():
        errors.update(variant.get("warmup", {}).get("errors", {}))
        for x in variant["levels"]:
            errors.update(x["errors"])
    failed = [name for name, variant in served.items() if "failed" in variant]
    logged = ratio(fp32.get("throughput"), level("batched_fp32_nolog").get("throughput"))
    append_share = ratio(append["cpu_us_per_request"] / 1e6 * fp32["throughput"], fp32["server_cpu_cores"]) \
        if fp32.get("server_cpu_cores") else None  # append CPU / server CPU, per request
    return [
        check(f"served batched fp32 at c={top} / offline fp32 limit", ratio(fp32.get("throughput"), limit), ">=",
              TARGETS["served_vs_offline"], served=fp32.get("throughput"), offline_limit=limit),
        check("batched / unbatched throughput, every concurrency", per_level, ">=", TARGETS["batched_vs_unbatched"],
              all(v >= TARGETS["batched_vs_unbatched"] for v in measured) if measured else None),
        check("errors (429/503/5xx, exceptions) over all requests", sum(errors.values()), "<=", 0,
              not errors and not failed and requests >= TARGETS["min_requests"], requests=requests,
              min_requests=TARGETS["min_requests"], by_kind=dict(errors), variants_failed=failed),
        check(f"served int8 / fp32 throughput at c={top}",
              ratio(level("batched_int8").get("throughput"), fp32.get("throughput")), ">=", TARGETS["int8_speedup"]),
        check(f"traffic log cost: 1 - logged / unlogged batched fp32 throughput at c={top}",
              None if logged is None else round(1 - logged, 3), "<=", TARGETS["traffic_log_max_cost"],
              append_cpu_us_per_request=append["cpu_us_per_request"],
              append_share_of_server_cpu_per_request=append_share),
        check("offline int8 / fp32 limit", ratio(offline["int8"]["limit"], limit), ">=", TARGETS["int8_speedup"]),
        check("int8 accuracy loss, points (offline)",
              round(100 * (offline["fp32"]["accuracy"] - offline["int8"]["accuracy"]), 2), "<=",
              TARGETS["int8_max_loss_points"], rows=offline["label_rows"]),
    ]


def print_report(result: dict[str, Any]) -> None:
    offline = result["offline"]
    print(f"\nOffline ({offline['threads']} threads, {offline['texts']} texts), texts/s by wait policy and batch size:")
    for precision in PRECISIONS:
        entry = offline[precision]
        for policy, table in entry["texts_per_s"].items():
            print(f"  {precision} {policy:<8} " + ", ".join(f"bs{k} {v}" for k, v in table.items())
                  + f", 1 text/call {entry['one_text_per_call'][policy]}")
        print(f"  {precision} limit {entry['limit']} (bs{entry['limit_batch']}, {entry['limit_wait_policy']}); "
              f"accuracy {entry['accuracy']} on {offline['label_rows']} rows")
    print(f"\nServed (req/s: successful single-text requests per second of wall time):\n  {'variant':<19}{'c':>4}"
          f"{'requests':>10}{'errors':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'batch':>7}{'client':>8}  server CPU")
    for name, variant in result["served"].items():
        if "failed" in variant:
            print(f"  {name:<19} failed: {variant['failed'][:200]}")
        for x in variant["levels"]:
            print(f"  {name:<19}{x['concurrency']:>4}{x['requests']:>10}{sum(x['errors'].values()):>8}"
                  f"{x['throughput']:>9}{x['p50_ms']!s:>9}{x['p99_ms']!s:>9}{x['mean_batch']!s:>7}"
                  f"{x['client_cpu_cores']:>8}  {x['server_cpu_cores']} {x['server_cpu_cores_by_role']}")
    for name, entry in result["served_quality"].items():
        print(f"  {name}: {entry}")
    print("\nChecks:")
    for item in result["checks"]:
        verdict = {True: "PASS", False: "FAIL", None: "n/a "}[item["passed"]]
        print(f"  {verdict}  {item['check']}: {item['observed']} (target {item['target']})")


def parse_levels(text: str) -> list[tuple[int, int]]:
    try:
        return [(int(c), int(n)) for c, n in (part.split(":") for part in text.split(","))]
    except ValueError:
        raise argparse.ArgumentTypeError("concurrency:requests,... e.g. 1:300,8:1200") from None


def parse_set(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError("key=value, a key of serve:")
    return key, yaml.safe_load(value)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--offline-worker":  # run_offline's worker process
        config = json.loads(Path(sys.argv[2]).read_text())
        return Path(config["out"]).write_text(json.dumps(measure_offline(config))) and None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT.parent / "agproj",
                        help="a project with a packaged champion (bench/lifecycle.py --keep); default ../agproj")
    parser.add_argument("--source", type=Path, help="serve mlops.serving.service:TextClassifier from this checkout "
                                                    "(with its params.yaml and the champion model), not the Bento")
    parser.add_argument("--levels", type=parse_levels, help=f"concurrency:requests,... (default {FULL_LEVELS}; "
                                                            "--quick: a tenth)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="served variants (default: all)")
    parser.add_argument("--set", dest="overrides", type=parse_set, action="append", default=[],
                        help="key=value of serve: for every variant, e.g. --set workers=1 (repeatable)")
    parser.add_argument("--quick", action="store_true", help="about 10x fewer requests and texts (development)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # through the finally blocks that stop servers
    levels = args.levels or [(c, max(c, n // (10 if args.quick else 1))) for c, n in parse_levels(FULL_LEVELS)]
    variants = [x for x in args.variants.split(",") if x]
    if set(variants) - set(VARIANTS):
        parser.error(f"--variants: unknown {sorted(set(variants) - set(VARIANTS))}; known: {list(VARIANTS)}")
    project = args.project.resolve()
    os.environ["BENTOML_HOME"] = str(project / ".bentoml")
    import bentoml
    import pandas as pd

    from mlops.core import registry
    from mlops.core.pipeline import stage_path

    champion = registry.champion()
    if not champion:
        parser.error(f"{registry.registry_path()}: no champion; is {project} a project that packaged one?")
    if not args.source and not champion.get("bento"):
        parser.error("the champion has no Bento: use --source")
    test = pd.read_parquet(project / stage_path(project, "split", "out-dir") / "test.parquet")
    texts, gold = test["text"].tolist(), test["label"].astype(str).tolist()
    bodies = [json.dumps({"text": text}).encode() for text in texts]
    if args.source:
        target, cwd = "mlops.serving.service:TextClassifier", args.source.resolve()
        params_file = cwd / "params.yaml"
    else:
        target, cwd = champion["bento"], project
        params_file = Path(bentoml.bentos.get(champion["bento"]).path) / "src" / "params.yaml"
    base_params = yaml.safe_load(params_file.read_text())
    result: dict[str, Any] = {
        "project": str(project), "model": champion["model"], "served": target, "params_base": str(params_file),
        "quick": args.quick, "levels": levels, "texts": len(texts), "targets": TARGETS,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_start": load_average()},
        "versions": {name: version(name) for name in ("bentoml", "torch", "transformers", "aiohttp")},
    }
    print(f"project {project}: model {champion['model']}, serving {target}; {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.2f}" + (" (busy: every figure is skewed)" if os.getloadavg()[0] > 0.5 else ""))
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        workdir = Path(tmp)
        offline = run_offline(project, registry.model_path(champion["model"]), texts, 100 if args.quick else 1000,
                              min(len(texts), 760 if args.quick else len(texts)), workdir)
        if args.source:
            os.environ["MLOPS_MODEL_TAG"] = champion["model"]  # project_env copies it into the server's environment
        served = {name: serve_variant(name, {**VARIANTS[name], **dict(args.overrides)}, project, target, cwd,
                                      base_params, bodies, levels, 16 if args.quick else 50, workdir)
                  for name in variants}
        result["traffic_log_append"] = traffic_log_append_cost(workdir, texts)
    for precision in PRECISIONS:
        offline[precision]["accuracy"] = share(dict(enumerate(offline[precision]["labels"])), gold)[0]
    result["served_quality"] = served_quality(served, gold, offline)
    for entry in [*served.values(), *(offline[p] for p in PRECISIONS)]:
        del entry["labels"]
    result.update({"offline": offline, "served": served})
    result["checks"] = checks(offline, served, max(c for c, _ in levels), result["traffic_log_append"])
    result["machine"]["load_average_end"] = load_average()
    path = write_result("serve", result, echo=False)
    print_report(result)
    print(f"\n{path}")


if __name__ == "__main__":
    main()
