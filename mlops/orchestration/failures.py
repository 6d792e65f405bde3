"""Why a lifecycle task failed, in one paragraph: the task's log line that tells, in the run's record
(reports/runs/<run id>/failure.md), redacted."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops.core.redact import redact
from mlops.orchestration.runs import TRIGGER_PARAMS, run_dir, write_text


def last_error_line(text: str) -> str:
    """The most telling line of a failure: the stage's own `error:` line, else DVC's, else the last one."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for wanted in (lambda line: line.startswith("error:"),
                   lambda line: line.startswith("ERROR:") or "Error" in line.split(":")[0]):
        for line in reversed(lines):
            if wanted(line):
                return line
    return lines[-1] if lines else ""


def run_id_of(context: dict[str, Any]) -> str:
    """The run a task context belongs to (a failure callback's context may carry it on the task instance only)."""
    ti = context.get("ti") or context.get("task_instance")
    return str(context.get("run_id") or getattr(ti, "run_id", "unknown-run"))


def failure_summary(project: Path, context: dict[str, Any]) -> str:
    """One paragraph on why a task failed, written to reports/runs/<run id>/failure.md; returns it, redacted."""

    ti = context.get("ti") or context.get("task_instance")
    run_id = run_id_of(context)
    task_id = getattr(ti, "task_id", "unknown-task")
    try_number = getattr(ti, "try_number", None)
    task = context.get("task")
    retries = getattr(task, "retries", None)
    exception = context.get("exception")
    cause = last_error_line(str(exception)) if exception else "no exception was recorded"
    params = context.get("params") or {}
    given = ", ".join(f"{name}={value!r}" for name, value in dict(params).items()
                      if value is not None and name in TRIGGER_PARAMS) or "none"
    folder = run_dir(project, run_id)
    attempts = f"after {try_number} attempt(s)" if try_number else "after its attempts"
    if retries is not None:
        attempts += f" (retries allowed: {retries})"
    paragraph = (
        f"Run {run_id} of the lifecycle DAG failed at task `{task_id}` {attempts} at "
        f"{datetime.now(UTC).isoformat(timespec='seconds')}: {cause}. "
        f"Trigger parameters given: {given}. Stages that finished before it keep their outputs in the DVC "
        f"cache, so after fixing the cause a new run (or clearing this task) re-runs only `{task_id}` and the "
        f"stages after it; the task log in Airflow has the stage's full output, and {folder.relative_to(project)} "
        f"holds this run's params."
    )
    folder.mkdir(parents=True, exist_ok=True)
    paragraph = redact(paragraph)  # the cause is an error's text: a git error names the remote, token and all
    write_text(folder / "failure.md", paragraph + "\n")
    return paragraph
