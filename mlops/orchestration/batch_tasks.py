"""The `batch_predict` DAG's task: `mlops predict` on the file a run is given.

Kept apart from airflow_tasks.py (the lifecycle and monitoring tasks): batch
scoring is not a dvc stage and shares only the command runner with them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from mlops.core.errors import MlopsError
from mlops.core.paths import confine
from mlops.core.settings import FeedbackSettings, load_settings
from mlops.orchestration.airflow_tasks import USER_ERROR_EXIT, CommandOperator
from mlops.orchestration.runs import safe_name

BATCH_DIR = Path("reports/batch")  # default output: reports/batch/<run id>/predictions.<input's format>
SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
# The DAG's Param schema: a project-relative file (no leading `/`, no `..` part) of a format we read. The task
# checks again where the path leads (symlinks followed): the schema only refuses the obvious early.
PATH_PATTERN = r"^(?!/)(?!(.*/)?\.\.(/|$))[^\x00]+\.(csv|tsv|jsonl|json|parquet)$"
MODEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*:[A-Za-z0-9_.-]+$"  # a BentoML tag, name:version; never a path
INPUT_DIRS = ("data",)  # where `input` may lie
OUTPUT_DIRS = ("reports", "data")  # where `output` may go, but never the feedback batches (training trusts them)


def feedback_dir(project: Path) -> str:
    """feedback.batches_dir of the project's params.yaml (the default when the project has none)."""

    params = Path(project) / "params.yaml"
    return load_settings(params).feedback.batches_dir if params.is_file() else FeedbackSettings().batches_dir


def confined(project: Path, given: str, allowed: tuple[str, ...], what: str, refuse_feedback: bool = False) -> Path:
    """`given` resolved inside `allowed` (mlops.core.paths.confine); anything else fails the task at once."""

    try:
        refused = (feedback_dir(project),) if refuse_feedback else ()
        return confine(given, project, allowed, what, refused)
    except MlopsError as error:
        raise AirflowFailException(str(error)) from None


def checked_params(project: Path, run_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """The run's parameters, checked before anything runs: the input exists and both formats are readable.

    Paths are the project's, and confined, symlinks followed: the input to data/, the output to reports/
    or data/ but not the feedback batches (a scored file there would join training as labelled data), so a
    trigger can neither read nor overwrite anything else (the model registry, params.yaml). A bad value
    fails the task at once, without retries, naming it."""
    given = params.get("input")
    if not isinstance(given, str) or not given.strip():
        raise AirflowFailException("param `input`: give the file to score (a path inside data/, relative to the "
                                   "project)")
    source = confined(Path(project), given, INPUT_DIRS, "param `input`")
    if source.suffix.lower() not in SUFFIXES:
        raise AirflowFailException(f"param `input` {given}: unsupported format {source.suffix or '(none)'!r}; "
                                   f"use one of {', '.join(SUFFIXES)}")
    if not source.is_file():
        raise AirflowFailException(f"param `input` {given}: no such file (relative paths are the project's)")
    output = params.get("output") or str(BATCH_DIR / safe_name(run_id) / f"predictions{source.suffix.lower()}")
    if not isinstance(output, str):
        raise AirflowFailException("param `output`: a path inside reports/ or data/, or null")
    target = confined(Path(project), output, OUTPUT_DIRS, "param `output`", refuse_feedback=True)
    if target.suffix.lower() not in SUFFIXES:
        raise AirflowFailException(f"param `output` {output}: unsupported format {target.suffix or '(none)'!r}; "
                                   f"use one of {', '.join(SUFFIXES)}")
    if target.resolve() == source.resolve():
        raise AirflowFailException(f"param `output` {output} is the input file")
    model = params.get("model")
    if model is not None and (not isinstance(model, str) or not re.fullmatch(MODEL_PATTERN, model)):
        raise AirflowFailException("param `model`: a model tag such as text-classifier:<version>, or null")
    return {"input": source, "output": target, "model": model}


class BatchPredictOperator(CommandOperator):
    """`mlops predict --input <file> --output <file> [--model <tag>]` in the project; returns where it wrote."""

    ui_color = "#3da5e8"

    def execute(self, context: Any) -> dict[str, str]:
        checked = checked_params(Path(self.project), context["run_id"], context.get("params") or {})
        command = ["mlops", "predict", "--input", str(checked["input"]), "--output", str(checked["output"]),
                   "--no-progress"]
        if checked["model"]:
            command += ["--model", checked["model"]]
        result = self.run_command(command)
        if result.code == USER_ERROR_EXIT:
            raise AirflowFailException(f"mlops predict refused its input (exit 2): {result.describe()}")
        if result.code != 0:
            raise AirflowException(f"mlops predict failed (exit {result.code}): {result.describe()}")
        return {"output": str(checked["output"])}
