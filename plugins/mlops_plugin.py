"""Airflow loads plugins from this folder (`[core] plugins_folder`): the project's plugin, the run's verdict as its
note and /reports (mlops/orchestration/airflow_plugin.py)."""

import os
import sys
from pathlib import Path

PROJECT = Path(os.environ.get("MLOPS_PROJECT_DIR", Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(PROJECT))

from mlops.orchestration.airflow_plugin import MlopsPlugin  # noqa: E402, F401
