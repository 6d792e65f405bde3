"""Share-nothing workers: each lifecycle task in a working directory of its own, fed only by the remotes.

MLOPS_WORKSPACE_MODE selects how tasks find their files:

- `shared` (the default): every task runs in the one project directory, as
  `make run` does on one machine; nothing here is used.
- `isolated`: a task may run on a machine that has never seen the run. Three
  things travel, and nothing else is shared:

  * the run's revision, a git branch `runs/<safe run id>` in the git remote
    MLOPS_GIT_REMOTE (any URL `git clone` takes; the workers push to it).
    `configure` starts it from MLOPS_GIT_BASE (default: the remote's HEAD) with
    the run's params and record. Every later task clones the branch's tip into
    a fresh directory, and commits what it changed on top: dvc.lock (its
    stage's entry: the hashes of what it read and wrote) and its `cache: false`
    outputs (metrics, the gate decision, ...), then pushes, fast-forward only.
    That commit is the hand-over to the next task. Why a git branch rather than
    XCom or a lock object: dvc.lock already is a git file, `git log runs/<id>`
    shows the run task by task, and a push is atomic, so a task killed before
    its push leaves the branch as it was and its retry starts from the same
    state (the same inputs, hence the same result).
  * the data and models, in the DVC remote MLOPS_DVC_REMOTE (DVC_S3_ENDPOINT
    for an S3-compatible store; credentials from the environment). A task pulls
    exactly the deps of its stage that the checkout lacks (the outputs of
    earlier stages, by the hashes in the run's dvc.lock), runs
    `dvc repro --single-item --pull <stage>` (`--pull`: an unchanged stage
    fetches its outputs instead of running again), and pushes its outputs.
  * the model registry (the BentoML home: store and registry.json), a
    DVC-tracked directory whose pointer is the only file on the branch
    `mlops/registry`. Tasks whose stage imports mlops/core/registry.py pull it,
    and push a new pointer when they changed it (package, promote); the push
    is fast-forward only, so two writers cannot silently overwrite each other.

A remote's URL may carry credentials (`https://user:token@host/repo.git`):
every message that names a remote, git's and DVC's errors and the output
printed here pass through mlops.core.redact first.

Work directories lie under MLOPS_WORKDIR (default: <tmp>/mlops-work), one per
run and task, emptied when a task (or its retry) starts and removed after it
succeeds unless MLOPS_KEEP_WORKDIRS=1.

Only the standard library and PyYAML-based project modules are imported at
module level: the DAG file imports this module, and parsing it must stay fast.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from mlops.core.environment import RUN_ID_ENV, TRAFFIC_DIR_ENV, WORKSPACE_MODE_ENV, environment, project_defaults
from mlops.core.errors import MlopsError
from mlops.core.pipeline import inside, load_stages
from mlops.core.redact import redact
from mlops.core.settings import load_settings
from mlops.orchestration.remotes import GIT, Remotes, RemoteUnreachable, check_dvc_remote, last_line, run_dvc, run_git
from mlops.orchestration.runs import run_dir, safe_name

MODE_ENV = WORKSPACE_MODE_ENV
MODES = ("shared", "isolated")
REGISTRY_BRANCH = "mlops/registry"
REMOTE_NAME = "storage"
REGISTRY_MODULE = "mlops/core/registry.py"  # a stage that imports it reads (and may write) the registry
def mode() -> str:
    return environment().workspace_mode


def isolated() -> bool:
    return mode() == "isolated"


def run_branch(run_id: str) -> str:

    return f"runs/{safe_name(run_id)}"


@dataclass
class Workspace:
    """One task's own directory: a clone of the run's branch, set up for the DVC remote."""

    path: Path
    run_id: str
    task: str
    remotes: Remotes
    registry_pointer: str | None = None  # the registry's .dvc text as pulled; None: no registry pulled
    registry_parent: str | None = None  # the registry branch's commit it came from

    @property
    def env(self) -> dict[str, str]:
        """What this task's commands add to the environment: tool state inside this directory only."""

        # PYTHONPATH: the stage runs the code of the run's revision (what dvc.lock hashes), not the worker's copy
        python_path = os.pathsep.join(filter(None, [str(self.path), os.environ.get("PYTHONPATH")]))
        return {**project_defaults(self.path), TRAFFIC_DIR_ENV: str(self.path / "logs" / "traffic"),
                "PYTHONPATH": python_path}

    @property
    def registry_home(self) -> Path:
        return Path(self.env["BENTOML_HOME"])


