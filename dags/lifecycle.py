"""The lifecycle DAG: the stages of dvc.yaml, run by Airflow.

Tasks and their order are read from dvc.yaml when the file is parsed, never
written out a second time here. Each task runs `dvc repro --single-item
<stage>` in the project, so DVC still decides whether the stage is stale,
caches its outputs and records dvc.lock, exactly as `dvc repro` on a laptop.
DVC holds a lock on the repository while it runs, so stages run one at a time
and runs queue behind each other.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

PROJECT = Path(os.environ.get("MLOPS_PROJECT_DIR", Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(PROJECT))

from mlops.pipeline import load_stages  # noqa: E402

VENV_BIN = PROJECT / ".venv" / "bin"
BIN = VENV_BIN if VENV_BIN.is_dir() else Path(sys.executable).parent

with DAG(
    dag_id="lifecycle",
    description="ingest -> validate -> split -> train -> evaluate -> gate -> package -> monitor (from dvc.yaml)",
    schedule=None,
    catchup=False,
    max_active_runs=1,
    max_active_tasks=1,
    tags=["mlops", "dvc"],
    default_args={"retries": 0, "execution_timeout": timedelta(hours=6)},
    doc_md=__doc__,
) as dag:
    stages = load_stages(PROJECT)
    tasks = {}
    for stage in stages:
        tasks[stage.name] = BashOperator(
            task_id=stage.name,
            bash_command=f"dvc repro --single-item {stage.name}",
            cwd=str(PROJECT),
            env={"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1",
                 "BENTOML_HOME": os.environ.get("BENTOML_HOME", str(PROJECT / ".bentoml")),
                 "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")},
            append_env=True,
            doc_md=f"`{stage.cmd}`",
        )
    for stage in stages:
        for upstream in stage.upstream:
            tasks[upstream] >> tasks[stage.name]
