"""Start and stop a local Airflow for `make airflow`: what `airflow standalone` runs, bound to loopback only.

`airflow standalone` starts the scheduler and the triggerer each with a task
log server on ports 8793 and 8794 that listens on every interface (Airflow
3.3 binds it to "" and has no setting for its host), whatever airflow.env says
for the API server. On one machine nobody needs those servers: the API server
reads the task logs from their files. So the four components are started here
as standalone would start them (after `airflow db migrate`), the scheduler and
the triggerer with `--skip-serve-logs`, and the API server on
AIRFLOW__API__HOST (127.0.0.1). They share one session, started by a shell
that waits for them all, so that stop() signals the whole process group and
waits until every member of it is gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HOME = Path(os.environ.get("AIRFLOW_HOME", Path.cwd() / ".airflow"))
PIDFILE = HOME / "standalone.pid"
LOG = HOME / "standalone.log"
PASSWORDS = HOME / "simple_auth_manager_passwords.json.generated"


def base_url() -> str:
    return os.environ.get("AIRFLOW__API__BASE_URL", "http://127.0.0.1:8080")


def start_time(pid: int) -> str | None:
    """When the process started, in clock ticks since boot (Linux /proc); None where /proc does not say."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def running_pid() -> int | None:
    """The pid of the standalone this module started, if it still runs.

    The pid file holds the pid and its start time: after a reboot or a crash the pid may belong to another
    process by now, and stop() would signal that process's whole group. A start time that differs means stale.
    """
    try:
        pid_text, *started = PIDFILE.read_text().split()
        pid = int(pid_text)
        if pid <= 0:  # kill(0) / kill(-1) would "find" our own group / every process, and stop() would signal them
            return None
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    now = start_time(pid)
    if started and now is not None and started[0] != now:
        return None
    return pid


def wait_healthy(timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base_url()}/api/v2/monitor/health", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(1)
    return False


# What `airflow standalone` runs, without the task log servers that would listen on every interface
COMPONENTS = (("scheduler", "--skip-serve-logs"), ("dag-processor",), ("triggerer", "--skip-serve-logs"),
              ("api-server",))


def components_script(airflow: str) -> str:
    """A shell line: the database migrated, then every component in the background, waited for."""
    import shlex

    run = [" ".join(shlex.quote(word) for word in (airflow, *component)) for component in COMPONENTS]
    return f"{shlex.quote(airflow)} db migrate && {{ {' & '.join(run)} & wait; }}"


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group `pgid`, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def start() -> int:
    if running_pid():
        print(f"Airflow is already running: {base_url()}")
        return 0
    HOME.mkdir(parents=True, exist_ok=True)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    with open(LOG, "ab") as log:
        process = subprocess.Popen(["sh", "-c", components_script(os.path.join(bin_dir, "airflow"))], stdout=log,
                                   stderr=subprocess.STDOUT, env=env, start_new_session=True)
    PIDFILE.write_text(f"{process.pid} {start_time(process.pid) or ''}".strip() + "\n")
    if not wait_healthy(120):
        print(f"Airflow did not become healthy in 120 s; see {LOG}", file=sys.stderr)
        return 1
    print(f"Airflow UI: {base_url()}  (DAG: lifecycle)")
    print(f"Log in as `admin`; the password is in {PASSWORDS}")
    print("Stop it with: make airflow-stop")
    return 0


def stop() -> int:
    pid = running_pid()
    if pid is None:
        print("Airflow is not running")
        return 0
    os.killpg(pid, signal.SIGTERM)
    # every member of the group, not just its leader: the API server outlives the shell by seconds
    for _ in range(60):
        if not group_members(pid):
            break
        time.sleep(0.5)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        for _ in range(20):
            if not group_members(pid):
                break
            time.sleep(0.5)
    PIDFILE.unlink(missing_ok=True)
    print("Airflow stopped")
    return 0


if __name__ == "__main__":
    sys.exit({"start": start, "stop": stop}[sys.argv[1]]())