def checkout(remotes: Remotes, run_id: str, task: str, new_run: bool = False) -> Workspace:
    """A fresh directory for `task` holding the run's branch (or, for `new_run`, the base revision)."""

    path = remotes.root / safe_name(run_id) / task
    if path.exists():
        shutil.rmtree(path)  # a retry starts from the remotes, never from what a killed attempt left
    path.parent.mkdir(parents=True, exist_ok=True)
    branch = run_branch(run_id)
    revision = remotes.base if new_run else branch
    args = ["clone", "-q", "--single-branch", *(["--branch", revision] if revision else []), remotes.git, str(path)]
    result = run_git(args, path.parent, remotes.git, check=False)
    if result.returncode != 0:
        hint = " (did `configure` run with MLOPS_WORKSPACE_MODE=isolated?)" if not new_run else ""
        raise RemoteUnreachable(f"git remote {remotes.git}: cannot clone {revision or 'HEAD'}{hint}: "
                                f"{last_line(result.stderr)}", transient=not new_run and "not found" not in
                                result.stderr)
    if new_run:
        run_git(["checkout", "-q", "-B", branch], path, remotes.git)
    run_dvc(["remote", "add", "--local", "--force", "--default", REMOTE_NAME, remotes.dvc], path, remotes)
    if remotes.endpoint:
        run_dvc(["remote", "modify", "--local", REMOTE_NAME, "endpointurl", remotes.endpoint], path, remotes)
    return Workspace(path, run_id, task, remotes)


def produced_by_stages(path: Path, dep: str) -> bool:

    return any(inside(dep, out) for stage in load_stages(path) for out in stage.outs)


def pull_inputs(workspace: Workspace, inputs: Iterable[str]) -> list[str]:
    """Pull the inputs the checkout lacks: outputs of earlier stages, or DVC-tracked folders (.dvc in git).

    Returns the DVC targets pulled. The feedback batches folder ingest depends
    on is made when no batch was ever recorded (as `configure` does in shared mode).
    """

    path = workspace.path
    (path / load_settings(path / "params.yaml").feedback.batches_dir).mkdir(parents=True, exist_ok=True)
    targets = []
    for dep in inputs:
        if Path(dep).is_absolute() or dep.startswith(".."):
            continue  # outside the project: the worker's own (a data source path); DVC checks it exists
        if (path / f"{dep}.dvc").is_file():
            targets.append(f"{dep}.dvc")
        elif not (path / dep).exists() and produced_by_stages(path, dep):
            targets.append(dep)
    if targets:
        print(redact(f"{workspace.task}: dvc pull {' '.join(targets)}  (from {workspace.remotes.named()})"),
              flush=True)
        run_dvc(["pull", "-q", *targets], path, workspace.remotes)
    return targets


def pull_registry(workspace: Workspace) -> None:
    """The registry as the branch `mlops/registry` points to it; none yet: an empty BentoML home."""
    path, remote = workspace.path, workspace.remotes.git
    if run_git(["fetch", "-q", "origin", f"refs/heads/{REGISTRY_BRANCH}"], path, remote, check=False).returncode:
        workspace.registry_pointer = ""
        return
    pointer = f"{workspace.registry_home.name}.dvc"
    workspace.registry_parent = run_git(["rev-parse", "FETCH_HEAD"], path, remote).stdout.strip()
    workspace.registry_pointer = run_git(["show", f"FETCH_HEAD:{pointer}"], path, remote).stdout
    (path / pointer).write_text(workspace.registry_pointer, encoding="utf-8")
    run_dvc(["pull", "-q", pointer], path, workspace.remotes)


def push_registry(workspace: Workspace) -> bool:
    """Push the registry if this task changed it; the branch moves fast-forward only. True if pushed."""
    home = workspace.registry_home
    if workspace.registry_pointer is None or not home.is_dir():
        return False
    pointer = Path(f"{home}.dvc")
    path, remote = workspace.path, workspace.remotes.git
    run_dvc(["add", "-q", home.name], path, workspace.remotes)
    text = pointer.read_text(encoding="utf-8")
    if hashes(text) == hashes(workspace.registry_pointer or ""):
        return False
    run_dvc(["push", "-q", pointer.name], path, workspace.remotes)
    blob = run_git(["hash-object", "-w", pointer.name], path, remote).stdout.strip()
    tree = subprocess.run([*GIT, "mktree"], cwd=path, input=f"100644 blob {blob}\t{pointer.name}\n",
                          capture_output=True, text=True, check=True).stdout.strip()
    parent = ["-p", workspace.registry_parent] if workspace.registry_parent else []
    commit = run_git(["commit-tree", tree, *parent, "-m", f"registry after {workspace.task} of run "
                      f"{workspace.run_id}"], path, remote).stdout.strip()
    result = run_git(["push", "-q", "origin", f"{commit}:refs/heads/{REGISTRY_BRANCH}"], path, remote, check=False)
    if result.returncode:
        raise RemoteUnreachable(f"git remote {remote}: the registry branch moved while {workspace.task} ran "
                                f"(another writer): {last_line(result.stderr)}", transient=True)
    print(f"{workspace.task}: registry pushed ({REGISTRY_BRANCH} {commit[:10]})", flush=True)
    return True


