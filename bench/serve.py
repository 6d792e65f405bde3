"""Benchmark: the served classifier under load against the offline limit, fp32 and int8 (issue 6).

On the same cores and the project's test split (AG News preset: the official 7,600-row test split), measures
1. the offline limit: texts/s of the champion in-process (all cores' threads; batch sizes 8-64, and one text per
   call; fp32 and int8) in one subprocess per OpenMP wait policy, exited before serving starts; their accuracy;
2. per served variant (batched fp32, unbatched fp32, batched int8, batched fp32 without the traffic log: only
   their serve: keys differ), `bentoml serve` of the champion Bento under a closed loop of exactly c clients
   sending single-text requests, c = 1, 8, 32, 64: throughput, p50, p99, errors by kind, the server's batch size,
   client and server CPU, and the served labels' accuracy and agreement with the offline model;
3. the CPU cost of one traffic-log append, in-process; 4. the issue's checks, with target and verdict.
Writes bench/results/serve.json (server logs in bench/results/serve-logs/). Run it on a quiet machine: on 2 cores
any other busy process skews every figure.

    python bench/lifecycle.py --preset configs/ag_news.yaml --keep ../agproj   # once: a project with a champion
    python bench/serve.py [--project ../agproj] [--quick]   # about 16 minutes; --quick: ~10x fewer requests
    python bench/serve.py --levels 64:2400 --variants batched_fp32 --set workers=1 --set model_calls=2
    python bench/serve.py --source .    # this checkout's mlops.serving.service with the champion model
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
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

import aiohttp
import numpy as np
import pandas as pd
import psutil
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_file import RESULTS, write_result  # noqa: E402

from mlops.core import registry  # noqa: E402
from mlops.core.pipeline import stage_path  # noqa: E402
from mlops.ml.model import encode_embedding  # noqa: E402
from mlops.serving.traffic import TrafficLog  # noqa: E402
from tests.helpers import free_port, project_env, start_server, stop, wait_ready  # noqa: E402

# serve: keys each variant changes; everything else stays as the params file has it
VARIANTS: dict[str, dict[str, Any]] = {
    "batched_fp32": {"batching": True, "precision": "fp32"},
    "unbatched_fp32": {"batching": False, "precision": "fp32"},
    "batched_int8": {"batching": True, "precision": "torch_int8"},
    "batched_fp32_nolog": {"batching": True, "precision": "fp32", "traffic": {"enabled": False}},  # what logging costs
}
FULL_LEVELS = "1:300,8:1200,32:2400,64:2400"
BATCH_SIZES, WAIT_POLICIES, PRECISIONS = (8, 16, 32, 64), ("default", "PASSIVE"), ("fp32", "int8")
TARGETS = {"served_vs_offline": 0.8, "batched_vs_unbatched": 1.0, "min_requests": 2000, "int8_speedup": 1.5,
           "int8_max_loss_points": 1.0, "traffic_log_max_cost": 0.05}


def texts_per_second(classifier: Any, batches: list[list[str]], batch_size: int) -> float:
    started = time.perf_counter()
    for batch in batches:
        classifier.predict_proba(batch, batch_size=batch_size)
    return round(sum(map(len, batches)) / (time.perf_counter() - started), 2)


def measure_offline(config: dict[str, Any]) -> dict[str, Any]:
    """In a worker process: per precision, texts/s per batch size and one text per call; `label_texts`' labels."""
    import torch

    from mlops.ml.model import Classifier

    torch.set_num_threads(config["threads"])
    sample, single = config["texts"], [[text] for text in config["texts"][:max(20, len(config["texts"]) // 5)]]
    out: dict[str, Any] = {"torch_threads": torch.get_num_threads()}
    for precision in PRECISIONS:
        classifier = Classifier.load(config["model_dir"], device="cpu", precision=precision)
        for size in BATCH_SIZES:  # warm-up: every batch size once, on texts not measured
            classifier.predict_proba(config["warmup"][:2 * size], batch_size=size)
        out[precision] = {
            "texts_per_s": {str(size): texts_per_second(classifier, [sample], size) for size in BATCH_SIZES},
            "one_text_per_call": texts_per_second(classifier, single, 1),
            "labels": [classifier.labels[int(i)] for i in classifier.predict_proba(config["label_texts"]).argmax(1)]}
    return out


def run_offline(project: Path, model_dir: Path, texts: list[str], count: int, rows: int,
                workdir: Path) -> dict[str, Any]:
    """One worker process per OpenMP wait policy (libgomp's default spins, PASSIVE sleeps), so that neither the
    policy nor the model's threads live on into serving; the limit is the best texts/s over policies and batch
    sizes. Labels (for accuracy) from the first worker."""
    threads = os.cpu_count() or 1
    result: dict[str, Any] = {"threads": threads, "texts": count, "label_rows": rows}
    for number, policy in enumerate(WAIT_POLICIES):
        config = workdir / "offline.json"
        config.write_text(json.dumps({"model_dir": str(model_dir), "threads": threads, "texts": texts[:count],
                                      "warmup": texts[-128:], "label_texts": texts[:rows] if number == 0 else []}))
        env = {key: value for key, value in project_env(project).items() if not key.startswith("OMP_")}
        env.update({} if policy == "default" else {"OMP_WAIT_POLICY": policy})
        subprocess.run([sys.executable, __file__, "--offline-worker", str(config)], env=env, check=True)
        measured = json.loads(config.read_text())  # the worker replaced its input with its figures
        result["torch_threads"] = measured.pop("torch_threads")
        for precision, entry in measured.items():
            merged = result.setdefault(precision, {"labels": entry["labels"]})
            for key in ("texts_per_s", "one_text_per_call"):
                merged.setdefault(key, {})[policy] = entry[key]
            print(f"offline {precision}, OMP_WAIT_POLICY {policy}: texts/s by batch size {entry['texts_per_s']}, "
                  f"one text per call {entry['one_text_per_call']}", flush=True)
    for precision in PRECISIONS:
        entry = result[precision]
        entry["limit"], entry["limit_batch"], entry["limit_wait_policy"] = max(
            (value, int(size), policy) for policy, table in entry["texts_per_s"].items()
            for size, value in table.items())
    return result


def server_cpu_seconds(process: subprocess.Popen) -> float:
    """User + system CPU seconds of the server's whole process tree (the CLI, circusd, every worker)."""
    total = 0.0
    with contextlib.suppress(psutil.NoSuchProcess):
        for member in [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += sum(member.cpu_times()[:2])
    return total


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


async def closed_loop(url: str, bodies: list[bytes], start: int, count: int, concurrency: int) -> dict[str, Any]:
    """Exactly `concurrency` clients, each sending its next request when its last one is answered, until `count`
    requests are done; bodies[start], bodies[start + 1], ... in order (wrapping around)."""
    out: dict[str, Any] = {"latencies": [], "answers": [], "errors": Counter()}
    issued = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal issued
        while issued < count:
            index, issued, sent = (start + issued) % len(bodies), issued + 1, time.perf_counter()
            try:
                async with session.post(url, data=bodies[index], headers={"Content-Type": "application/json"}) as r:
                    raw, status = await r.read(), r.status
            except Exception as error:  # every failure counts, by its kind
                out["errors"][type(error).__name__] += 1
                continue
            if status == 200:
                out["latencies"].append(time.perf_counter() - sent)
                out["answers"].append((index, raw))
            else:
                out["errors"][str(status)] += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency),
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:
        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        out["wall"], out["client_cpu"] = time.perf_counter() - started, time.process_time() - cpu
    return out


def percentile_ms(seconds: list[float], q: float) -> float | None:
    """Nearest-rank percentile, in milliseconds."""
    return round(1000 * float(np.percentile(seconds, q, method="inverted_cdf")), 1) if seconds else None


def run_level(server: subprocess.Popen, base: str, bodies: list[bytes], start: int, count: int, concurrency: int,
              labels: dict[int, str]) -> dict[str, Any]:
    (batch_sum, batches), cpu, load = batch_histogram(base), server_cpu_seconds(server), os.getloadavg()[0]
    out = asyncio.run(closed_loop(f"{base}/classify", bodies, start, count, concurrency))
    cpu, (batch_sum_after, batches_after) = server_cpu_seconds(server) - cpu, batch_histogram(base)
    batch_sum, batches = batch_sum_after - batch_sum, batches_after - batches
    labels.update((index, json.loads(raw)["label"]) for index, raw in out["answers"])
    ok, wall = len(out["latencies"]), out["wall"]
    return {"concurrency": concurrency, "requests": count, "ok": ok, "errors": dict(out["errors"]),
            "seconds": round(wall, 2), "throughput": round(ok / wall, 2),
            "p50_ms": percentile_ms(out["latencies"], 50), "p99_ms": percentile_ms(out["latencies"], 99),
            "mean_batch": round(batch_sum / batches, 2) if batches else None,
            "client_cpu_cores": round(out["client_cpu"] / wall, 2), "server_cpu_cores": round(cpu / wall, 2),
            "load_average_1m_before": round(load, 2)}


def serve_variant(name: str, keys: dict[str, Any], project: Path, target: str, cwd: Path, base_params: dict[str, Any],
                  bodies: list[bytes], levels: list[tuple[int, int]], warmup: int, workdir: Path,
                  reference: dict[str, list[str]]) -> dict[str, Any]:
    """Serve `target` with the serve: keys changed by `keys`, warm it up, and run every load level; the served
    labels' accuracy (`reference["gold"]`) and agreement with the offline labels of the variant's precision."""
    params = copy.deepcopy(base_params)
    params["serve"].update(keys)
    (workdir / f"{name}.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = project_env(project) | {"MLOPS_PARAMS": str(workdir / f"{name}.yaml"),
                                  "MLOPS_TRAFFIC_DIR": str(workdir / name)}
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
        for concurrency, count in levels:
            start = warmup + sum(x["requests"] for x in result["levels"])
            result["levels"].append(x := run_level(server, base, bodies, start, count, concurrency, labels))
            print(f"[{name}] c={concurrency:<3} {x['ok']}/{count} ok, {x['throughput']} req/s, p50 {x['p50_ms']} ms,"
                  f" p99 {x['p99_ms']} ms, batch {x['mean_batch']}, errors {x['errors'] or 0}", flush=True)
    except AssertionError as error:  # wait_ready: the server exited or never became ready
        result["failed"] = f"{error}; log tail: " + " | ".join(log.read_text(errors="replace").splitlines()[-15:])
        print(f"[{name}] FAILED: {result['failed']}", flush=True)
    finally:
        started = time.monotonic()
        result["stop"] = {"killed": stop(server, grace=10), "seconds": round(time.monotonic() - started, 1)}
    offline_key = {"torch_int8": "int8"}.get(params["serve"]["precision"], params["serve"]["precision"])
    agree, compared = agreement(labels, reference[offline_key])
    result["quality"] = {"texts": len(labels), "accuracy": agreement(labels, reference["gold"])[0],
                         "agreement_with_offline": agree, "compared_with_offline": compared}
    return result


def traffic_log_append_cost(workdir: Path, texts: list[str], records: int = 2000) -> dict[str, Any]:
    """In-process: CPU microseconds of one TrafficLog.append of one text with its embedding, as the service logs."""
    log = TrafficLog(workdir / "traffic-append-cost")
    embedding = encode_embedding(np.random.default_rng(0).standard_normal(384).astype(np.float32))
    answer = {"label": "World", "score": 0.9, "probabilities": {}, "model_version": "bench:1"}
    started = time.process_time()
    for index in range(records):
        log.append([texts[index % len(texts)]], [answer], 12.5, [embedding])
    return {"records": records, "cpu_us_per_request": round(1e6 * (time.process_time() - started) / records, 1)}


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


def checks(offline: dict[str, Any], served: dict[str, Any], top: int, append: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's checks: observed value, target, verdict (None when a variant it needs did not run)."""
    def throughput(variant: str, concurrency: int = top) -> float | None:
        found = [x for x in served.get(variant, {}).get("levels", []) if x["concurrency"] == concurrency]
        return found[0]["throughput"] if found else None

    fp32, limit = throughput("batched_fp32"), offline["fp32"]["limit"]
    per_level = {x["concurrency"]: ratio(x["throughput"], throughput("unbatched_fp32", x["concurrency"]))
                 for x in served.get("batched_fp32", {}).get("levels", [])}
    levels = [x for variant in served.values() for x in variant["levels"]]
    errors = sum((Counter(x["errors"]) for x in [*levels, *(v.get("warmup", {}) for v in served.values())]
                  if x), Counter())
    failed = [name for name, variant in served.items() if "failed" in variant]
    logged = ratio(fp32, throughput("batched_fp32_nolog"))
    cpu = [x["server_cpu_cores"] for x in served.get("batched_fp32", {}).get("levels", []) if x["concurrency"] == top]
    return [
        check(f"served batched fp32 at c={top} / offline fp32 limit", ratio(fp32, limit), ">=",
              TARGETS["served_vs_offline"], served=fp32, offline_limit=limit),
        check("batched / unbatched throughput, every concurrency", per_level, ">=", TARGETS["batched_vs_unbatched"],
              all(v >= TARGETS["batched_vs_unbatched"] for v in per_level.values() if v is not None)
              if any(v is not None for v in per_level.values()) else None),
        check(f"errors (429/503/5xx, exceptions) over all requests (at least {TARGETS['min_requests']})",
              sum(errors.values()), "<=", 0, not errors and not failed
              and sum(x["requests"] for x in levels) >= TARGETS["min_requests"],
              requests=sum(x["requests"] for x in levels), by_kind=dict(errors), variants_failed=failed),
        check(f"served int8 / fp32 throughput at c={top}", ratio(throughput("batched_int8"), fp32), ">=",
              TARGETS["int8_speedup"]),
        check(f"traffic log cost: 1 - logged / unlogged batched fp32 throughput at c={top}",
              None if logged is None else round(1 - logged, 3), "<=", TARGETS["traffic_log_max_cost"],
              append_cpu_us_per_request=append["cpu_us_per_request"],  # and its share of the server's CPU/request:
              append_share_of_server_cpu=ratio(append["cpu_us_per_request"] / 1e6 * (fp32 or 0), cpu and cpu[0])),
        check("offline int8 / fp32 limit", ratio(offline["int8"]["limit"], limit), ">=", TARGETS["int8_speedup"]),
        check("int8 accuracy loss, points (offline)", round(100 * (offline["fp32"]["accuracy"]
                                                                   - offline["int8"]["accuracy"]), 2), "<=",
              TARGETS["int8_max_loss_points"], rows=offline["label_rows"]),
    ]


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
        config = Path(sys.argv[2])
        config.write_text(json.dumps(measure_offline(json.loads(config.read_text()))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT.parent / "agproj",
                        help="a project with a packaged champion (bench/lifecycle.py --keep); default ../agproj")
    parser.add_argument("--source", type=Path, help="serve mlops.serving.service:TextClassifier from this checkout "
                                                    "(with its params.yaml and the champion model), not the Bento")
    parser.add_argument("--levels", type=parse_levels, help=f"concurrency:requests,... (default {FULL_LEVELS})")
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
    os.environ["BENTOML_HOME"] = str(project / ".bentoml")  # before mlops.core.registry reads it
    import bentoml

    champion = registry.champion()
    if not champion or not (args.source or champion.get("bento")):
        parser.error(f"{registry.registry_path()}: no champion{'' if champion else ' Bento (use --source)'}")
    test = pd.read_parquet(project / stage_path(project, "split", "out-dir") / "test.parquet")
    texts, gold = test["text"].tolist(), test["label"].astype(str).tolist()
    if args.source:
        target, cwd = "mlops.serving.service:TextClassifier", args.source.resolve()
        params_file = cwd / "params.yaml"
        os.environ["MLOPS_MODEL_TAG"] = champion["model"]  # project_env passes it on to the server
    else:
        target, cwd = champion["bento"], project
        params_file = Path(bentoml.bentos.get(target).path) / "src" / "params.yaml"
    result: dict[str, Any] = {
        "project": str(project), "model": champion["model"], "serving": target, "params_base": str(params_file),
        "quick": args.quick, "levels": levels, "texts": len(texts), "targets": TARGETS,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_start": os.getloadavg()},
        "versions": {name: version(name) for name in ("bentoml", "torch", "transformers", "aiohttp")},
    }
    print(f"project {project}: model {champion['model']}, serving {target}; {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.2f}" + (" (busy: every figure is skewed)" if os.getloadavg()[0] > 0.5 else ""))
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        offline = run_offline(project, registry.model_path(champion["model"]), texts, 100 if args.quick else 1000,
                              min(len(texts), 760 if args.quick else len(texts)), Path(tmp))
        reference = {"gold": gold, **{precision: offline[precision].pop("labels") for precision in PRECISIONS}}
        for precision in PRECISIONS:
            offline[precision]["accuracy"] = agreement(dict(enumerate(reference[precision])), gold)[0]
        bodies = [json.dumps({"text": text}).encode() for text in texts]
        served = {name: serve_variant(name, {**VARIANTS[name], **dict(args.overrides)}, project, target, cwd,
                                      yaml.safe_load(params_file.read_text()), bodies, levels,
                                      16 if args.quick else 50, Path(tmp), reference) for name in variants}
        result.update({"offline": offline, "served": served,
                       "traffic_log_append": traffic_log_append_cost(Path(tmp), texts)})
    result["checks"] = checks(offline, served, max(c for c, _ in levels), result["traffic_log_append"])
    result["machine"]["load_average_end"] = os.getloadavg()
    path = write_result("serve", result, echo=False)
    for item in result["checks"]:
        print(f"{({True: 'PASS', False: 'FAIL', None: 'n/a '})[item['passed']]}  {item['check']}: "
              f"{item['observed']} (target {item['target']})")
    print(path)


if __name__ == "__main__":
    main()
