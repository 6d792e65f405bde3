"""The batch-scoring DAG: `mlops predict` on a file, with the champion or a given model version.

    predict

Triggered with the file as a parameter (`input`, a path relative to the
project, inside data/; `output`, inside reports/ or data/ but not the
feedback batches folder, default
`reports/batch/<run id>/predictions.<the input's format>`; `model`, a model tag, default the registry's champion).
Airflow checks the parameters against their schema when the run is
triggered; the task checks again where each path leads, symlinks followed,
and that the input exists before it scores, and fails at once, without
retries, on a path outside those folders or input that `mlops predict`
refuses. No schedule: a run scores the file it
is given (trigger from the UI, `airflow dags trigger batch_predict --conf
'{"input": "data/new.csv"}'` or the REST API).
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

from airflow.sdk import DAG, Param

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project these files lie in: its mlops package

from mlops.core.environment import project_dir  # noqa: E402

PROJECT = project_dir(default=Path(__file__).resolve().parents[1])

from mlops.orchestration.airflow_tasks import task_env  # noqa: E402
from mlops.orchestration.alerts import WebhookNotifier  # noqa: E402
from mlops.orchestration.batch_tasks import MODEL_PATTERN, PATH_PATTERN, BatchPredictOperator  # noqa: E402

with DAG(
    dag_id="batch_predict",
    description="score a file with the champion (mlops predict): label, score, probabilities, model version",
    schedule=None,
    catchup=False,
    max_active_runs=2,
    tags=["mlops", "serving"],
    params={
        "input": Param("", type="string", minLength=1, pattern=PATH_PATTERN, title="input",
                       description="CSV, TSV, JSONL or Parquet file with a text column (a project-relative "
                                   "path inside data/)."),
        "output": Param(None, type=["null", "string"], minLength=1, pattern=PATH_PATTERN, title="output",
                        description="Where the scored rows go, inside reports/ or data/ (not the feedback batches); "
                                    "empty: reports/batch/<run id>/predictions.<format>."),
        "model": Param(None, type=["null", "string"], minLength=1, pattern=MODEL_PATTERN, title="model",
                       description="Model tag (text-classifier:<version>); empty: the registry's champion."),
    },
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30), "execution_timeout": timedelta(hours=2),
                  "on_failure_callback": WebhookNotifier("task_failed", str(PROJECT))},
    doc_md=__doc__,
) as dag:
    BatchPredictOperator(
        task_id="predict", project=str(PROJECT), env=task_env(PROJECT),
        doc_md="`mlops predict --input <file> --output <file> [--model <tag>]`\n\n"
               "**Reads** the `input` file and the model (the registry's champion unless `model` names one)."
               "\n\n**Writes** `output` (default `reports/batch/<run id>/predictions.<format>`).\n\n"
               "**Skipped** never: a path outside the allowed folders, a missing input or input "
               "`mlops predict` refuses fails it at once, without retries.")