def hashes(pointer: str) -> list[str]:
    return sorted(line.split(":", 1)[1].strip() for line in pointer.splitlines() if line.strip().startswith("- md5:"))


def prepare(remotes: Remotes, run_id: str, task: str, inputs: Iterable[str], registry: bool) -> Workspace:
    """Check the DVC remote, clone the run's branch into a fresh directory, pull the registry and the inputs."""
    check_dvc_remote(remotes)
    workspace = checkout(remotes, run_id, task)
    if registry:
        pull_registry(workspace)
    pull_inputs(workspace, inputs)
    return workspace


def stage_of(workspace: Workspace, name: str):

    stages = {stage.name: stage for stage in load_stages(workspace.path)}
    if name not in stages:
        raise MlopsError(f"the run's dvc.yaml ({run_branch(workspace.run_id)}) has no stage {name!r}")
    return stages[name]


def uses_registry(deps: Iterable[str]) -> bool:

    return any(inside(REGISTRY_MODULE, dep) for dep in deps)


def prepare_stage(remotes: Remotes, run_id: str, stage: str) -> Workspace:
    """A stage task's workspace: its deps pulled (the registry too when the stage's code imports it)."""
    check_dvc_remote(remotes)
    workspace = checkout(remotes, run_id, stage)
    spec = stage_of(workspace, stage)
    if uses_registry(spec.deps):
        pull_registry(workspace)
    pull_inputs(workspace, [dep for dep in spec.deps if not any(dep == out for out in spec.outs)])
    return workspace


def stage_command(stage: str) -> list[str]:
    return ["dvc", "repro", "--single-item", "--pull", stage]


def publish(workspace: Workspace, push: Iterable[str] = (), git_files: Iterable[str] = (), message: str = "") -> str:
    """Push `push` (DVC targets) and the registry if changed, commit dvc.lock and `git_files` to the run's
    branch and push it (fast-forward only). Returns the branch's new commit."""
    path, remote = workspace.path, workspace.remotes.git
    targets = list(push)
    if targets:
        run_dvc(["push", "-q", *targets], path, workspace.remotes)
    push_registry(workspace)
    Path(f"{workspace.registry_home}.dvc").unlink(missing_ok=True)  # the registry's pointer: on its own branch
    run_git(["add", "-A"], path, remote)
    present = [name for name in git_files if (path / name).exists()]
    if present:
        run_git(["add", "-f", "--", *present], path, remote)
    if run_git(["diff", "--cached", "--quiet"], path, remote, check=False).returncode:
        run_git(["commit", "-q", "-m", message or f"{workspace.task} of run {workspace.run_id}"], path, remote)
    branch = run_branch(workspace.run_id)
    result = run_git(["push", "-q", "origin", f"HEAD:refs/heads/{branch}"], path, remote, check=False)
    if result.returncode:
        raise RemoteUnreachable(f"git remote {remote}: cannot push {branch}: {last_line(result.stderr)}",
                                transient=True)
    commit = run_git(["rev-parse", "HEAD"], path, remote).stdout.strip()
    print(f"{workspace.task}: {branch} at {commit[:10]}", flush=True)
    return commit


def publish_stage(workspace: Workspace, stage: str) -> str:
    spec = stage_of(workspace, stage)
    return publish(workspace, push=[f"dvc.yaml:{stage}"], git_files=spec.uncached, message=f"stage {stage} of run "
                   f"{workspace.run_id}: dvc.lock and its git-carried outputs")


def finish(workspace: Workspace) -> None:
    """After a task succeeded: its directory goes, unless MLOPS_KEEP_WORKDIRS=1 keeps it for inspection."""
    if not workspace.remotes.keep:
        shutil.rmtree(workspace.path, ignore_errors=True)


