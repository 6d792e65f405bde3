"""`make airflow` / `make airflow-stop` without Airflow: the pid file, the command and environment that start
would run, and stopping a process group. Airflow itself is never started here."""

import os
import signal
import subprocess
import sys
import threading
import time
import types
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mlops.orchestration import airflow_ctl


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An Airflow home of the test's own: the module's paths point into it."""
    home = tmp_path / "airflow"
    monkeypatch.setattr(airflow_ctl, "HOME", home)
    monkeypatch.setattr(airflow_ctl, "PIDFILE", home / "standalone.pid")
    monkeypatch.setattr(airflow_ctl, "LOG", home / "standalone.log")
    return home


def alive(pid):
    """Running and not a zombie (a zombie still answers kill 0)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def gone(pid, timeout=5.0):
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def spawn(args):
    """A process in its own session, as start() makes Airflow, reaped in the background as init would."""
    process = subprocess.Popen(args, start_new_session=True, stdout=subprocess.PIPE, text=True)
    threading.Thread(target=process.wait, daemon=True).start()
    return process


def dead_pid():
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_base_url_default_and_from_the_environment(monkeypatch):
    monkeypatch.delenv("AIRFLOW__API__BASE_URL", raising=False)
    assert airflow_ctl.base_url() == "http://127.0.0.1:8080"
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://127.0.0.1:9999")
    assert airflow_ctl.base_url() == "http://127.0.0.1:9999"


def test_home_follows_airflow_home(tmp_path):
    """The paths are fixed at import from $AIRFLOW_HOME (the Makefile sets it), else ./.airflow."""
    probe = "from mlops.orchestration import airflow_ctl as c; print(c.PIDFILE); print(c.PASSWORDS)"
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "h")}
    lines = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert lines == [str(tmp_path / "h" / "standalone.pid"),
                     str(tmp_path / "h" / "simple_auth_manager_passwords.json.generated")]
    env.pop("AIRFLOW_HOME")
    lines = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert lines[0] == str(tmp_path / ".airflow" / "standalone.pid")


@pytest.mark.parametrize("content", [None, "", "not a pid", "-", "0", "-1"])
def test_no_running_pid_without_a_valid_pid_file(home, content):
    if content is not None:
        home.mkdir()
        airflow_ctl.PIDFILE.write_text(content)
    assert airflow_ctl.running_pid() is None


def test_pid_of_a_finished_process_is_not_running(home):
    home.mkdir()
    airflow_ctl.PIDFILE.write_text(str(dead_pid()))
    assert airflow_ctl.running_pid() is None


def test_pid_of_a_live_process_is_running(home):
    home.mkdir()
    airflow_ctl.PIDFILE.write_text(f"{os.getpid()}\n")
    assert airflow_ctl.running_pid() == os.getpid()


def test_stop_without_a_pid_file_says_so(home, capsys):
    assert airflow_ctl.stop() == 0
    assert capsys.readouterr().out == "Airflow is not running\n"
    assert not home.exists()


def test_start_when_running_starts_nothing(home, monkeypatch, capsys):
    home.mkdir()
    airflow_ctl.PIDFILE.write_text(str(os.getpid()))
    monkeypatch.setattr(airflow_ctl.subprocess, "Popen", lambda *a, **k: pytest.fail("started a second Airflow"))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://127.0.0.1:8123")
    assert airflow_ctl.start() == 0
    assert capsys.readouterr().out == "Airflow is already running: http://127.0.0.1:8123\n"


class FakePopen:
    """Records what start() would run instead of running it."""

    started = []

    def __init__(self, args, **kwargs):
        self.args, self.kwargs, self.pid = args, kwargs, 424242
        FakePopen.started.append(self)


@pytest.fixture
def fake_start(home, monkeypatch):
    FakePopen.started = []
    monkeypatch.setattr(airflow_ctl.subprocess, "Popen", FakePopen)
    monkeypatch.setenv("PATH", "/usr/bin")
    return FakePopen.started


def test_start_runs_the_components_in_one_session_with_the_venv_on_path(fake_start, home, monkeypatch, capsys):
    monkeypatch.setattr(airflow_ctl, "wait_healthy", lambda timeout: True)
    assert airflow_ctl.start() == 0
    (started,) = fake_start
    bin_dir = str(Path(sys.executable).parent)
    airflow = os.path.join(bin_dir, "airflow")
    assert started.args[:2] == ["sh", "-c"]
    script = started.args[2]
    assert script.startswith(f"{airflow} db migrate && ")  # what standalone does first
    for component in ("scheduler --skip-serve-logs", "dag-processor", "triggerer --skip-serve-logs", "api-server"):
        assert f"{airflow} {component} &" in script, component
    assert script.rstrip().endswith("wait; }")
    assert started.kwargs["start_new_session"] is True  # so stop() can signal the whole group
    assert started.kwargs["env"]["PATH"] == f"{bin_dir}{os.pathsep}/usr/bin"
    assert started.kwargs["stderr"] == subprocess.STDOUT
    assert airflow_ctl.PIDFILE.read_text().split()[0] == "424242"  # and its start time, where /proc has it
    assert airflow_ctl.LOG.is_file()
    out = capsys.readouterr().out
    assert "Airflow UI: " in out and str(airflow_ctl.PASSWORDS) in out


