"""The `batch_predict` DAG's task: `mlops predict` on the file a run is given.

Kept apart from airflow_tasks.py (the lifecycle and monitoring tasks): batch
scoring is not a dvc stage and shares only the command runner with them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from mlops.orchestration.airflow_tasks import USER_ERROR_EXIT, CommandOperator
from mlops.orchestration.runs import safe_name

BATCH_DIR = Path("reports/batch")  # default output: reports/batch/<run id>/predictions.<input's format>
SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
PATH_PATTERN = r"^[^\x00]+\.(csv|tsv|jsonl|json|parquet)$"  # the DAG's Param schema: a file of a format we read


def checked_params(project: Path, run_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """The run's parameters, checked before anything runs: the input exists and both formats are readable.

    Relative paths are the project's. A bad value fails the task at once, without retries, naming it."""
    given = params.get("input")
    if not isinstance(given, str) or not given.strip():
        raise AirflowFailException("param `input`: give the file to score (a path, relative to the project)")
    source = Path(given) if Path(given).is_absolute() else Path(project) / given
    if source.suffix.lower() not in SUFFIXES:
        raise AirflowFailException(f"param `input` {given}: unsupported format {source.suffix or '(none)'!r}; "
                                   f"use one of {', '.join(SUFFIXES)}")
    if not source.is_file():
        raise AirflowFailException(f"param `input` {given}: no such file (relative paths are the project's)")
    output = params.get("output") or str(BATCH_DIR / safe_name(run_id) / f"predictions{source.suffix.lower()}")
    target = Path(output) if Path(output).is_absolute() else Path(project) / output
    if target.suffix.lower() not in SUFFIXES:
        raise AirflowFailException(f"param `output` {output}: unsupported format {target.suffix or '(none)'!r}; "
                                   f"use one of {', '.join(SUFFIXES)}")
    if target.resolve() == source.resolve():
        raise AirflowFailException(f"param `output` {output} is the input file")
    model = params.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
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