def start_run(remotes: Remotes, run_id: str, apply: Callable[[Path], object]) -> object:
    """`configure` in isolated mode: the run's branch from the base revision, with `apply(path)`'s changes
    (params.yaml with the run's overrides, the record's first files). A re-run configure replaces the branch."""

    check_dvc_remote(remotes)
    workspace = checkout(remotes, run_id, "configure", new_run=True)
    result = apply(workspace.path)
    changed = run_git(["status", "--porcelain", "--untracked-files=all"], workspace.path, remotes.git).stdout
    pointers = [line[3:] for line in changed.splitlines() if line.endswith(".dvc")]
    if pointers:  # DVC-tracked files configure added (a drift run's feedback batches): their data goes too
        run_dvc(["push", "-q", *pointers], workspace.path, remotes)
    record = str(run_dir(workspace.path, run_id).relative_to(workspace.path))
    run_git(["add", "-A"], workspace.path, remotes.git)
    run_git(["add", "-f", "--", record], workspace.path, remotes.git)
    run_git(["commit", "-q", "--allow-empty", "-m", f"run {run_id}: params and record"], workspace.path, remotes.git)
    branch = run_branch(run_id)
    run_git(["push", "-q", "--force", "origin", f"HEAD:refs/heads/{branch}"], workspace.path, remotes.git)
    print(redact(f"configure: run branch {branch} in {remotes.git}"), flush=True)
    finish(workspace)
    return result


def read_run_file(remotes: Remotes, run_id: str, name: str) -> str | None:
    """One file of the run's branch tip, without a checkout; None if the branch lacks it."""
    with tempfile.TemporaryDirectory(prefix="mlops-read-") as scratch:
        run_git(["init", "-q"], Path(scratch), remotes.git)
        branch = run_branch(run_id)
        fetched = run_git(["fetch", "-q", "--depth", "1", remotes.git, f"refs/heads/{branch}"], Path(scratch),
                          remotes.git, check=False)
        if fetched.returncode:
            raise RemoteUnreachable(f"git remote {remotes.git}: cannot fetch {branch}: "
                                    f"{last_line(fetched.stderr)}", transient=True)
        shown = run_git(["show", f"FETCH_HEAD:{name}"], Path(scratch), remotes.git, check=False)
        return shown.stdout if shown.returncode == 0 else None


def execute(workspace: Workspace, command: list[str]) -> None:
    """Run `command` in the workspace (without Airflow); a failure raises, naming its last error line."""
    result = subprocess.run(command, cwd=workspace.path, capture_output=True, text=True,
                            env={**os.environ, **workspace.env}, timeout=24 * 3600)
    output = redact(result.stdout + result.stderr)
    print(output, flush=True)
    if result.returncode != 0:
        raise MlopsError(f"{workspace.task} failed ({command[0]} exit {result.returncode}): "
                         f"{last_line(redact(result.stderr + result.stdout))}")


def run_stage(remotes: Remotes, run_id: str, stage: str) -> Workspace:
    """One stage task end to end, without Airflow: prepare, `dvc repro`, publish."""
    workspace = prepare_stage(remotes, run_id, stage)
    execute(workspace, stage_command(stage))
    publish_stage(workspace, stage)
    finish(workspace)
    return workspace


def run_task(remotes: Remotes, run_id: str, task: str, command: list[str], inputs: Iterable[str] = (),
             registry: bool = False, git_files: Iterable[str] = ()) -> Workspace:
    """A task that is not a stage (promote), without Airflow: its inputs pulled, `command`, publish."""
    workspace = prepare(remotes, run_id, task, inputs, registry)
    execute(workspace, command)
    publish(workspace, git_files=git_files, message=f"{task} of run {run_id}")
    finish(workspace)
    return workspace


def main(argv: list[str] | None = None) -> int:
    """`python -m mlops.orchestration.workspace <stage>`: one stage task, isolated, outside Airflow's workers.

    What a KubernetesPodOperator's pod runs (docker/k8s/train-pod-template.yaml):
    the run id comes from MLOPS_RUN_ID (or --run-id), the remotes from the
    environment. A remote that cannot be reached ends it with one line naming
    the remote: exit 1 when a retry may help, 2 when a setting must be fixed.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mlops.orchestration.workspace", description=main.__doc__)
    parser.add_argument("stage", help="a stage of dvc.yaml")
    parser.add_argument("--run-id", default=environment().run_id, help=f"default: ${RUN_ID_ENV}")
    args = parser.parse_args(argv)
    if not args.run_id:
        parser.error("no run id: give --run-id or set MLOPS_RUN_ID")
    try:
        run_stage(Remotes.from_env(), args.run_id, args.stage)
    except RemoteUnreachable as error:
        print(f"error: {error}", flush=True)
        return 1 if error.transient else 2
    except MlopsError as error:
        print(redact(f"error: {error}"), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