def test_nothing_listens_beyond_loopback():
    """The API server binds airflow.env's host; the task log servers, which Airflow binds to every interface with
    no setting for it, are not started (one machine: the API server reads the log files)."""
    from tests.helpers import read_dotenv

    settings = read_dotenv(Path(__file__).resolve().parents[2] / "airflow.env")
    assert settings["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert settings["AIRFLOW__API__BASE_URL"].startswith("http://127.0.0.1:")
    assert "0.0.0.0" not in " ".join(settings.values())
    serving = {component[0]: component[1:] for component in airflow_ctl.COMPONENTS}
    assert serving["scheduler"] == ("--skip-serve-logs",) and serving["triggerer"] == ("--skip-serve-logs",)


def test_stop_waits_for_every_member_of_the_group(home, capsys):
    # given a group whose leader dies at once on SIGTERM while a member takes a while (as the API server does)
    slow = ("import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: (time.sleep(1.5), sys.exit(0))); "
            "print('ready', flush=True); time.sleep(60)")
    process = spawn(["sh", "-c", f"{sys.executable} -c \"{slow}\" & echo $!; wait"])
    member = int(process.stdout.readline())
    assert process.stdout.readline() == "ready\n"
    home.mkdir()
    airflow_ctl.PIDFILE.write_text(str(process.pid))
    # when stopped, then "stopped" is said only once the member is gone too
    assert airflow_ctl.stop() == 0
    assert not alive(member)
    assert capsys.readouterr().out == "Airflow stopped\n"


def test_start_that_never_gets_healthy_fails_and_points_at_the_log(fake_start, monkeypatch, capsys):
    monkeypatch.setattr(airflow_ctl, "wait_healthy", lambda timeout: False)
    assert airflow_ctl.start() == 1
    assert f"did not become healthy in 120 s; see {airflow_ctl.LOG}" in capsys.readouterr().err


def test_wait_healthy_polls_the_health_endpoint_until_200(monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://127.0.0.1:8123")
    asked = []

    class Answer:
        status = 200

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def urlopen(url, timeout):
        asked.append(url)
        if len(asked) < 3:
            raise urllib.error.URLError("connection refused")
        return Answer()

    monkeypatch.setattr(airflow_ctl.urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(airflow_ctl, "time", types.SimpleNamespace(sleep=lambda s: None,
                                                                   monotonic=airflow_ctl.time.monotonic))
    assert airflow_ctl.wait_healthy(30) is True
    assert asked == ["http://127.0.0.1:8123/api/v2/monitor/health"] * 3


def test_wait_healthy_gives_up_after_the_timeout(monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("polled after the deadline"))
    assert airflow_ctl.wait_healthy(0) is False


def test_stop_terminates_the_process_group_and_removes_the_pid_file(home, capsys):
    process = spawn(["sh", "-c", "sleep 60 & echo $!; wait"])
    child = int(process.stdout.readline())
    home.mkdir()
    airflow_ctl.PIDFILE.write_text(str(process.pid))
    assert airflow_ctl.stop() == 0
    assert capsys.readouterr().out == "Airflow stopped\n"
    assert not airflow_ctl.PIDFILE.exists()
    process.wait(timeout=5)
    assert process.returncode == -signal.SIGTERM
    assert gone(child)  # the group's other members went too


def test_stop_kills_a_group_that_ignores_sigterm(home, monkeypatch):
    process = spawn([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                                           "print('ready', flush=True); time.sleep(60)"])
    assert process.stdout.readline() == "ready\n"
    home.mkdir()
    airflow_ctl.PIDFILE.write_text(str(process.pid))
    monkeypatch.setattr(airflow_ctl, "time", types.SimpleNamespace(sleep=lambda s: None))  # skip the 30 s wait
    assert airflow_ctl.stop() == 0
    process.wait(timeout=5)
    assert process.returncode == -signal.SIGKILL
    assert not airflow_ctl.PIDFILE.exists()


def test_a_pid_file_whose_pid_now_belongs_to_another_process_is_stale(home, capsys):
    # given a pid file naming a live process, but with another start time (the pid was reused since)
    process = spawn(["sleep", "60"])
    home.mkdir()
    real = airflow_ctl.start_time(process.pid)
    airflow_ctl.PIDFILE.write_text(f"{process.pid} {int(real) - 1}\n")
    # then it is not running, and stop signals nothing
    assert airflow_ctl.running_pid() is None
    assert airflow_ctl.stop() == 0 and capsys.readouterr().out == "Airflow is not running\n"
    assert alive(process.pid)
    # and with its true start time it is ours
    airflow_ctl.PIDFILE.write_text(f"{process.pid} {real}\n")
    assert airflow_ctl.running_pid() == process.pid
    process.kill()
