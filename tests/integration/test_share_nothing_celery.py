"""Share-nothing workers under the CeleryExecutor: two workers, no disk in common, S3 (moto) as the DVC remote.

The control plane (api-server, scheduler, dag-processor) runs from one project
copy; each Celery worker has its own copy of the code (as a machine has its
image), its own AIRFLOW_HOME and its own work directory, and the workers meet
only through the broker (Redis), the metadata database (PostgreSQL), a bare git
repository (the run branches) and moto's S3 server on loopback (the DVC
remote). Worker A serves `default`, worker B `gpu`, where the DAG routes
`train`. Then worker A serves `gpu` too, and worker B is killed with SIGKILL
(its whole process tree, as a machine that dies) while it trains a second run
with the same parameters: `train` is retried on worker A and the run ends
with the same model and metrics.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time

import pytest

from mlops.orchestration.runs import GPU_STAGES, run_dir
from mlops.orchestration.workspace import REGISTRY_BRANCH, run_branch
from tests.helpers import BIN, copy_project, free_port, project_env, run_cmd, tiny_params
from tests.integration.airflow_stack import Stack
from tests.integration.test_airflow_celery import PG, REDIS, postgres_db, reachable, redis_db  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.share_nothing, pytest.mark.timeout(2400)]

BUCKET = "mlops-share-nothing"
CONF = {"epochs": 2, "seed": 3, "min_accuracy": 0.0, "min_macro_f1": 0.0}


@pytest.fixture
def s3_endpoint(tmp_path):
    """moto's S3 server on loopback, with an empty bucket."""
    import boto3

    port = free_port()
    log = open(tmp_path / "moto.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not reachable("127.0.0.1", port):
            assert server.poll() is None and time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.2)
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                     region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


def kill_tree(pid: int) -> list[int]:
    """SIGKILL a process and every descendant (the stage's command runs in a session of its own)."""
    import psutil

    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    for process in tree:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(tree, timeout=30)
    return [process.pid for process in tree]


def running_dvc(pid: int) -> bool:
    """Whether a descendant of `pid` runs dvc (a task's pull, `dvc repro` of its stage, or its push)."""
    import psutil

    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return False
    for child in children:
        try:
            if any(os.path.basename(part) == "dvc" for part in child.cmdline()[:2]):
                return True
        except psutil.NoSuchProcess:
            pass
    return False


def tasks_in(workdir, run_id: str) -> set[str]:
    from mlops.orchestration.runs import safe_name

    folder = workdir / safe_name(run_id)
    return {path.name for path in folder.iterdir()} if folder.is_dir() else set()


def lock_hashes(git_remote, run_id: str, tmp_path) -> dict[str, str]:
    """models/candidate's hash and the evaluation's headline metrics but latency, from the run branch's tip."""
    import yaml

    lock = yaml.safe_load(subprocess.run(["git", "show", f"{run_branch(run_id)}:dvc.lock"], cwd=git_remote,
                                         capture_output=True, text=True, check=True).stdout)
    outs = {out["path"]: out["md5"] for out in lock["stages"]["train"]["outs"]}
    metrics = subprocess.run(["git", "show", f"{run_branch(run_id)}:metrics/evaluate.json"], cwd=git_remote,
                             capture_output=True, text=True, check=True).stdout
    headline = {key: value for key, value in json.loads(metrics).items() if key != "latency"}  # timing varies
    return {"model": outs["models/candidate"], "metrics": headline}


