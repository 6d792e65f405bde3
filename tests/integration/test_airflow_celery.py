"""Distributed: CeleryExecutor on the local PostgreSQL (metadata) and Redis (broker), two workers.

The production layout of docker/docker-compose.yaml, run natively: api-server,
scheduler, dag-processor and two Celery workers, one serving the `default`
queue and one the `gpu` queue, where the DAG routes `train`. A lifecycle run on
the tiny config, triggered through REST with parameters, must succeed with
`train` run by the gpu worker and every other task by the default worker.
Each test gets a fresh PostgreSQL database and an empty Redis database, both
removed afterwards.
"""

from __future__ import annotations

import json
import secrets
import socket
import time
import uuid

import pytest

from mlops.orchestration.runs import GPU_STAGES, run_dir
from tests.helpers import BIN, copy_project, free_port, project_env, run_cmd, tiny_params
from tests.integration.airflow_stack import Stack

pytestmark = pytest.mark.slow

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS = ("127.0.0.1", 6379)


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def postgres_db():
    if not reachable(PG["host"], PG["port"]):
        pytest.skip(f"no PostgreSQL on {PG['host']}:{PG['port']}")
    import psycopg2

    name = f"airflow_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(dbname="postgres", **PG)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def redis_db():
    if not reachable(*REDIS):
        pytest.skip(f"no Redis on {REDIS[0]}:{REDIS[1]}")
    import redis

    for number in range(15, 0, -1):  # the first empty database from the top; 0 is left to others
        client = redis.Redis(host=REDIS[0], port=REDIS[1], db=number)
        if client.dbsize() == 0:
            break
    else:
        pytest.skip("no empty Redis database")
    try:
        yield number
    finally:
        client.flushdb()
        client.close()


def test_celery_workers_on_postgres_and_redis_run_the_lifecycle(tmp_path, repo_params, tiny_model_dir, postgres_db,
                                                                 redis_db):
    project = copy_project(tmp_path / "project", tiny_params(repo_params, tiny_model_dir))
    port = free_port()
    database = f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{postgres_db}"
    env = project_env(project) | {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
        "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS[0]}:{REDIS[1]}/{redis_db}",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{postgres_db}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        # Shared by every process, as the compose file's .env does: tokens the api-server signs
        # must verify in the workers.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
    }
    started = time.monotonic()
    run_cmd([str(BIN / "airflow"), "db", "migrate"], cwd=project, env=env, timeout=300)
    print(f"db migrate on PostgreSQL: {time.monotonic() - started:.0f}s")
    stack = Stack(project, env, tmp_path / "logs")
    try:
        stack.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1")
        stack.start("scheduler", "scheduler")
        stack.start("dag-processor", "dag-processor")
        stack.start("worker-default", "celery", "worker", "--queues", "default", "--concurrency", "1",
                    "--celery-hostname", "default@%h", "--skip-serve-logs")
        stack.start("worker-gpu", "celery", "worker", "--queues", "gpu", "--concurrency", "1",
                    "--celery-hostname", "gpu@%h", "--skip-serve-logs")
        stack.wait_healthy(timeout=180)
        stack.login()
        stack.wait_dag("lifecycle")
        print(f"celery stack up and DAG parsed in {time.monotonic() - started:.0f}s")

        status, run = stack.trigger("lifecycle", {"epochs": 2, "seed": 3, "min_accuracy": 0.0})
        assert status == 200, run
        state = stack.wait_run("lifecycle", run["dag_run_id"], timeout=600)
        states = stack.task_states("lifecycle", run["dag_run_id"])
        assert state == "success", (states, stack.log_tails())
        print(f"lifecycle run on Celery done in {time.monotonic() - started:.0f}s")
        assert {task for task, info in states.items() if info["queue"] == "gpu"} == GPU_STAGES  # train, distill
        assert {info["queue"] for task, info in states.items() if task not in GPU_STAGES} == {"default"}
        # every task succeeded, but for the refit and packaging when the gate_decision branch skipped them (a
        # rejected model), `approve`, which skips itself with promote.approval: auto, and `distill`, off in params
        skipped = {task for task, info in states.items() if info["state"] == "skipped"}
        assert {"approve", "distill"} <= skipped <= {"refit", "package", "approve", "promote", "distill"}, states
        assert all(info["state"] == "success" for task, info in states.items() if task not in skipped), states
        train_log = stack.task_log("lifecycle", run["dag_run_id"], "train")
        assert "Running stage 'train'" in train_log
    finally:
        stack.stop()
    gpu_log = (tmp_path / "logs/worker-gpu.log").read_text(errors="replace")
    default_log = (tmp_path / "logs/worker-default.log").read_text(errors="replace")
    assert "task_id='train'" in gpu_log and "task_id='train'" not in default_log
    assert "task_id='evaluate'" in default_log and "task_id='evaluate'" not in gpu_log
    record = json.loads((run_dir(project, run["dag_run_id"]) / "run.json").read_text())
    assert record["params"]["train"]["epochs"] == 2 and record["params"]["seed"] == 3
    assert record["results"]["metrics/train.json"]["epochs"] == 2
    assert record["results"]["reports/package.json"]["status"] in ("candidate", "unchanged", "rejected")
