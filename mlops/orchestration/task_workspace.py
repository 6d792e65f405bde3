"""Where an Airflow task finds its files and leaves its results: one protocol, two workspaces.

`SharedWorkspace` (MLOPS_WORKSPACE_MODE=shared, the default): every task
works in the one project directory the workers share; there is nothing to
fetch or publish. `IsolatedWorkspace` (MLOPS_WORKSPACE_MODE=isolated): tasks
share nothing but the remotes; each works in a directory of its own, filled
from the run's git branch and the DVC remote, and pushes back what it made
(mlops/orchestration/workspace.py). `workspace_for` chooses one, once per
call; the task code asks the protocol only.

A remote that cannot be reached fails the task in one line naming it
(`remote_failures`): a network failure is retried, a setting to fix is not.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from mlops.core.environment import environment
from mlops.core.errors import MlopsError
from mlops.core.redact import redact
from mlops.orchestration import workspace
from mlops.orchestration.runs import restore_params, run_dir
from mlops.orchestration.workspace import (
    Remotes,
    RemoteUnreachable,
    finish,
    prepare,
    prepare_stage,
    publish,
    publish_stage,
    read_run_file,
    run_branch,
    stage_command,
    start_run,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Checkout:
    """Where one task runs its command: a directory, what it adds to the environment, the isolated state."""

    path: Path
    env: dict[str, str] | None = None
    space: Any = field(default=None, compare=False)  # workspace.Workspace of an isolated task


class Workspace(Protocol):
    """What a task asks of the place it works in."""

    def start_run(self, run_id: str, apply: Callable[[Path], T]) -> T:
        """`configure`: apply the run's params (and record its trigger) where every later task starts."""

    def open_stage(self, run_id: str, stage: str) -> Checkout:
        """Where `stage` runs, its deps in place; `stage_command` is what runs there."""

    def stage_command(self, stage: str) -> list[str]:
        """The command that runs `stage` in its checkout."""

    def publish_stage(self, checkout: Checkout, stage: str) -> None:
        """After the stage succeeded: its outputs and lock entry where the next tasks find them."""

    def open_task(self, run_id: str, task: str, inputs: Iterable[str]) -> Checkout:
        """Where a command task (`promote`) runs: `inputs` and the registry in place."""

    def publish(self, checkout: Checkout, git_files: list[str], message: str) -> None:
        """After a command task: `git_files` (and the registry) where the next tasks find them."""

    def finish(self, checkout: Checkout) -> None:
        """The task is done with its checkout."""

    def write_run_files(self, run_id: str, task: str, write: Callable[[Path], T]) -> T:
        """`write(project)` into the run's record, and the record kept where the run's record lives."""

    def write_failure(self, run_id: str, write: Callable[[Path], T]) -> T:
        """As write_run_files, for the failure callback: never fails for want of a remote."""

    def read_run_file(self, run_id: str, name: str) -> tuple[str | None, str]:
        """A file of this run (project-relative `name`), None if there is none; and where it was looked for."""

    def publish_run(self) -> None:
        """After the run's record: its outputs wherever they are kept beyond this run."""

    def restore_params(self) -> None:
        """The run's very last task: the project's params.yaml as before the run."""


class SharedWorkspace:
    """Every task in the one project directory: it is the checkout, and what a task writes is already there."""

    def __init__(self, project: Path | str) -> None:
        self.project = Path(project)

    def start_run(self, run_id: str, apply: Callable[[Path], T]) -> T:
        return apply(self.project)

    def open_stage(self, run_id: str, stage: str) -> Checkout:
        return Checkout(self.project)

    def stage_command(self, stage: str) -> list[str]:
        return ["dvc", "repro", "--single-item", stage]

    def publish_stage(self, checkout: Checkout, stage: str) -> None:
        return None

    def open_task(self, run_id: str, task: str, inputs: Iterable[str]) -> Checkout:
        return Checkout(self.project)

    def publish(self, checkout: Checkout, git_files: list[str], message: str) -> None:
        return None

    def finish(self, checkout: Checkout) -> None:
        return None

    def write_run_files(self, run_id: str, task: str, write: Callable[[Path], T]) -> T:
        return write(self.project)

    def write_failure(self, run_id: str, write: Callable[[Path], T]) -> T:
        return write(self.project)

    def read_run_file(self, run_id: str, name: str) -> tuple[str | None, str]:
        path = self.project / name
        return (path.read_text(encoding="utf-8") if path.is_file() else None), name

    def publish_run(self) -> None:
        """With MLOPS_DVC_PUSH=1 (the compose stack), `dvc push` to the remote."""
        if not environment().dvc_push:
            return
        result = subprocess.run(["dvc", "push"], cwd=self.project, capture_output=True, text=True, timeout=3600)
        print(redact(result.stdout + result.stderr), flush=True)
        if result.returncode != 0:
            error = redact(result.stderr).strip()[-2000:]
            raise AirflowException(f"dvc push failed (exit {result.returncode}): {error}")

    def restore_params(self) -> None:

        if not restore_params(self.project):
            print("restore_params: this run changed no parameters; params.yaml untouched", flush=True)