def test_two_workers_without_shared_disk_run_the_lifecycle_and_survive_a_sigkill(
        tmp_path, repo_params, tiny_model_dir, postgres_db, redis_db, s3_endpoint):  # noqa: F811
    params = tiny_params(repo_params, tiny_model_dir)
    control = copy_project(tmp_path / "control", params)
    git_remote = tmp_path / "git-remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(control), str(git_remote)], check=True)
    port = free_port()
    database = f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{postgres_db}"
    common = {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
        "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS[0]}:{REDIS[1]}/{redis_db}",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{database}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        # a worker killed mid-task: its task is failed (and retried) after 30 s without a heartbeat
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    }
    control_env = project_env(control) | common
    started = time.monotonic()
    run_cmd([str(BIN / "airflow"), "db", "migrate"], cwd=control, env=control_env, timeout=300)

    workers = {}
    for name in ("a", "b"):
        root = tmp_path / f"worker-{name}"
        code = copy_project(root / "code", params)  # the worker's image: its own copy of the code
        env = project_env(code) | common | {
            "MLOPS_PROJECT_DIR": str(code),
            "MLOPS_WORKSPACE_MODE": "isolated",
            "MLOPS_GIT_REMOTE": str(git_remote),
            "MLOPS_DVC_REMOTE": f"s3://{BUCKET}/dvc",
            "DVC_S3_ENDPOINT": s3_endpoint,
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
            "MLOPS_WORKDIR": str(root / "work"),
            "MLOPS_KEEP_WORKDIRS": "1",
        }
        (code / ".airflow").mkdir(exist_ok=True)
        workers[name] = (root, code, env)

    def start_worker(name: str, queues: str) -> Stack:
        root, code, env = workers[name]
        stack = Stack(code, env, root / "logs")
        stack.start(f"worker-{name}-{queues.replace(',', '-')}", "celery", "worker", "--queues", queues,
                    "--concurrency", "1", "--celery-hostname", f"{name}@%h", "--skip-serve-logs")
        return stack

    control_stack = Stack(control, control_env, tmp_path / "logs")
    stacks = [control_stack]
    try:
        control_stack.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1")
        control_stack.start("scheduler", "scheduler")
        control_stack.start("dag-processor", "dag-processor")
        worker_a = start_worker("a", "default")
        worker_b = start_worker("b", "gpu")
        stacks += [worker_a, worker_b]
        control_stack.wait_healthy(timeout=180)
        control_stack.login()
        control_stack.wait_dag("lifecycle")
        print(f"stack up in {time.monotonic() - started:.0f}s")

        # 1. The lifecycle on two workers that share nothing: train on the gpu worker, the rest on the other.
        status, run = control_stack.trigger("lifecycle", CONF)
        assert status == 200, run
        first = run["dag_run_id"]
        state = control_stack.wait_run("lifecycle", first, timeout=900)
        states = control_stack.task_states("lifecycle", first)
        assert state == "success", (states, control_stack.log_tails(), worker_a.log_tails(), worker_b.log_tails())
        print(f"run 1 done in {time.monotonic() - started:.0f}s: {states}")
        root_a, root_b = workers["a"][0], workers["b"][0]
        assert tasks_in(root_b / "work", first) == GPU_STAGES  # train and distill
        assert "train" not in tasks_in(root_a / "work", first) and "evaluate" in tasks_in(root_a / "work", first)
        assert states["promote"]["state"] == "success", states

        # Every stage's outputs are in the remote: a fresh clone of the run's branch + dvc pull is up to date.
        check = tmp_path / "check"
        subprocess.run(["git", "clone", "-q", "--branch", run_branch(first), str(git_remote), str(check)],
                       check=True)
        check_env = project_env(check) | {key: workers["a"][2][key] for key in (
            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
        run_cmd(["dvc", "remote", "add", "--local", "-d", "s3", f"s3://{BUCKET}/dvc"], cwd=check, env=check_env)
        run_cmd(["dvc", "remote", "modify", "--local", "s3", "endpointurl", s3_endpoint], cwd=check, env=check_env)
        (check / "data" / "feedback").mkdir(parents=True, exist_ok=True)
        run_cmd(["dvc", "pull", "-q"], cwd=check, env=check_env)
        status_json = run_cmd(["dvc", "status", "--json"], cwd=check, env=check_env).stdout
        assert json.loads(status_json) == {}, status_json
        promotion = json.loads((check / "reports/promotion.json").read_text())
        assert promotion["promoted"], promotion  # the champion is promoted
        record = json.loads((run_dir(check, first) / "run.json").read_text())
        assert record["params"]["train"]["epochs"] == 2
        registry = subprocess.run(["git", "log", "--format=%s", REGISTRY_BRANCH], cwd=git_remote,
                                  capture_output=True, text=True, check=True).stdout
        assert f"promote of run {first}" in registry

        # 2. Worker B dies (SIGKILL, whole tree) while it runs `train` of a second run; then worker A serves gpu
        # too and takes the retry. (Worker A joins the gpu queue only after the kill: two workers on one queue
        # race for the task, and the test must know which one runs it.)
        status, run = control_stack.trigger("lifecycle", CONF)
        assert status == 200, run
        second = run["dag_run_id"]
        [(_, worker_b_process)] = worker_b.processes
        deadline, next_check = time.monotonic() + 900, 0.0
        while not running_dvc(worker_b_process.pid):  # the train task pulls, runs and pushes with dvc
            assert time.monotonic() < deadline, control_stack.task_states("lifecycle", second)
            if time.monotonic() >= next_check:
                train = control_stack.task_states("lifecycle", second).get("train", {})
                assert train.get("state") not in ("success", "failed"), train
                next_check = time.monotonic() + 2
            time.sleep(0.1)  # a tiny model trains in seconds: look often
        killed = kill_tree(worker_b_process.pid)
        print(f"worker B killed (SIGKILL, {len(killed)} processes) at {time.monotonic() - started:.0f}s")
        worker_a.stop()
        worker_a = start_worker("a", "default,gpu")
        stacks.append(worker_a)
        state = control_stack.wait_run("lifecycle", second, timeout=900)
        states = control_stack.task_states("lifecycle", second)
        assert state == "success", (states, control_stack.log_tails(), worker_a.log_tails())
        print(f"run 2 done in {time.monotonic() - started:.0f}s: {states}")
        assert states["train"]["try"] >= 2, states
        assert "train" in tasks_in(root_a / "work", second)  # the retry ran on worker A
        assert lock_hashes(git_remote, second, tmp_path) == lock_hashes(git_remote, first, tmp_path)
    finally:
        for stack in reversed(stacks):
            stack.stop()
