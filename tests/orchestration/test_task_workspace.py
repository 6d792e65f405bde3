"""The Workspace protocol: the shared project directory and share-nothing checkouts, chosen once by one factory."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from mlops.orchestration.task_workspace import IsolatedWorkspace, SharedWorkspace, Workspace, workspace_for

ROOT = Path(__file__).resolve().parents[2]


def test_the_mode_chooses_the_workspace(monkeypatch, tmp_path):
    monkeypatch.delenv("MLOPS_WORKSPACE_MODE", raising=False)
    assert isinstance(workspace_for(tmp_path), SharedWorkspace)
    monkeypatch.setenv("MLOPS_WORKSPACE_MODE", "")  # empty: unset, as everywhere
    assert isinstance(workspace_for(tmp_path), SharedWorkspace)
    monkeypatch.setenv("MLOPS_WORKSPACE_MODE", "isolated")
    assert isinstance(workspace_for(tmp_path), IsolatedWorkspace)


def test_both_implement_the_protocol():
    methods = [name for name in vars(Workspace) if not name.startswith("_")]
    assert len(methods) >= 10
    for implementation in (SharedWorkspace, IsolatedWorkspace):
        assert all(callable(getattr(implementation, name, None)) for name in methods), implementation


def test_no_task_module_branches_on_the_mode():
    """The task code asks the protocol: no `isolated()` test is left outside the workspace modules."""
    allowed = {"workspace.py", "task_workspace.py"}
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "mlops").rglob("*.py")
                 if path.name not in allowed and re.search(r"\bisolated\(\)", path.read_text())]
    assert offenders == []


def test_shared_every_task_works_in_the_project(tmp_path):
    space = SharedWorkspace(tmp_path)
    checkout = space.open_stage("run-1", "train")
    assert (checkout.path, checkout.env) == (tmp_path, None)
    assert space.stage_command("train") == ["dvc", "repro", "--single-item", "train"]
    assert space.open_task("run-1", "promote", ["models/package"]).path == tmp_path
    assert space.start_run("run-1", lambda path: path) == tmp_path
    assert space.write_run_files("run-1", "record", lambda path: (path / "r.txt").write_text("x")) == 1
    assert space.read_run_file("run-1", "r.txt") == ("x", "r.txt")
    assert space.read_run_file("run-1", "missing.json") == (None, "missing.json")
    space.publish_stage(checkout, "train"), space.publish(checkout, ["a"], "m"), space.finish(checkout)
    assert (tmp_path / "r.txt").read_text() == "x"  # nothing published, nothing removed


def test_shared_pushes_the_run_only_when_asked(tmp_path, monkeypatch):
    calls = []

    def run(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, "pushed\n", "")

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.delenv("MLOPS_DVC_PUSH", raising=False)
    SharedWorkspace(tmp_path).publish_run()
    assert calls == []
    monkeypatch.setenv("MLOPS_DVC_PUSH", "1")
    SharedWorkspace(tmp_path).publish_run()
    assert calls == [["dvc", "push"]]


def test_shared_a_failed_push_fails_the_task(tmp_path, monkeypatch):
    from airflow.sdk.exceptions import AirflowException

    failed = subprocess.CompletedProcess(["dvc", "push"], 1, "", "no remote")
    monkeypatch.setattr(subprocess, "run", lambda command, **_: failed)
    monkeypatch.setenv("MLOPS_DVC_PUSH", "1")
    with pytest.raises(AirflowException, match="dvc push failed \\(exit 1\\): no remote"):
        SharedWorkspace(tmp_path).publish_run()


def test_isolated_keeps_nothing_to_restore_or_push(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("no command runs"))
    space = IsolatedWorkspace(tmp_path)
    space.restore_params()
    space.publish_run()
    assert "the run's params live on its git branch only" in capsys.readouterr().out


def test_isolated_needs_the_remotes_and_names_them(tmp_path, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    for name in ("MLOPS_GIT_REMOTE", "MLOPS_DVC_REMOTE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(AirflowFailException, match="MLOPS_GIT_REMOTE and MLOPS_DVC_REMOTE"):
        IsolatedWorkspace(tmp_path).open_stage("run-1", "train")


def test_isolated_a_failure_summary_without_remotes_is_written_on_the_worker(tmp_path, monkeypatch, capsys):
    for name in ("MLOPS_GIT_REMOTE", "MLOPS_DVC_REMOTE"):
        monkeypatch.delenv(name, raising=False)
    written = IsolatedWorkspace(tmp_path).write_failure("run-1", lambda path: path)
    assert written == tmp_path
    assert "not committed to the run's branch" in capsys.readouterr().out
