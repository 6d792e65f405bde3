"""Start Airflow processes for a test, talk to REST API v2, and always stop what was started.

Every process runs in its own session and is stopped by process group
(Airflow's processes fork children that SIGTERM to the parent leaves behind).
Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.helpers import BIN


class Stack:
    """Airflow processes of one test, with their logs under `logs`."""

    def __init__(self, project: Path, env: dict[str, str], logs: Path) -> None:
        self.project, self.env, self.logs = project, env, logs
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.base = env["AIRFLOW__API__BASE_URL"].rstrip("/")
        self.token: str | None = None
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, *args: str) -> None:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen([str(BIN / "airflow"), *args], cwd=self.project, env=self.env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.processes.append((name, process))

    def stop(self) -> None:
        for _, process in reversed(self.processes):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 40
        for _, process in self.processes:
            try:
                process.wait(timeout=max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:  # whatever is left of the group, including forked children
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def log_tails(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-chars:]}"
                         for path in sorted(self.logs.glob("*.log")))

    def check_alive(self) -> None:
        for name, process in self.processes:
            assert process.poll() is None, f"airflow {name} exited {process.returncode}\n{self.log_tails()}"

    def request(self, method: str, path: str, body: Any = None, timeout: float = 30) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read().decode()
                status = response.status
        except urllib.error.HTTPError as error:
            raw, status = error.read().decode(), error.code
        try:
            return status, json.loads(raw)
        except json.JSONDecodeError:
            return status, raw

    def wait_healthy(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                status, body = self.request("GET", "/api/v2/monitor/health", timeout=5)
                if status == 200 and body.get("scheduler", {}).get("status") == "healthy":
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, f"Airflow not healthy after {timeout}s\n{self.log_tails()}"
            time.sleep(2)

    def login(self, timeout: float = 60) -> None:
        passwords = Path(self.env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
        deadline = time.monotonic() + timeout
        while not passwords.is_file():
            assert time.monotonic() < deadline, f"no {passwords}"
            time.sleep(1)
        username, password = next(iter(json.loads(passwords.read_text()).items()))
        status, body = self.request("POST", "/auth/token", {"username": username, "password": password})
        assert status in (200, 201), (status, body)
        self.token = body["access_token"]

    def wait_dag(self, dag_id: str, timeout: float = 120) -> None:
        """Until the DAG is parsed and serialized, then unpause it."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            status, body = self.request("GET", f"/api/v2/dags/{dag_id}")
            if status == 200:
                break
            assert time.monotonic() < deadline, f"DAG {dag_id} not parsed: {status} {body}\n{self.log_tails()}"
            time.sleep(2)
        status, body = self.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        assert status == 200, (status, body)

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> tuple[int, Any]:
        return self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})

    def wait_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        quoted = urllib.parse.quote(run_id, safe="")
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            status, body = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}")
            assert status == 200, (status, body)
            if body["state"] in ("success", "failed"):
                return body["state"]
            assert time.monotonic() < deadline, (f"run {run_id} still {body['state']} after {timeout}s\n"
                                                 f"{self.task_states(dag_id, run_id)}\n{self.log_tails()}")
            time.sleep(3)

    def task_states(self, dag_id: str, run_id: str) -> dict[str, Any]:
        quoted = urllib.parse.quote(run_id, safe="")
        status, body = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances")
        if status != 200:
            return {"error": body}
        return {ti["task_id"]: {"state": ti["state"], "queue": ti.get("queue"), "try": ti.get("try_number"),
                                "hostname": ti.get("hostname")} for ti in body["task_instances"]}

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        quoted = urllib.parse.quote(run_id, safe="")
        path = f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{task_id}/logs/{try_number}"
        status, body = self.request("GET", f"{path}?full_content=true")
        assert status == 200, (status, body)
        content = body.get("content", body) if isinstance(body, dict) else body
        if isinstance(content, list):
            return "\n".join(item.get("event", "") if isinstance(item, dict) else str(item) for item in content)
        return str(content)


class MadeStack(Stack):
    """The Airflow `make airflow` starts in `project` (mlops/orchestration/airflow_ctl.py), on its own port,
    stopped by `make airflow-stop`: the path a user takes, not `airflow standalone`."""

    def __init__(self, project: Path, env: dict[str, str], logs: Path, port: int) -> None:
        super().__init__(project, env, logs)
        self.port = port
        self.leader: int | None = None

    def make(self, target: str, timeout: float) -> subprocess.CompletedProcess[str]:
        # on make's command line: they win over the values the Makefile includes from airflow.env
        overrides = [f"VENV={BIN.parent}", f"AIRFLOW__API__PORT={self.port}",
                     f"AIRFLOW__API__BASE_URL={self.base}"]
        return subprocess.run(["make", "-s", "-C", str(self.project), target, *overrides], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def start_made(self, timeout: float = 240) -> None:
        done = self.make("airflow", timeout)
        assert done.returncode == 0, f"make airflow exited {done.returncode}\n{done.stdout}\n{done.stderr}\n" \
                                     f"{self.log_tails()}"
        self.leader = int((self.project / ".airflow" / "standalone.pid").read_text().split()[0])

    def log_tails(self, chars: int = 3000) -> str:
        log = self.project / ".airflow" / "standalone.log"
        return f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}" if log.is_file() else "(no log)"

    def check_alive(self) -> None:
        assert self.leader is not None and alive(self.leader), f"make airflow's processes ended\n{self.log_tails()}"

    def tree(self) -> list[Any]:
        """Every live process `make airflow` started: the leader's descendants and its process group's members
        (a process its parent left behind is no descendant any more, but stays in the group)."""
        import psutil

        assert self.leader is not None
        found: dict[int, psutil.Process] = {}
        try:
            leader = psutil.Process(self.leader)
            found = {process.pid: process for process in (leader, *leader.children(recursive=True))}
        except psutil.NoSuchProcess:
            pass
        for process in psutil.process_iter():
            try:
                if os.getpgid(process.pid) == self.leader:
                    found.setdefault(process.pid, process)
            except (ProcessLookupError, PermissionError):
                continue
        return [process for process in found.values() if alive(process.pid)]

    def listening(self) -> dict[str, list[str]]:
        """Each listening (TCP LISTEN) socket of the tree, IPv4 and IPv6: 'address:port' by process."""
        import psutil

        sockets: dict[str, list[str]] = {}
        for process in self.tree():
            try:
                connections = process.net_connections(kind="inet")
                name = f"{process.pid} {' '.join(process.cmdline()[:3])}"
            except psutil.NoSuchProcess:
                continue
            bound = [f"{c.laddr.ip}:{c.laddr.port}" for c in connections if c.status == psutil.CONN_LISTEN]
            if bound:
                sockets[name] = bound
        return sockets

    def stop(self) -> None:
        """`make airflow-stop`; whatever is left of the group after it, killed (the test said so already)."""
        if self.leader is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.make("airflow-stop", timeout=90)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.leader, signal.SIGKILL)


LOOPBACK = ("127.0.0.1", "::1")


def beyond_loopback(sockets: dict[str, list[str]]) -> dict[str, list[str]]:
    """The sockets of `sockets` bound to an address other than 127.0.0.1 or ::1 (0.0.0.0 and :: included)."""
    wide = {name: [address for address in addresses if address.rsplit(":", 1)[0] not in LOOPBACK]
            for name, addresses in sockets.items()}
    return {name: addresses for name, addresses in wide.items() if addresses}


def alive(pid: int) -> bool:
    """Running and not a zombie (a zombie still answers kill 0)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"
