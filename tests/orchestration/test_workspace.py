"""Share-nothing workers (mlops/orchestration/workspace.py): every task from the remotes, in a directory of its own.

The lifecycle test runs the tasks of one run alternately on two "workers",
two directories that never see each other, with a bare git repository as the
git remote and a local directory as the DVC remote: the same hand-over as two
machines, without Airflow.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from mlops.core.errors import MlopsError
from mlops.orchestration import workspace
from mlops.orchestration.workspace import Remotes, RemoteUnreachable
from tests.helpers import copy_project, free_port, project_env, run_cmd, tiny_params

RUN_ID = "manual__2026-12-01T10:00:00+00:00"


def test_the_mode_is_shared_unless_set(monkeypatch):
    monkeypatch.delenv(workspace.MODE_ENV, raising=False)
    assert workspace.mode() == "shared" and not workspace.isolated()
    monkeypatch.setenv(workspace.MODE_ENV, "isolated")
    assert workspace.isolated()
    monkeypatch.setenv(workspace.MODE_ENV, "islated")
    with pytest.raises(MlopsError, match="MLOPS_WORKSPACE_MODE='islated': expected one of shared, isolated"):
        workspace.mode()


def test_isolated_mode_names_the_missing_remotes():
    with pytest.raises(MlopsError, match="needs MLOPS_GIT_REMOTE and MLOPS_DVC_REMOTE"):
        Remotes.from_env({})
    remotes = Remotes.from_env({"MLOPS_GIT_REMOTE": "/g.git", "MLOPS_DVC_REMOTE": "s3://b/x",
                                "DVC_S3_ENDPOINT": "http://127.0.0.1:9000", "MLOPS_WORKDIR": "/w"})
    assert (remotes.git, remotes.dvc, remotes.endpoint, str(remotes.root)) == (
        "/g.git", "s3://b/x", "http://127.0.0.1:9000", "/w")


def test_a_remote_that_cannot_be_reached_fails_the_task_in_one_line_naming_it(tmp_path):
    port = free_port()  # nothing listens there
    remotes = Remotes(str(tmp_path / "git.git"), "s3://mlops-bucket/dvc", f"http://127.0.0.1:{port}",
                      root=tmp_path / "work")
    with pytest.raises(RemoteUnreachable) as raised:
        workspace.prepare_stage(remotes, RUN_ID, "train")
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"DVC remote s3://mlops-bucket/dvc (endpoint http://127.0.0.1:{port}) unreachable: "
                              f"cannot connect to 127.0.0.1:{port}")
    assert raised.value.transient  # a network failure: the task's retries are worth it
    assert not (tmp_path / "work").exists()  # nothing cloned, nothing pulled: it failed before any work

    missing = Remotes(str(tmp_path / "git.git"), str(tmp_path / "not-mounted"), root=tmp_path / "work")
    with pytest.raises(RemoteUnreachable, match=r"^DVC remote .*not-mounted unreachable: no such directory") as raised:
        workspace.prepare_stage(missing, RUN_ID, "train")
    assert not raised.value.transient  # a setting (or a mount) to fix: retrying cannot help


def test_a_stage_task_that_cannot_reach_the_remote_fails_in_one_line(tmp_path, monkeypatch, capsys):
    """The Airflow task: one line naming the remote; retried for a network failure, failed at once otherwise."""
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from mlops.orchestration.airflow_tasks import StageOperator

    operator = StageOperator(task_id="train", stage="train", project=str(tmp_path), env={})
    monkeypatch.setenv(workspace.MODE_ENV, "isolated")
    monkeypatch.delenv("MLOPS_GIT_REMOTE", raising=False)
    monkeypatch.delenv("MLOPS_DVC_REMOTE", raising=False)
    with pytest.raises(AirflowFailException, match="needs MLOPS_GIT_REMOTE and MLOPS_DVC_REMOTE"):
        operator.execute({"run_id": RUN_ID})

    port = free_port()
    monkeypatch.setenv("MLOPS_GIT_REMOTE", str(tmp_path / "git.git"))
    monkeypatch.setenv("MLOPS_DVC_REMOTE", "s3://mlops-bucket/dvc")
    monkeypatch.setenv("DVC_S3_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLOPS_WORKDIR", str(tmp_path / "work"))
    capsys.readouterr()
    with pytest.raises(AirflowException) as raised:
        operator.execute({"run_id": RUN_ID})
    assert not isinstance(raised.value, AirflowFailException)  # retried: the network may come back
    line = f"error: DVC remote s3://mlops-bucket/dvc (endpoint http://127.0.0.1:{port}) unreachable: "
    assert str(raised.value).startswith(line) and "\n" not in str(raised.value)
    printed = capsys.readouterr()
    assert line in printed.out + printed.err, printed

    monkeypatch.setenv("MLOPS_DVC_REMOTE", str(tmp_path / "not-mounted"))
    with pytest.raises(AirflowFailException, match=r"^error: DVC remote .*not-mounted unreachable: no such directory"):
        operator.execute({"run_id": RUN_ID})


def test_the_pod_command_runs_one_isolated_stage_and_says_why_it_failed(tmp_path, monkeypatch, capsys):
    """`python -m mlops.orchestration.workspace train` (docker/k8s/train-pod-template.yaml's command)."""
    monkeypatch.delenv("MLOPS_RUN_ID", raising=False)
    with pytest.raises(SystemExit):
        workspace.main(["train"])
    assert "no run id" in capsys.readouterr().err
    monkeypatch.setenv("MLOPS_RUN_ID", RUN_ID)
    monkeypatch.setenv("MLOPS_GIT_REMOTE", str(tmp_path / "git.git"))
    monkeypatch.setenv("MLOPS_DVC_REMOTE", str(tmp_path / "not-mounted"))
    assert workspace.main(["train"]) == 2  # a setting to fix
    assert capsys.readouterr().out.strip().startswith("error: DVC remote ")


def files_under(root):
    """Every file under `root` but git's and DVC's own bookkeeping, relative."""
    skip = (".git/", ".dvc/cache/", ".dvc/tmp/")
    return sorted(str(path.relative_to(root)) for path in root.rglob("*")
                  if path.is_file() and not str(path.relative_to(root)).split("/", 1)[-1].startswith(skip))


def mentions(root, text):
    """Files under `root` whose bytes contain `text`."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000 and text.encode() in path.read_bytes():
            found.append(str(path.relative_to(root)))
    return found


@pytest.mark.slow
@pytest.mark.share_nothing
def test_two_workers_that_share_only_the_remotes_run_the_lifecycle(tmp_path, repo_params, tiny_model_dir,
                                                                     monkeypatch):
    from mlops.core.pipeline import load_stages, stage_path
    from mlops.core.registry import PROMOTION_RECORD
    from mlops.orchestration.runs import configure, run_dir

    project = copy_project(tmp_path / "project", tiny_params(repo_params, tiny_model_dir))
    git_remote, dvc_remote = tmp_path / "git-remote.git", tmp_path / "dvc-remote"
    subprocess.run(["git", "clone", "-q", "--bare", str(project), str(git_remote)], check=True)
    dvc_remote.mkdir()
    for key, value in project_env(project).items():
        monkeypatch.setenv(key, value)
    worker_a = Remotes(str(git_remote), str(dvc_remote), root=tmp_path / "worker-a", keep=True)
    worker_b = Remotes(str(git_remote), str(dvc_remote), root=tmp_path / "worker-b", keep=True)

    workspace.start_run(worker_a, RUN_ID, lambda path: configure(path, RUN_ID, {"epochs": 2, "min_accuracy": 0.0,
                                                                              "min_macro_f1": 0.0}))
    ran = {}
    stages = load_stages(project)
    for number, stage in enumerate(stages):
        worker = (worker_b, worker_a)[number % 2]
        ran[stage.name] = workspace.run_stage(worker, RUN_ID, stage.name).path
    scored_test = str(stage_path(project, "gate", "scored-test"))
    ran["promote"] = workspace.run_task(worker_a, RUN_ID, "promote", ["mlops", "promote"], registry=True,
                                        inputs=[str(stage_path(project, "package", "out")), scored_test],
                                        git_files=[PROMOTION_RECORD]).path
    ran["record"] = workspace.run_task(
        worker_b, RUN_ID, "record", ["python", "-c", f"from mlops.orchestration.runs import record; "
                                     f"record('.', {RUN_ID!r})"],
        git_files=[str(run_dir(project, RUN_ID).relative_to(project))]).path

    # The run's branch holds the hand-over: a fresh clone of it, fed by the DVC remote alone, is up to date.
    check = tmp_path / "check"
    branch = workspace.run_branch(RUN_ID)
    subprocess.run(["git", "clone", "-q", "--branch", branch, str(git_remote), str(check)], check=True)
    run_cmd(["dvc", "remote", "add", "--local", "-d", "storage", str(dvc_remote)], cwd=check)
    (check / "data" / "feedback").mkdir(parents=True, exist_ok=True)
    run_cmd(["dvc", "pull", "-q"], cwd=check)  # every stage's cached outputs come from the remote
    status = run_cmd(["dvc", "status", "--json"], cwd=check)
    assert json.loads(status.stdout) == {}, status.stdout
    decision = json.loads((check / stage_path(check, "gate", "out")).read_text())
    promotion = json.loads((check / PROMOTION_RECORD).read_text())
    assert decision["accepted"] and promotion["promoted"], (decision, promotion)
    summary = json.loads((run_dir(check, RUN_ID) / "run.json").read_text())
    assert summary["params"]["train"]["epochs"] == 2  # configure's override reached the training worker
    assert summary["results"]["metrics/train.json"]["epochs"] == 2
    log = subprocess.run(["git", "log", "--format=%s", branch], cwd=check, capture_output=True, text=True).stdout
    assert [f"stage {stage.name} of run" in log for stage in stages] == [True] * len(stages)

    # The registry travelled too: its branch points at a store whose champion is the promoted model.
    registry = tmp_path / "registry"
    subprocess.run(["git", "clone", "-q", "--branch", workspace.REGISTRY_BRANCH, str(git_remote), str(registry)],
                   check=True)
    assert sorted(os.listdir(registry)) == [".bentoml.dvc", ".git"]

    listing = {name: files_under(root) for name, root in (("a", worker_a.root), ("b", worker_b.root))}
    print(json.dumps(listing, indent=1))
    for task, path in ran.items():
        other = worker_b.root if path.is_relative_to(worker_a.root) else worker_a.root
        assert not mentions(path, str(other)), (task, mentions(path, str(other)))
        assert not mentions(path, str(project)), (task, mentions(path, str(project)))
    # each worker holds its own tasks' directories only (configure ran on worker A)
    for worker, extra in ((worker_a, ["configure"]), (worker_b, [])):
        assert sorted(os.listdir(next(worker.root.iterdir()))) == sorted(
            [*extra, *(task for task, path in ran.items() if path.is_relative_to(worker.root))])


@pytest.mark.slow  # git and dvc commands in a workspace
def test_a_failed_tasks_summary_is_committed_beside_the_runs_record(tmp_path, monkeypatch, capsys):
    """Isolated mode: failure.md goes onto the run's branch, not onto the disk of the worker that failed; with
    the remote gone, the callback still leaves it on the worker and does not raise."""
    from types import SimpleNamespace

    from mlops.orchestration.airflow_tasks import on_failure
    from mlops.orchestration.runs import configure, run_dir

    # given a run started on its branch, and a task of it that failed on an isolated worker
    project = copy_project(tmp_path / "project")
    git_remote, dvc_remote = tmp_path / "git-remote.git", tmp_path / "dvc-remote"
    subprocess.run(["git", "clone", "-q", "--bare", str(project), str(git_remote)], check=True)
    dvc_remote.mkdir()
    for key, value in project_env(project).items():
        monkeypatch.setenv(key, value)
    remotes = Remotes(str(git_remote), str(dvc_remote), root=tmp_path / "configure-worker")
    workspace.start_run(remotes, RUN_ID, lambda path: configure(path, RUN_ID, {}))
    for key, value in {workspace.MODE_ENV: "isolated", "MLOPS_GIT_REMOTE": str(git_remote),
                       "MLOPS_DVC_REMOTE": str(dvc_remote), "MLOPS_WORKDIR": str(tmp_path / "worker")}.items():
        monkeypatch.setenv(key, value)
    worker_project = tmp_path / "worker-project"
    context = {"run_id": RUN_ID, "ti": SimpleNamespace(task_id="train", try_number=2),
               "task": SimpleNamespace(retries=1, project=str(worker_project)),
               "exception": RuntimeError("error: train: CUDA out of memory")}
    # when its failure callback runs
    on_failure(context)
    # then the summary is on the run's branch, and nothing was left on the worker
    failure = str(run_dir(tmp_path, RUN_ID).relative_to(tmp_path) / "failure.md")
    text = workspace.read_run_file(remotes, RUN_ID, failure)
    assert text and "`train`" in text and "CUDA out of memory" in text
    assert not worker_project.exists()
    # and with the git remote gone, the summary stays on the worker, and the callback does not fail
    monkeypatch.setenv("MLOPS_GIT_REMOTE", str(tmp_path / "gone.git"))
    on_failure(context)
    assert "not committed to the run's branch" in capsys.readouterr().out
    assert "CUDA out of memory" in (worker_project / failure).read_text()


def test_a_git_remotes_token_never_reaches_the_log_the_failure_summary_or_the_alert(tmp_path, monkeypatch, capsys):
    """Isolated mode with MLOPS_GIT_REMOTE=https://user:token@host/...: configure's clone fails, and neither its
    error, nor what it printed, nor failure.md, nor the alert's payload holds the token."""
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowFailException

    from mlops.orchestration.airflow_tasks import configure, on_failure
    from mlops.orchestration.alerts import WebhookNotifier
    from mlops.orchestration.runs import run_dir
    from tests.helpers import webhook_receiver

    # given isolated workers whose git remote URL carries a token, and that remote down
    token = "ghp_t0kenThatMustNotLeak"
    remote = f"https://mlops-bot:{token}@127.0.0.1:{free_port()}/org/project.git"
    (tmp_path / "dvc-remote").mkdir()
    isolated = {workspace.MODE_ENV: "isolated", "MLOPS_GIT_REMOTE": remote,
                "MLOPS_DVC_REMOTE": str(tmp_path / "dvc-remote"), "MLOPS_WORKDIR": str(tmp_path / "work")}
    for key, value in isolated.items():
        monkeypatch.setenv(key, value)
    worker_project = tmp_path / "worker-project"
    with webhook_receiver() as (url, received):
        monkeypatch.setenv("AIRFLOW_CONN_MLOPS_ALERTS", url)
        # when configure fails on the clone, and the failure callbacks run
        with pytest.raises(AirflowFailException) as raised:
            configure(str(worker_project), {}, SimpleNamespace(conf={}), RUN_ID)
        context = {"run_id": RUN_ID, "exception": raised.value,
                   "ti": SimpleNamespace(task_id="configure", dag_id="lifecycle", run_id=RUN_ID, try_number=1),
                   "task": SimpleNamespace(retries=0, project=str(worker_project))}
        on_failure(context)
        WebhookNotifier("task_failed").notify(context)
    # then the error names the remote without its credentials
    error = str(raised.value)
    assert error.startswith("error: git remote https://***@127.0.0.1:") and "cannot clone" in error, error
    printed = capsys.readouterr()
    failure = (run_dir(worker_project, RUN_ID) / "failure.md").read_text()
    assert "https://***@127.0.0.1:" in failure and "`configure`" in failure
    assert len(received) == 1 and "https://***@127.0.0.1:" in received[0]["body"]["error"]
    for text in (error, printed.out, printed.err, failure, json.dumps(received)):
        assert token not in text and "mlops-bot" not in text
