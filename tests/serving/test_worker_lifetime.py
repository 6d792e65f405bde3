"""A server worker ends with the process that started it, even when that process is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlops.serving import worker_lifetime
from mlops.serving.worker_lifetime import SERVER_PID_ENV, ParentGone, end_with_parent, tie_worker_to_server

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")

# A "server" that starts a "worker" in a session of its own (as circus does), prints the worker's pid and waits.
SERVER = """
import subprocess, sys
worker = subprocess.Popen([sys.executable, "-c", sys.argv[1]], start_new_session=True, stdout=subprocess.PIPE,
                          text=True)
print(worker.pid, worker.stdout.readline().strip(), flush=True)
worker.wait()
"""
WORKER = """
import time
from mlops.serving.worker_lifetime import end_with_parent
print("tied" if end_with_parent() else "untied", flush=True)
time.sleep(120)
"""
UNTIED_WORKER = "import time; print('untied', flush=True); time.sleep(120)"


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for init to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def kill_server_leaving_worker(worker_code: str) -> tuple[int, str]:
    server = subprocess.Popen([sys.executable, "-c", SERVER, worker_code], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    pid, state = server.stdout.readline().split()
    os.killpg(server.pid, signal.SIGKILL)  # what a killed Airflow task's process group gets
    server.wait(timeout=10)
    return int(pid), state


def wait_gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def test_a_tied_worker_ends_when_its_server_is_killed():
    # given a worker tied to its server, in another session; when the server's process group is SIGKILLed
    pid, state = kill_server_leaving_worker(WORKER)
    # then the worker ends too
    assert state == "tied"
    assert wait_gone(pid), f"worker {pid} outlived its killed server"


def test_an_untied_worker_outlives_its_killed_server():
    # the failure the tie prevents, shown on the same layout (so the test above cannot pass by accident)
    pid, state = kill_server_leaving_worker(UNTIED_WORKER)
    try:
        assert state == "untied"
        assert not wait_gone(pid, 1.0)
    finally:
        os.kill(pid, signal.SIGKILL)


def test_a_worker_whose_server_is_already_gone_refuses_to_start():
    # given an expected parent that is not this process's parent (it ended while the worker was importing)
    with pytest.raises(ParentGone, match="ended before this worker"):
        end_with_parent(signal.SIGTERM, parent=os.getppid() + 1_000_000)
    end_with_parent(0, parent=os.getppid())  # signal 0: no death signal, as before


def test_the_server_records_its_pid_and_a_worker_ties_to_it(monkeypatch):
    monkeypatch.delenv(SERVER_PID_ENV, raising=False)
    # given the service imported in `bentoml serve` (no worker index)
    assert tie_worker_to_server(None) is False
    assert os.environ[SERVER_PID_ENV] == str(os.getpid())
    # when it is imported in a worker whose recorded server is its parent
    calls = []
    monkeypatch.setattr(worker_lifetime, "end_with_parent", lambda parent=None: calls.append(parent) or True)
    monkeypatch.setenv(SERVER_PID_ENV, "4242")
    # then the worker ties itself to that pid
    assert tie_worker_to_server(1) is True and calls == [4242]


# A "promote" that starts a "server" through the module's exec wrapper, prints its pid and waits.
PROMOTE = """
import os, subprocess, sys
server = subprocess.Popen([sys.executable, "-m", "mlops.serving.worker_lifetime", str(os.getpid()), "--",
                           sys.executable, "-c", "import time; print('serving', flush=True); time.sleep(120)"],
                          stdout=subprocess.PIPE, text=True)
print(server.pid, server.stdout.readline().strip(), flush=True)
server.wait()
"""


def test_a_server_started_through_the_wrapper_ends_when_its_starter_alone_is_killed():
    # given a command that started its server through `python -m mlops.serving.worker_lifetime PID -- ...`
    promote = subprocess.Popen([sys.executable, "-c", PROMOTE], stdout=subprocess.PIPE, text=True)
    pid, state = promote.stdout.readline().split()
    assert state == "serving"  # the wrapper exec'd the command: same pid, its output
    # when only that command is SIGKILLed (not its process group)
    os.kill(promote.pid, signal.SIGKILL)
    promote.wait(timeout=10)
    # then the server ends too
    assert wait_gone(int(pid)), f"server {pid} outlived the command that started it"


@pytest.mark.parametrize("argv", [[], ["x", "--", "true"], ["123", "true"], ["123", "--"]])
def test_the_wrapper_names_its_usage(argv):
    with pytest.raises(SystemExit, match="usage: python -m mlops.serving.worker_lifetime PARENT_PID -- COMMAND"):
        worker_lifetime.main(argv)
