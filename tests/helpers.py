"""Helpers shared by tests and benchmarks: the project's paths, its environment, throw-away project copies,
tiny params, free ports, `bentoml serve` started and stopped, a closed-loop load generator and its percentiles.
Plain functions (no pytest fixtures), so bench/ scripts import them too."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
BIN = Path(sys.executable).parent


def read_dotenv(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            pairs[key.strip()] = value.strip()
    return pairs


def project_env(project: Path) -> dict[str, str]:
    """The environment the Makefile gives commands, pointed at `project`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "BENTOML"))}
    env.update(read_dotenv(ROOT / "airflow.env"))
    env.update({
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(project / ".airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(project / "plugins"),
        "BENTOML_HOME": str(project / ".bentoml"),
        "BENTOML_DO_NOT_TRACK": "True",
        "DVC_NO_ANALYTICS": "1",
        "GX_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "MLOPS_TRAFFIC_DIR": str(project / "logs" / "traffic"),
        "MLOPS_FEEDBACK_DIR": str(project / "logs" / "feedback"),  # as make, run in that project, exports it
    })
    return env


def run_cmd(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=env or project_env(cwd), capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}\n{result.stdout[-4000:]}\n"
                             f"{result.stderr[-4000:]}")
    return result


def invoke_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None,
               check: bool = True) -> subprocess.CompletedProcess[str]:
    """`mlops <args>` in this process, as `run_cmd` would run it in a child (exit status, stdout, stderr), without
    the seconds a child spends importing the stack: for the many tests of one command's messages and exit codes.
    The environment is this process's without its `MLOPS_*` variables, plus `env`; it and the working directory
    are restored afterwards, whatever the command did to them (`apply_defaults` sets variables). `check` as in
    `run_cmd`."""
    from mlops.cli import main  # here: bench/ scripts import this module and need no CLI

    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    stdout, stderr = io.StringIO(), io.StringIO()
    os.environ.clear()
    os.environ.update({k: v for k, v in saved_env.items() if not k.startswith("MLOPS_")} | (env or {}))
    code = 0
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                main(args)
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    if check and code != 0:
        raise AssertionError(f"mlops {' '.join(args)} exited {code}\n{stdout.getvalue()[-4000:]}\n"
                             f"{stderr.getvalue()[-4000:]}")
    return subprocess.CompletedProcess(["mlops", *args], code, stdout.getvalue(), stderr.getvalue())


def tiny_params(base: dict[str, Any], model_dir: Path) -> dict[str, Any]:
    """The repository's params, shrunk so a whole lifecycle takes about a minute."""
    params = copy.deepcopy(base)
    params["data"]["generated"]["rows"] = 600
    params["validate"]["min_rows"] = 50
    params["model"].update({"base": str(model_dir), "max_length": 48})
    params["train"].update({"epochs": 6, "batch_size": 16, "lr": 3.0e-3, "warmup_ratio": 0.0})
    params["gate"].update({"min_accuracy": 0.4, "min_macro_f1": 0.3, "min_class_recall": 0.0,
                           "min_behaviour_pass_rate": 0.0, "max_latency_p95_ms": 1e6, "bootstrap_samples": 500,
                           # a tiny model answers in milliseconds: on a busy machine noise alone moves the ratio
                           "max_latency_ratio": 1e6})
    params["evaluate"]["latency_samples"] = 20
    params["monitor"]["min_rows"] = 50  # the tiny test split has 90 rows
    params["evaluate"]["behaviour_suite"] = str(ROOT / "configs" / "behaviour.yaml")
    return params


