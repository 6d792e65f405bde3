"""Running a command from an Airflow task: the worker's environment, the output that reaches the task log,
and how the command (an mlops command inside it) ended.

`CommandOperator` runs a command in the project with Airflow's SubprocessHook,
which streams its output into the task log; on a timeout or a kill, the
command's whole process group is stopped, so no orphaned training keeps the
DVC lock. The mlops command inside reports its own exit code and error
through MLOPS_EXIT_FILE.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow.providers.standard.hooks.subprocess import SubprocessHook
from airflow.sdk import BaseOperator

from mlops.core.environment import PROGRESS_ENV, project_defaults
from mlops.core.errors import EXIT_FILE_ENV
from mlops.core.redact import redact, secret_values


def task_env(project: Path | str) -> dict[str, str]:
    """What tasks add to the worker's environment: the project's venv on PATH, offline hub, project homes."""
    venv_bin = Path(project) / ".venv" / "bin"
    bin_dir = venv_bin if venv_bin.is_dir() else Path(sys.executable).parent

    defaults = {key: os.environ.get(key, value) for key, value in {**project_defaults(project), **QUIET}.items()}
    return {**defaults, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


# No progress bars in a task log, where every redraw stays as a line: the project's own switch
# (mlops/ml/progress.py), the Hugging Face libraries' and tqdm's default for every other caller
QUIET = {PROGRESS_ENV: "0", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1"}


class DvcOutput:
    """What of `dvc repro`'s output reaches a stage's task log, and how the stage ended for DVC.

    DVC ends every repro that changed something with advice for a person at a
    git prompt ("To track the changes with git, run: git add dvc.lock ...",
    "To enable auto staging ...", "Use `dvc push` ..."): in a task log it buries
    the answer, and the task does neither (the run's record does). That advice
    and blank lines are dropped; everything else, the stage's own output
    included, is kept. DVC's own lines say whether it ran the stage.
    """

    HINT_START = "To track the changes with git, run:"
    HINT_END = "dvc config core.autostage true"
    DROPPED = ("Use `dvc push` to send your updates to remote storage.", "To enable auto staging, run:")

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.in_hint = False
        self.outcome = "ran"  # a stage whose command ran says nothing more specific below

    def keep(self, line: str) -> bool:
        text = line.strip()
        if self.in_hint:
            self.in_hint = text != self.HINT_END
            return False
        if text == self.HINT_START:
            self.in_hint = True
            return False
        if not text or text in self.DROPPED:
            return False
        if text == f"Stage '{self.stage}' didn't change, skipping":
            self.outcome = "unchanged"
        elif text.startswith(f"Stage '{self.stage}' is cached"):
            self.outcome = "restored"
        return True

    def summary(self, seconds: float) -> str:
        """One line on how the stage ended, for the end of its log."""
        return {
            "ran": f"{self.stage}: ran in {seconds:.0f} s; its outputs and dvc.lock are updated",
            "unchanged": f"{self.stage}: up to date (nothing it reads changed since dvc.lock): DVC ran nothing",
            "restored": f"{self.stage}: restored from DVC's run-cache (these deps and params ran before), "
                        f"in {seconds:.0f} s",
        }[self.outcome]


# DVC's error when a stage's dep does not exist: it exits 255 before the stage's command starts, so the command
# reports no exit of its own (the error's path is absolute)
MISSING_DEP = re.compile(r"failed to reproduce '[^']+': \[Errno 2\] No such file or directory: '([^']+)'")


class FilteredLog:
    """A logger that passes the lines a SubprocessHook streams through `keep` and everything else unchanged."""

    def __init__(self, log: Any, keep: Callable[[str], bool]) -> None:
        self.log, self.keep = log, keep

    def info(self, message: str, *args: Any, **kwargs: Any) -> None:
        if message == "%s" and args and not self.keep(str(args[0])):  # the hook logs each output line as "%s"
            return
        self.log.info(message, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.log, name)


class FilteredSubprocessHook(SubprocessHook):
    """Airflow's SubprocessHook (a session of its own, output streamed to the task log), some lines dropped."""

    def __init__(self, keep: Callable[[str], bool]) -> None:
        super().__init__()
        self.keep = keep

    @property
    def log(self) -> Any:
        return FilteredLog(super().log, self.keep)


@dataclass(frozen=True)
class CommandResult:
    """How a command ended: its exit code, its last output line, and what the mlops command in it reported."""

    code: int
    last_line: str
    stage_exit: int | None = None
    stage_error: str | None = None

    def describe(self) -> str:
        return redact(self.stage_error or self.last_line)


def mask_in_task_log() -> None:
    """Register the environment's secrets with Airflow's log masker: a command's output streams into the task
    log line by line, and this is how it comes out redacted there too."""
    from airflow.sdk.log import mask_secret

    for value in secret_values():
        mask_secret(value)


class CommandOperator(BaseOperator):
    """Base of the tasks that run a command in the project, with Airflow's SubprocessHook.

    The hook streams the output into the task log and runs the command in a
    session of its own; on a kill or a timeout, on_kill stops its whole process
    group, so no orphaned training keeps the DVC lock. The mlops command inside
    reports its own exit code and error through MLOPS_EXIT_FILE.
    """

    def __init__(self, *, project: str, env: dict[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.project = project
        self.env = env
        self.hook: SubprocessHook | None = None

    def run_command(self, command: list[str], cwd: Path | None = None,
                    extra_env: dict[str, str] | None = None, keep: Callable[[str], bool] | None = None
                    ) -> CommandResult:
        """`command` in the project (or `cwd`: an isolated task's own directory, with its `extra_env`); with
        `keep`, only the output lines it keeps reach the log."""
        where = str(cwd or self.project)
        mask_in_task_log()
        print(redact(f"$ {' '.join(command)}  (in {where})"), flush=True)
        with tempfile.TemporaryDirectory(prefix="mlops-exit-") as scratch:
            exit_file = Path(scratch) / "exit.json"
            env = {**os.environ, **self.env, **(extra_env or {}), "PYTHONUNBUFFERED": "1",
                   EXIT_FILE_ENV: str(exit_file)}
            self.hook = FilteredSubprocessHook(keep) if keep else SubprocessHook()
            result = self.hook.run_command(command, env=env, cwd=where)
            reported = json.loads(exit_file.read_text(encoding="utf-8")) if exit_file.is_file() else {}
        return CommandResult(result.exit_code, result.output, reported.get("exit"), reported.get("error"))

    def on_kill(self) -> None:
        if self.hook is not None and self.hook.sub_process is not None and self.hook.sub_process.poll() is None:
            self.hook.send_sigterm()
