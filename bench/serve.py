"""Benchmark: the served classifier under load against the offline limit, fp32 and int8 (issue 6).

One run measures, on the same cores:

1. the offline limit: the champion model in-process with all cores' threads,
   in subprocesses that exit before serving starts (one per OpenMP wait
   policy: libgomp's default and PASSIVE, which the service sets), texts/s of
   `predict_proba` on the first AG News test texts at batch sizes 8-64 after a
   warm-up, fp32 and int8; the limit is the best. Also both precisions'
   accuracy on the AG News test split (7,600 rows);
2. the served endpoint: for each variant (batched fp32, unbatched fp32 =
   `serve.batching: false`, batched int8 = `serve.precision: int8`, batched
   fp32 without the traffic log = `serve.traffic.enabled: false`),
   `bentoml serve` of the champion Bento with a params file that changes only
   those serve: keys (MLOPS_PARAMS), then a bounded closed-loop load generator
   (exactly c clients, each sending single-text requests `{"text": ...}` drawn
   in order from the AG News test split) at concurrency 1, 8, 32 and 64:
   throughput, p50, p99, errors by kind (status code or exception), the
   adaptive batch size the server reports, and the CPU the client and the
   server used; the served labels give each variant's accuracy and its
   agreement with the offline model;
3. the cost of one traffic-log append, in-process;
4. the issue's checks, each with observed value, target and verdict.

Writes bench/results/serve.json (served labels in serve-predictions.json,
server logs in serve-logs/) and prints a table. Run it on a quiet machine: on
2 cores any other busy process skews every figure.

    .venv/bin/python bench/serve.py [--project ../agproj]          # the full run (about 16 minutes)
    .venv/bin/python bench/serve.py --quick                         # ~10x fewer requests and texts
    .venv/bin/python bench/serve.py --levels 64:2400 --variants batched_fp32 --set workers=1 --set model_calls=2
    .venv/bin/python bench/serve.py --source .   # this checkout's mlops.serving.service with the champion model
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEFAULT_PROJECT = ROOT.parent / "agproj"  # bench/lifecycle.py --preset configs/ag_news.yaml --keep ../agproj
DEFAULT_TEST_CSV = ROOT.parent / "shared" / "data" / "ag_news" / "test.csv"
# serve: keys each variant changes; everything else stays as the params file has it
VARIANTS: dict[str, dict[str, Any]] = {
    "batched_fp32": {"batching": True, "precision": "fp32"},
    "unbatched_fp32": {"batching": False, "precision": "fp32"},
    "batched_int8": {"batching": True, "precision": "int8"},
    # the same as batched_fp32 without the traffic log: what logging costs
    "batched_fp32_nolog": {"batching": True, "precision": "fp32", "traffic": {"enabled": False}},
}
FULL_LEVELS = "1:300,8:1200,32:2400,64:2400"
TARGETS = {"served_vs_offline": 0.8, "batched_vs_unbatched": 1.0, "min_requests": 2000, "int8_speedup": 1.5,
           "int8_max_loss_points": 1.0, "traffic_log_max_cost": 0.05}


# ---------------------------------------------------------------- data, project


def read_test_split(path: Path, label_names: dict[str, str] | None) -> tuple[list[str], list[str]]:
    """AG News test.csv (headerless: label, title, description): texts `title + " " + description`, label names."""
    texts, labels = [], []
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.reader(handle):
            label, title, description = row
            texts.append(f"{title} {description}")
            labels.append(label_names.get(label, label) if label_names else label)
    return texts, labels


def split_tag(tag: str) -> tuple[str, str]:
    name, _, version = tag.partition(":")
    return name, version


def project_facts(project: Path) -> dict[str, Any]:
    """The champion's model and Bento in the project's BentoML home, and where their files are."""
    home = project / ".bentoml"
    registry = home / "registry.json"
    if not registry.is_file():
        raise SystemExit(f"{registry} not found: is {project} a project that has packaged a champion?")
    champion = json.loads(registry.read_text())["champion"]
    if not champion:
        raise SystemExit(f"{registry}: no champion")
    model_dir = home / "models" / Path(*split_tag(champion["model"]))
    if not (model_dir / "model.safetensors").is_file():
        raise SystemExit(f"no model.safetensors in {model_dir}")
    params = yaml.safe_load((project / "params.yaml").read_text())
    test_source = (params.get("data") or {}).get("test_source") or {}
    return {"home": home, "model": champion["model"], "bento": champion.get("bento"), "model_dir": model_dir,
            "bento_src": home / "bentos" / Path(*split_tag(champion["bento"] or ":")) / "src",
            "label_names": test_source.get("label_names"), "params": params}


# ---------------------------------------------------------------- offline limit (subprocess)


def load_classifier(model_dir: Path, precision: str):
    """`Classifier.load(precision=...)`; where mlops.ml.model has no precision yet, int8 is the bench's own
    dynamic quantisation of the Linear layers (said so in the result)."""
    import inspect

    import torch

    from mlops.ml.model import Classifier

    if "precision" in inspect.signature(Classifier.load).parameters:
        return Classifier.load(model_dir, precision=precision, device="cpu"), "mlops.ml.model"
    classifier = Classifier.load(model_dir, device="cpu")
    if precision == "fp32":
        return classifier, "mlops.ml.model"
    classifier.model = torch.ao.quantization.quantize_dynamic(classifier.model, {torch.nn.Linear}, dtype=torch.qint8)
    return classifier, "bench fallback: quantize_dynamic(Linear, qint8); mlops.ml.model has no precision yet"


def offline_worker(config_path: Path) -> None:
    """In its own process: texts/s of predict_proba per batch size for each precision; with `extras`, also
    arrival-order batches, one text per call, and accuracy."""
    import torch

    config = json.loads(config_path.read_text())
    torch.set_num_threads(config["threads"])
    texts, gold = read_test_split(Path(config["test_csv"]), config["label_names"])
    sample = texts[:config["texts"]]
    result: dict[str, Any] = {"torch_threads": torch.get_num_threads()}
    for precision in config["precisions"]:
        started = time.perf_counter()
        classifier, impl = load_classifier(Path(config["model_dir"]), precision)
        entry: dict[str, Any] = {"implementation": impl, "load_seconds": round(time.perf_counter() - started, 2)}
        for batch_size in config["batch_sizes"]:  # warm-up: every batch size once, on texts not measured
            classifier.predict_proba(texts[-2 * batch_size:], batch_size=batch_size)
        per_batch: dict[str, float] = {}
        for batch_size in config["batch_sizes"]:
            best = 0.0
            for _ in range(config["repeats"]):
                started = time.perf_counter()
                classifier.predict_proba(sample, batch_size=batch_size)
                best = max(best, len(sample) / (time.perf_counter() - started))
            per_batch[str(batch_size)] = round(best, 2)
        entry["texts_per_s"] = per_batch
        if config["extras"]:
            # what a batching server can reach: batches of arrivals in order, each sorted and run in micro-batches
            micro = config["micro_batch"]
            arrival: dict[str, float] = {}
            for size in config["arrival_batches"]:
                started = time.perf_counter()
                for start in range(0, len(sample), size):
                    classifier.predict_proba(sample[start:start + size], batch_size=min(size, micro))
                arrival[str(size)] = round(len(sample) / (time.perf_counter() - started), 2)
            entry["in_arrival_order"] = {"micro_batch": micro, "texts_per_s": arrival}
            single = sample[:config["single_texts"]]
            started = time.perf_counter()
            for text in single:
                classifier.predict_proba([text], batch_size=1)
            entry["one_text_per_call"] = round(len(single) / (time.perf_counter() - started), 2)
            rows = config["accuracy_rows"]
            started = time.perf_counter()
            proba = classifier.predict_proba(texts[:rows], batch_size=64)
            predicted = [classifier.labels[int(i)] for i in proba.argmax(axis=1)]
            entry["accuracy"] = round(sum(p == g for p, g in zip(predicted, gold[:rows], strict=True)) / rows, 5)
            entry["accuracy_rows"] = rows
            entry["accuracy_seconds"] = round(time.perf_counter() - started, 1)
            entry["predicted"] = predicted
        result[precision] = entry
        del classifier
    Path(config["out"]).write_text(json.dumps(result))


def run_offline(facts: dict[str, Any], args: argparse.Namespace, workdir: Path,
                serve: dict[str, Any]) -> dict[str, Any]:
    """One worker process per OpenMP wait policy (libgomp's default spins, PASSIVE sleeps; the service sets
    PASSIVE); the limit is the best texts/s over policies and batch sizes. Accuracy etc. in the first only."""
    threads = os.cpu_count() or 1
    result: dict[str, Any] = {"threads": threads, "texts": args.offline_texts, "wait_policies": args.wait_policies,
                              "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    started = time.perf_counter()
    for number, policy in enumerate(args.wait_policies):
        config = {"model_dir": str(facts["model_dir"]), "test_csv": str(args.test_csv),
                  "label_names": facts["label_names"], "threads": threads, "texts": args.offline_texts,
                  "batch_sizes": args.batch_sizes, "repeats": args.offline_repeats,
                  "single_texts": max(20, args.offline_texts // 5), "accuracy_rows": args.accuracy_rows,
                  "precisions": args.precisions, "extras": number == 0, "out": str(workdir / f"offline-{policy}.json"),
                  "micro_batch": serve["micro_batch"], "arrival_batches": sorted({8, 16, serve["max_batch_size"]})}
        (workdir / "offline-config.json").write_text(json.dumps(config))
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        env.pop("OMP_NUM_THREADS", None)
        env.pop("OMP_WAIT_POLICY", None)
        if policy != "default":
            env["OMP_WAIT_POLICY"] = policy
        print(f"  offline, OMP_WAIT_POLICY {policy}", flush=True)
        subprocess.run([sys.executable, __file__, "--offline-worker", str(workdir / "offline-config.json")],
                       env=env, check=True)
        measured = json.loads((workdir / f"offline-{policy}.json").read_text())
        result["torch_threads"] = measured.pop("torch_threads")
        for precision, entry in measured.items():
            merged = result.setdefault(precision, {"texts_per_s": {}})
            merged["texts_per_s"][policy] = entry.pop("texts_per_s")
            merged.update(entry if number == 0 else {})
            merged.setdefault("load_seconds_by_policy", {})[policy] = entry["load_seconds"]
    for precision in args.precisions:
        entry = result[precision]
        entry.pop("load_seconds", None)
        entry["limit"], entry["limit_batch"], entry["limit_wait_policy"] = max(
            (value, int(batch), policy) for policy, table in entry["texts_per_s"].items()
            for batch, value in table.items())
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return result


# ---------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def post(url: str, body: bytes, timeout: float = 60) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class Server:
    """`bentoml serve` in its own process group; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path, log: Path, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.log = log
        self.handle = open(log, "wb")  # closed in stop()
        self.process = subprocess.Popen(command, env=env, cwd=cwd, stdout=self.handle, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def wait_ready(self, probe: bytes, timeout: float) -> float:
        """Until /readyz answers 200 and one classify request succeeds; the seconds it took."""
        started = time.monotonic()
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"bentoml serve exited with {self.process.returncode}:\n{self.tail()}")
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"not ready after {timeout:.0f} s:\n{self.tail()}")
            try:
                if get(f"{self.base}/readyz", timeout=2)[0] == 200:
                    status, body = post(f"{self.base}/classify", probe)
                    if status == 200:
                        return round(time.monotonic() - started, 1)
                    if 400 <= status < 500:
                        raise RuntimeError(f"classify answered {status}: {body[:300]!r}")
            except OSError:
                pass
            time.sleep(1)

    def cpu_seconds(self) -> Counter[str]:
        """User + system CPU seconds of the server's process tree, by role: each worker of each service
        (`name#worker`) and the rest (the CLI, circusd: "arbiter")."""
        import psutil

        try:
            root = psutil.Process(self.process.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return Counter()
        out: Counter[str] = Counter()
        for process in processes:
            try:
                times = process.cpu_times()
                command = process.cmdline()
            except psutil.NoSuchProcess:
                continue
            role = "arbiter"
            if "--service-name" in command[:-1]:
                role = command[command.index("--service-name") + 1]
                if "--worker-id" in command[:-1]:
                    role += f"#{command[command.index('--worker-id') + 1]}"
            out[role] += times.user + times.system
        return out

    def batch_metric(self) -> tuple[float, float]:
        """(sum, count) of BentoML's adaptive batch size histogram over all workers; (0, 0) without one."""
        try:
            status, body = get(f"{self.base}/metrics")
        except OSError:
            return 0.0, 0.0
        total = count = 0.0
        if status == 200:
            for line in body.decode(errors="replace").splitlines():
                if line.startswith("bentoml_service_adaptive_batch_size_sum"):
                    total += float(line.rsplit(" ", 1)[1])
                elif line.startswith("bentoml_service_adaptive_batch_size_count"):
                    count += float(line.rsplit(" ", 1)[1])
        return total, count

    def stop(self, grace: float = 10) -> dict[str, Any]:
        """SIGTERM to the group, then SIGKILL to whatever of the server's process tree outlives `grace`.

        BentoML's workers run in process groups of their own, so the tree is listed before the signal and
        each survivor is ended by its pid. Returns how long the tree took to go and what had to be killed.
        """
        import psutil

        try:
            tree = [psutil.Process(self.process.pid), *psutil.Process(self.process.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        started = time.monotonic()
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        _, alive = psutil.wait_procs(tree, timeout=grace)
        killed = []
        for process in alive:
            try:
                killed.append(" ".join(process.cmdline()[:4]))
                process.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=10)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.handle.close()
        return {"seconds": round(time.monotonic() - started, 1), "processes": len(tree), "killed": killed}


# ---------------------------------------------------------------- load generator


async def closed_loop(url: str, bodies: list[bytes], start: int, count: int, concurrency: int,
                      timeout: float) -> dict[str, Any]:
    """Exactly `concurrency` clients, each sending its next request when its last one is answered, until
    `count` requests are done; bodies[start], bodies[start + 1], ... in order (wrapping around)."""
    import aiohttp

    latencies: list[float] = []
    answers: list[tuple[int, bytes]] = []
    errors: Counter[str] = Counter()
    issued = 0
    headers = {"Content-Type": "application/json"}

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal issued
        while issued < count:
            index = (start + issued) % len(bodies)
            issued += 1
            sent = time.perf_counter()
            try:
                async with session.post(url, data=bodies[index], headers=headers) as response:
                    raw = await response.read()
                    status = response.status
            except Exception as error:  # every failure counts, by its kind
                errors[type(error).__name__] += 1
                continue
            if status == 200:
                latencies.append(time.perf_counter() - sent)
                answers.append((index, raw))
            else:
                errors[str(status)] += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"latencies": latencies, "answers": answers, "errors": errors, "wall": wall, "client_cpu": cpu}


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def answer_label(raw: bytes) -> str:
    answer = json.loads(raw)
    return (answer[0] if isinstance(answer, list) else answer)["label"]


def run_level(server: Server, bodies: list[bytes], start: int, count: int, concurrency: int, timeout: float,
              labels: dict[int, str]) -> dict[str, Any]:
    batch_before, cpu_before = server.batch_metric(), server.cpu_seconds()
    load = os.getloadavg()[0]
    out = asyncio.run(closed_loop(f"{server.base}/classify", bodies, start, count, concurrency, timeout))
    server_cpu = server.cpu_seconds()
    server_cpu.subtract(cpu_before)
    batch_after = server.batch_metric()
    for index, raw in out["answers"]:
        labels[index] = answer_label(raw)
    ok, wall = len(out["latencies"]), out["wall"]
    batches = batch_after[1] - batch_before[1]
    ms = [1000 * x for x in out["latencies"]]
    return {"concurrency": concurrency, "requests": count, "ok": ok, "errors": dict(out["errors"]),
            "seconds": round(wall, 2), "throughput": round(ok / wall, 2),
            "p50_ms": round(percentile(ms, 0.5), 1) if ms else None,
            "p99_ms": round(percentile(ms, 0.99), 1) if ms else None,
            "mean_batch": round((batch_after[0] - batch_before[0]) / batches, 2) if batches else None,
            "client_cpu_cores": round(out["client_cpu"] / wall, 2),
            "server_cpu_cores": round(sum(server_cpu.values()) / wall, 2),
            "server_cpu_cores_by_role": {role: round(seconds / wall, 2) for role, seconds in server_cpu.items()},
            "load_average_1m_before": round(load, 2)}


# ---------------------------------------------------------------- one served variant


def write_params(base: dict[str, Any], serve: dict[str, Any], path: Path) -> dict[str, Any]:
    params = json.loads(json.dumps(base))
    params["serve"] = {**params["serve"], **serve}
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return params["serve"]


def serve_variant(name: str, serve_keys: dict[str, Any], facts: dict[str, Any], base_params: dict[str, Any],
                  args: argparse.Namespace, texts: list[str], workdir: Path) -> dict[str, Any]:
    field = args.request_form
    bodies = [json.dumps({field: text if field == "text" else [text]}).encode() for text in texts]
    params_path = workdir / f"params-{name}.yaml"
    serve = write_params(base_params, serve_keys, params_path)
    port = free_port()
    env = {**os.environ, "BENTOML_HOME": str(facts["home"]), "MLOPS_PARAMS": str(params_path),
           "MLOPS_TRAFFIC_DIR": str(workdir / f"traffic-{name}"), "HF_HUB_OFFLINE": "1",
           "BENTOML_DO_NOT_TRACK": "True", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop(serve.get("api_key_env", "MLOPS_API_KEY"), None)
    if args.source:
        env["MLOPS_MODEL_TAG"] = facts["model"]
        command = [str(BIN / "bentoml"), "serve", "mlops.serving.service:TextClassifier",
                   "--working-dir", str(args.source)]
        cwd = args.source
    else:
        command, cwd = [str(BIN / "bentoml"), "serve", facts["bento"]], facts["home"].parent
    command += ["--host", "127.0.0.1", "--port", str(port)]
    print(f"\n[{name}] serve: {json.dumps(serve_keys)}; {' '.join(command[1:])}", flush=True)
    server = Server(command, env, cwd, workdir / f"server-{name}.log", port)
    result: dict[str, Any] = {"serve": serve, "command": command[1:], "levels": []}
    labels: dict[int, str] = {}
    try:
        result["ready_seconds"] = server.wait_ready(bodies[0], args.ready_timeout)
        warm = asyncio.run(closed_loop(f"{server.base}/classify", bodies, 0, args.warmup, min(8, args.warmup),
                                       args.timeout))
        result["warmup"] = {"requests": args.warmup, "errors": dict(warm["errors"])}
        cursor = args.warmup
        for concurrency, count in args.levels:
            level = run_level(server, bodies, cursor, count, concurrency, args.timeout, labels)
            cursor += count
            result["levels"].append(level)
            print(f"[{name}] c={concurrency:<3} {level['ok']}/{count} ok, {level['throughput']} req/s, "
                  f"p50 {level['p50_ms']} ms, p99 {level['p99_ms']} ms, batch {level['mean_batch']}, "
                  f"errors {level['errors'] or 0}", flush=True)
    except RuntimeError as error:
        result["failed"] = str(error)
        print(f"[{name}] FAILED: {error}", flush=True)
    finally:
        result["stop"] = server.stop()
        if result["stop"]["killed"]:
            print(f"[{name}] killed after the grace period: {result['stop']['killed']}", flush=True)
    result["log_tail"] = server.tail(15).splitlines()
    args.log_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(server.log, args.log_dir / f"{name}.log")
    result["log"] = str(args.log_dir / f"{name}.log")
    result["labels"] = labels
    return result


def traffic_log_append_cost(workdir: Path, texts: list[str], records: int = 2000) -> dict[str, Any]:
    """In-process: CPU seconds of one TrafficLog.append of one text (with an embedding), as the service logs."""
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


# ---------------------------------------------------------------- checks and report


def level_of(variant: dict[str, Any] | None, concurrency: int) -> dict[str, Any] | None:
    for level in (variant or {}).get("levels", []):
        if level["concurrency"] == concurrency:
            return level
    return None


def check(name: str, observed: Any, target: str, passed: bool | None, **details: Any) -> dict[str, Any]:
    return {"check": name, "observed": observed, "target": target, "passed": passed, **details}


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def checks(offline: dict[str, Any], served: dict[str, Any], top: int,
           append: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    fp32, unbatched, int8 = served.get("batched_fp32"), served.get("unbatched_fp32"), served.get("batched_int8")
    top_fp32, top_int8 = level_of(fp32, top), level_of(int8, top)
    limit = offline.get("fp32", {}).get("limit")
    value = ratio(top_fp32 and top_fp32["throughput"], limit)
    out.append(check(f"served batched fp32 at c={top} / offline fp32 limit", value,
                     f">= {TARGETS['served_vs_offline']}", None if value is None else value >= 0.8,
                     served=top_fp32 and top_fp32["throughput"], offline_limit=limit))
    per_level = {}
    for level in (fp32 or {}).get("levels", []):
        other = level_of(unbatched, level["concurrency"])
        per_level[level["concurrency"]] = ratio(level["throughput"], other and other["throughput"])
    measured = [v for v in per_level.values() if v is not None]
    out.append(check("batched / unbatched throughput, every concurrency", per_level, ">= 1.0 at each",
                     None if not measured else all(v >= TARGETS["batched_vs_unbatched"] for v in measured)))
    requests = sum(level["requests"] for variant in served.values() for level in variant.get("levels", []))
    errors: Counter[str] = Counter()
    for variant in served.values():
        for level in variant.get("levels", []):
            errors.update(level["errors"])
        errors.update((variant.get("warmup") or {}).get("errors", {}))
    failed = [name for name, variant in served.items() if "failed" in variant]
    out.append(check("errors (429/503/5xx, exceptions) over all requests", sum(errors.values()),
                     f"0 over >= {TARGETS['min_requests']}", not errors and not failed
                     and requests >= TARGETS["min_requests"], requests=requests, by_kind=dict(errors),
                     variants_failed=failed))
    value = ratio(top_int8 and top_int8["throughput"], top_fp32 and top_fp32["throughput"])
    out.append(check(f"served int8 / fp32 throughput at c={top}", value, f">= {TARGETS['int8_speedup']}",
                     None if value is None else value >= TARGETS["int8_speedup"]))
    top_nolog = level_of(served.get("batched_fp32_nolog"), top)
    value = ratio(top_fp32 and top_fp32["throughput"], top_nolog and top_nolog["throughput"])
    cost = None if value is None else round(1 - value, 3)
    share = None
    if top_fp32 and append and top_fp32["throughput"]:  # append CPU / server CPU per request
        share = round(append["cpu_us_per_request"] / 1e6 / (top_fp32["server_cpu_cores"] / top_fp32["throughput"]), 4)
    out.append(check(f"traffic log cost: 1 - logged / unlogged batched fp32 throughput at c={top}", cost,
                     f"<= {TARGETS['traffic_log_max_cost']}",
                     None if cost is None else cost <= TARGETS["traffic_log_max_cost"],
                     append_cpu_us_per_request=append.get("cpu_us_per_request"),
                     append_share_of_server_cpu_per_request=share))
    value = ratio(offline.get("int8", {}).get("limit"), limit)
    out.append(check("offline int8 / fp32 limit", value, f">= {TARGETS['int8_speedup']}",
                     None if value is None else value >= TARGETS["int8_speedup"]))
    if "fp32" in offline and "int8" in offline:
        loss = round(100 * (offline["fp32"]["accuracy"] - offline["int8"]["accuracy"]), 2)
        out.append(check("int8 accuracy loss, points (offline)", loss, f"<= {TARGETS['int8_max_loss_points']}",
                         loss <= TARGETS["int8_max_loss_points"], rows=offline["int8"]["accuracy_rows"],
                         fp32=offline["fp32"]["accuracy"], int8=offline["int8"]["accuracy"]))
    else:
        out.append(check("int8 accuracy loss, points (offline)", None, "<= 1.0", None))
    return out


def served_quality(served: dict[str, Any], gold: list[str], offline: dict[str, Any]) -> dict[str, Any]:
    """Accuracy of each variant's served labels on the texts it sent; agreement with the offline labels of the
    same precision and between variants."""
    out: dict[str, Any] = {}
    for name, variant in served.items():
        labels = variant["labels"]
        if not labels:
            continue
        entry = {"texts": len(labels), "accuracy": round(sum(gold[i] == lab for i, lab in labels.items())
                                                          / len(labels), 4)}
        predicted = offline.get(variant["serve"]["precision"], {}).get("predicted")
        if predicted:
            common = [i for i in labels if i < len(predicted)]
            if common:
                entry["agreement_with_offline"] = round(sum(labels[i] == predicted[i] for i in common) / len(common), 4)
                entry["compared_with_offline"] = len(common)
        out[name] = entry
    if served.get("batched_fp32", {}).get("labels") and served.get("batched_int8", {}).get("labels"):
        a, b = served["batched_fp32"]["labels"], served["batched_int8"]["labels"]
        common = a.keys() & b.keys()
        out["int8_vs_fp32_served_agreement"] = round(sum(a[i] == b[i] for i in common) / len(common), 4)
    return out


def print_report(result: dict[str, Any]) -> None:
    offline = result["offline"]
    print(f"\nOffline limit ({offline.get('threads')} threads, {offline.get('texts')} texts, texts/s by "
          "OMP_WAIT_POLICY and batch size):")
    for precision in ("fp32", "int8"):
        if precision in offline:
            entry = offline[precision]
            for policy, table in entry["texts_per_s"].items():
                print(f"  {precision} {policy:<8} " + ", ".join(f"bs{k} {v}" for k, v in table.items()))
            print(f"  {precision} limit {entry['limit']} (bs{entry['limit_batch']}, {entry['limit_wait_policy']}); "
                  f"arrival-order batches (micro {entry['in_arrival_order']['micro_batch']}) "
                  f"{entry['in_arrival_order']['texts_per_s']}; "
                  f"1 text/call {entry['one_text_per_call']}; accuracy {entry['accuracy']} on "
                  f"{entry['accuracy_rows']} rows  [{entry['implementation']}]")
    print("\nServed (req/s = successful single-text requests per second of the level's wall time):")
    print(f"  {'variant':<16}{'c':>4}{'requests':>10}{'errors':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'batch':>7}{'client':>8}  server CPU cores, by service")
    for name, variant in result["served"].items():
        if "failed" in variant:
            print(f"  {name:<16} failed: {variant['failed'].splitlines()[0]}")
        for level in variant["levels"]:
            roles = ", ".join(f"{role} {cores}" for role, cores in level["server_cpu_cores_by_role"].items())
            print(f"  {name:<16}{level['concurrency']:>4}{level['requests']:>10}{sum(level['errors'].values()):>8}"
                  f"{level['throughput']:>9}{level['p50_ms']!s:>9}{level['p99_ms']!s:>9}{level['mean_batch']!s:>7}"
                  f"{level['client_cpu_cores']:>8}  {level['server_cpu_cores']} ({roles})")
    for name, entry in result["served_quality"].items():
        print(f"  {name}: {entry}")
    print("\nChecks:")
    for item in result["checks"]:
        verdict = {True: "PASS", False: "FAIL", None: "n/a "}[item["passed"]]
        print(f"  {verdict}  {item['check']}: {item['observed']} (target {item['target']})")


# ---------------------------------------------------------------- main


def parse_levels(text: str) -> list[tuple[int, int]]:
    try:
        return [(int(c), int(n)) for c, n in (part.split(":") for part in text.split(","))]
    except ValueError:
        raise argparse.ArgumentTypeError("levels: concurrency:requests,... e.g. 1:300,8:1200") from None


def parse_set(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError("--set: key=value, a key of serve:")
    return key, yaml.safe_load(value)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--offline-worker":
        return offline_worker(Path(sys.argv[2]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=DEFAULT_PROJECT,
                        help=f"a project with a packaged champion (bench/lifecycle.py --keep); "
                             f"default {DEFAULT_PROJECT}")
    parser.add_argument("--source", type=Path, help="serve mlops.serving.service from this checkout (with the champion "
                                                    "model) instead of the champion Bento")
    parser.add_argument("--params", type=Path, help="the params.yaml whose serve: keys the variants change "
                                                    "(default: the Bento's own, or the --source checkout's)")
    parser.add_argument("--test-csv", type=Path, default=DEFAULT_TEST_CSV, help=f"default {DEFAULT_TEST_CSV}")
    parser.add_argument("--levels", type=parse_levels, default=None, help=f"concurrency:requests,... "
                                                                         f"(default {FULL_LEVELS}, --quick / 10)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="served variants (default: all)")
    parser.add_argument("--set", dest="overrides", type=parse_set, action="append", default=[],
                        help="key=value of serve: for every variant, e.g. --set workers=1 (repeatable)")
    parser.add_argument("--precisions", default="fp32,int8", help="offline precisions (default fp32,int8)")
    parser.add_argument("--batch-sizes", default="8,16,32,64", help="offline batch sizes (default 8,16,32,64)")
    parser.add_argument("--wait-policies", default="default,PASSIVE",
                        help="OMP_WAIT_POLICY values for the offline limit (default: unset, and PASSIVE)")
    parser.add_argument("--offline-texts", type=int, default=None, help="texts per offline pass (1000; quick 100)")
    parser.add_argument("--offline-repeats", type=int, default=1, help="offline passes, best kept (default 1)")
    parser.add_argument("--accuracy-rows", type=int, default=None, help="test rows for accuracy (all; quick 760)")
    parser.add_argument("--no-offline", action="store_true", help="skip the offline measurements")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up requests per variant (50; quick 16)")
    parser.add_argument("--timeout", type=float, default=60.0, help="per-request timeout, seconds (default 60)")
    parser.add_argument("--ready-timeout", type=float, default=300.0, help="server start limit, s (default 300)")
    parser.add_argument("--request-form", choices=["text", "texts"], default="text",
                        help='request body: {"text": t}, or {"texts": [t]} for a service without single-text input')
    parser.add_argument("--quick", action="store_true", help="about 10x fewer requests and texts (development)")
    parser.add_argument("--out", type=Path, help="result file (default bench/results/serve.json; "
                                                 "serve-quick.json with --quick)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # through the finally blocks that stop servers
    scale = 10 if args.quick else 1
    args.levels = args.levels or [(c, max(c, n // scale)) for c, n in parse_levels(FULL_LEVELS)]
    args.warmup = args.warmup if args.warmup is not None else (16 if args.quick else 50)
    args.offline_texts = args.offline_texts or (100 if args.quick else 1000)
    args.batch_sizes = [int(x) for x in args.batch_sizes.split(",")]
    args.precisions = [x for x in args.precisions.split(",") if x]
    args.wait_policies = [x for x in args.wait_policies.split(",") if x]
    variants = [x for x in args.variants.split(",") if x]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"--variants: unknown {sorted(unknown)}; known: {list(VARIANTS)}")
    out = args.out or ROOT / "bench" / "results" / ("serve-quick.json" if args.quick else "serve.json")
    args.log_dir = out.with_name(out.stem + "-logs")
    project = args.project.resolve()
    args.source = args.source.resolve() if args.source else None
    facts = project_facts(project)
    if not args.source and not facts["bento"]:
        parser.error("the champion has no Bento: use --source")
    args.test_csv = args.test_csv.resolve()
    texts, gold = read_test_split(args.test_csv, facts["label_names"])
    args.accuracy_rows = min(len(texts), args.accuracy_rows or (760 if args.quick else len(texts)))
    if args.params:
        base_path = args.params
    elif args.source:
        base_path = args.source / "params.yaml"
    else:
        base_path = facts["bento_src"] / "params.yaml" if (facts["bento_src"] / "params.yaml").is_file() \
            else project / "params.yaml"
    base_params = yaml.safe_load(base_path.read_text())

    result: dict[str, Any] = {
        "project": str(project), "model": facts["model"], "bento": None if args.source else facts["bento"],
        "served_from": f"source {args.source}" if args.source else "bento", "params_base": str(base_path),
        "quick": args.quick, "levels": args.levels, "request_form": args.request_form,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_start": [round(x, 2) for x in os.getloadavg()]},
        "versions": {name: version(name) for name in ("bentoml", "torch", "transformers", "aiohttp")},
        "targets": TARGETS,
    }
    print(f"project {project}: model {facts['model']}, "
          f"{'source ' + str(args.source) if args.source else 'bento ' + facts['bento']}; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", flush=True)
    if os.getloadavg()[0] > 0.5:
        print(f"warning: load average {os.getloadavg()[0]:.2f} before the run; on {os.cpu_count()} cores another "
              "busy process skews every figure (compare load_average_* in the result)", flush=True)
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        workdir = Path(tmp)
        if args.no_offline:
            offline: dict[str, Any] = {}
        else:
            print(f"offline: {args.precisions} x batch sizes {args.batch_sizes} on {args.offline_texts} texts; "
                  f"accuracy on {args.accuracy_rows} rows", flush=True)
            offline = run_offline(facts, args, workdir, base_params["serve"])
        served = {}
        for name in variants:
            served[name] = serve_variant(name, {**VARIANTS[name], **dict(args.overrides)}, facts, base_params,
                                         args, texts, workdir)
        result["traffic_log_append"] = traffic_log_append_cost(workdir, texts)
    result["served_quality"] = served_quality(served, gold, offline)
    predictions = {name: {str(i): label for i, label in sorted(v.pop("labels").items())} for name, v in served.items()}
    for entry in offline.values():
        if isinstance(entry, dict):
            entry.pop("predicted", None)
    result.update({"offline": offline, "served": served})
    top = max(c for c, _ in args.levels)
    result["checks"] = checks(offline, served, top, result["traffic_log_append"])
    result["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_name(out.stem + "-predictions.json").write_text(json.dumps(predictions) + "\n")
    print_report(result)
    print(f"\n{out}")


if __name__ == "__main__":
    main()