def copy_project(dest: Path, params: dict[str, Any] | None = None) -> Path:
    """Copy the project's tracked and untracked-not-ignored files, with `params` as params.yaml (None: the
    project's own); commit them in a new git repo."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    for name in listed:
        source = ROOT / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    if params is not None:
        (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (dest / "dvc.lock").unlink(missing_ok=True)
    (dest / "data" / "feedback").mkdir(parents=True, exist_ok=True)  # the feedback batches ingest depends on
    git = ["git", "-c", "user.email=test@example.com", "-c", "user.name=test"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "copy"], cwd=dest, check=True)
    return dest


def train_and_evaluate(root: Path, settings: Any, shuffle_labels: bool = False) -> dict[str, Any]:
    """Run the split, train, optimize and evaluate stages on generated data under `root`; return the metrics."""
    from mlops.core.io import write_table
    from mlops.stages import evaluate, optimize, split, train
    from mlops.stages.generate import generate_corpus

    frame = generate_corpus(600, settings.data.generated.classes, seed=11)
    frame["subset"] = "main"
    for name, part in split.split(frame, settings).items():
        if shuffle_labels and name == "train":
            part = part.assign(label=part["label"].sample(frac=1.0, random_state=5).to_numpy())
        write_table(part, root / "split" / f"{name}.parquet")
    train.run(settings, train.TrainIO.build(split_dir=root / "split", out=root / "model", metrics=root / "train.json",
                                            live_dir=root / "dvclive"))
    optimize.run(settings, optimize.OptimizeIO.build(model=root / "model", out_dir=root / "optimized"))
    return evaluate.run(settings, evaluate.EvaluateIO(
        model=root / "model", split_dir=root / "split", scored_dir=root / "scored", metrics=root / "metrics.json",
        plots_dir=root / "plots", optimized_dir=root / "optimized"))


def kill_9_at(command: list[str], cwd: Path, env: dict[str, str], marker: Path, timeout: float = 300) -> None:
    """Start `command` in its own session and SIGKILL its whole group as soon as `marker` exists (a checkpoint's
    trainer_state.json): a run killed mid-training, for the resume tests."""
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert process.poll() is None, f"{command[1]} ended before it could be killed"
        assert time.monotonic() < deadline, f"no {marker} appeared"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(url: str, body: bytes, content_type: str = "application/json", key: str | None = None) -> tuple[int, str]:
    """POST `body`; the status and the decoded answer, 4xx/5xx included."""
    headers = {"Content-Type": content_type, **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_ready(base: str, server: subprocess.Popen, timeout: float = 120) -> None:
    """Poll /readyz until 200; fail if the server exits or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, "service did not become ready"
        assert server.poll() is None, "service exited"
        time.sleep(1)


def start_server(target: str, cwd: Path, env: dict[str, str], port: int, log: Path | None = None) -> subprocess.Popen:
    """`bentoml serve <target>` (a Bento tag or a service import path) on loopback, in its own session so that
    `stop` ends it whole; its output goes to `log`, else nowhere."""
    output = open(log, "wb") if log else subprocess.DEVNULL  # the child keeps its own copy of the descriptor
    try:
        return subprocess.Popen([str(BIN / "bentoml"), "serve", target, "--host", "127.0.0.1", "--port", str(port)],
                                cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        if log:
            output.close()


def stop(process: subprocess.Popen, grace: float = 30) -> list[str]:
    """Stop a server started in its own session: SIGTERM to its group, SIGKILL to whatever of its process tree
    outlives `grace`. The tree is listed before the signal, as BentoML's workers run in process groups of their
    own. Returns the command lines of the processes that had to be killed."""
    import psutil

    try:
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(tree, timeout=grace)
    killed = []
    for survivor in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            killed.append(" ".join(survivor.cmdline()[:4]))
            survivor.kill()
    psutil.wait_procs(alive, timeout=10)
    process.wait(timeout=10)
    return killed


@contextlib.contextmanager
def webhook_receiver(path: str = "/hook") -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook on loopback for alert tests: yields its URL and the JSON bodies POSTed to it (with their path)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append({"path": self.path, "body": body})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}{path}", received
    finally:
        server.shutdown()


def processes_of(project: Path, grace: float = 0.0) -> list[str]:
    """Command lines of the processes (other than this one) running with `project`'s BentoML home, once `grace`
    seconds have passed or none is left: what a stopped or killed command of the project left behind."""
    import psutil

    home, deadline = str(project / ".bentoml"), time.monotonic() + grace
    while True:
        found = []
        for process in psutil.process_iter(["pid", "cmdline", "status"]):
            if process.info["pid"] == os.getpid() or process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            with contextlib.suppress(psutil.Error):
                if process.environ().get("BENTOML_HOME") == home:
                    found.append(" ".join((process.info["cmdline"] or [])[:6]))
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.2)


def server_cpu_seconds(process: subprocess.Popen) -> float:
    """User + system CPU seconds of the server's whole process tree (the CLI, circusd, every worker)."""
    import psutil

    total = 0.0
    with contextlib.suppress(psutil.NoSuchProcess):
        for member in [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += sum(member.cpu_times()[:2])
    return total


async def closed_loop(url: str, bodies: list[bytes], start: int, count: int, concurrency: int) -> dict[str, Any]:
    """Exactly `concurrency` clients, each sending its next request when its last one is answered, until `count`
    requests are done; bodies[start], bodies[start + 1], ... in order (wrapping around)."""
    from collections import Counter

    import aiohttp

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
    import numpy as np

    return round(1000 * float(np.percentile(seconds, q, method="inverted_cdf")), 1) if seconds else None
