"""Airflow loads plugins from this folder (`[core] plugins_folder`): the project's plugin, the run's verdict as its
note and /reports (mlops/orchestration/airflow_plugin.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project these files lie in: its mlops package

from mlops.core.environment import project_dir  # noqa: E402

PROJECT = project_dir(default=Path(__file__).resolve().parents[1])

from mlops.orchestration.airflow_plugin import MlopsPlugin  # noqa: E402, F401