class IsolatedWorkspace:
    """Share-nothing: each task in a directory of its own, fed from the run's git branch and the DVC remote."""

    def __init__(self, project: Path | str) -> None:
        self.project = Path(project)  # the worker's own copy of the code: where a failure is written at worst

    def start_run(self, run_id: str, apply: Callable[[Path], T]) -> T:

        with remote_failures():
            return start_run(remotes(), run_id, apply)  # type: ignore[return-value]

    def open_stage(self, run_id: str, stage: str) -> Checkout:

        with remote_failures():
            space = prepare_stage(remotes(), run_id, stage)
        return Checkout(space.path, space.env, space)

    def stage_command(self, stage: str) -> list[str]:

        return stage_command(stage)

    def publish_stage(self, checkout: Checkout, stage: str) -> None:

        with remote_failures():
            publish_stage(checkout.space, stage)

    def open_task(self, run_id: str, task: str, inputs: Iterable[str]) -> Checkout:

        with remote_failures():
            space = prepare(remotes(), run_id, task, list(inputs), registry=True)
        return Checkout(space.path, space.env, space)

    def publish(self, checkout: Checkout, git_files: list[str], message: str) -> None:

        with remote_failures():
            publish(checkout.space, git_files=git_files, message=message)

    def finish(self, checkout: Checkout) -> None:

        finish(checkout.space)

    def write_run_files(self, run_id: str, task: str, write: Callable[[Path], T]) -> T:
        """`write(path)` in a fresh checkout of the run's branch, then the run's record folder committed and
        pushed to it (fast-forward only); the record lives there, not on any worker."""

        with remote_failures():
            space = workspace.prepare(remotes(), run_id, task, inputs=(), registry=False)
            result = write(space.path)
            workspace.publish(space, git_files=[str(run_dir(space.path, run_id).relative_to(space.path))],
                              message=f"{task} of run {run_id}")
        workspace.finish(space)
        return result

    def write_failure(self, run_id: str, write: Callable[[Path], T]) -> T:
        try:
            return self.write_run_files(run_id, "failure", write)
        except Exception as error:  # noqa: BLE001 - a callback that fails loses the summary: keep it local
            print(redact(f"failure summary: not committed to the run's branch ({error}); written on this worker"),
                  flush=True)
        return write(self.project)

    def read_run_file(self, run_id: str, name: str) -> tuple[str | None, str]:

        with remote_failures():
            return read_run_file(remotes(), run_id, name), f"{name} on {run_branch(run_id)}"

    def publish_run(self) -> None:
        return None  # every task pushed its own outputs already

    def restore_params(self) -> None:
        print("restore_params: isolated workspaces: the run's params live on its git branch only; nothing to "
              "restore", flush=True)


def workspace_for(project: Path | str) -> Workspace:
    """The workspace MLOPS_WORKSPACE_MODE names, for tasks of `project`."""
    return IsolatedWorkspace(project) if environment().workspace_mode == "isolated" else SharedWorkspace(project)


def read_run_json(project: Path | str, run_id: str | None, name: str) -> tuple[dict[str, Any] | None, str]:
    """A JSON file of this run; without a run id, the project's own."""
    space: Workspace = workspace_for(project) if run_id else SharedWorkspace(project)
    text, where = space.read_run_file(run_id or "", name)
    where = str(Path(project) / name) if where == name else where  # a file in the project: named by its path
    return (json.loads(text) if text else None), where


def remotes() -> Any:
    """The remotes of the share-nothing workers; missing settings fail the task, naming them."""

    try:
        return Remotes.from_env()
    except MlopsError as error:
        line = redact(f"error: {error}")
        print(line, flush=True)
        raise AirflowFailException(line) from None


@contextlib.contextmanager
def remote_failures() -> Iterator[None]:
    """A remote that cannot be reached fails the task in one line naming it: a network failure is retried
    (the remote may come back), a setting to fix (no such directory, no such branch) fails at once."""

    try:
        yield
    except RemoteUnreachable as error:
        line = redact(f"error: {error}")
        print(line, flush=True)
        raise (AirflowException if error.transient else AirflowFailException)(line) from None
