"""Airflow tasks of the lifecycle and monitoring DAGs, the names the DAG files import.

- mlops/orchestration/task_commands.py: a command in the project, its log and how it ended (`CommandOperator`);
- mlops/orchestration/task_workspace.py: where a task works, shared or share-nothing (`Workspace`);
- mlops/orchestration/stage_tasks.py: a DVC stage, `mlops monitor`, `mlops promote`;
- mlops/orchestration/run_tasks.py: the run's configuration, gate branch, record, restore, failure callback;
- mlops/orchestration/monitoring_tasks.py: the drift verdict and the drift asset's event.
"""

from __future__ import annotations

from mlops.core.errors import USER_ERROR_EXIT
from mlops.orchestration.monitoring_tasks import announce_drift, drift_detected, read_monitoring_summary
from mlops.orchestration.run_tasks import (
    RecordOperator,
    announce_verdict,
    asset_events,
    configure,
    gate_passed,
    on_failure,
    read_decision,
    record,
    restore,
)
from mlops.orchestration.stage_tasks import MonitorOperator, PromoteOperator, StageOperator
from mlops.orchestration.task_commands import QUIET, CommandOperator, CommandResult, DvcOutput, task_env
from mlops.orchestration.task_workspace import remote_failures, remotes, workspace_for

__all__ = [
    "QUIET", "USER_ERROR_EXIT", "CommandOperator", "CommandResult", "DvcOutput", "MonitorOperator",
    "PromoteOperator", "RecordOperator", "StageOperator", "announce_drift", "announce_verdict", "asset_events",
    "configure", "drift_detected", "gate_passed", "on_failure", "read_decision",
    "read_monitoring_summary", "record", "remote_failures", "remotes", "restore", "task_env", "workspace_for",
]
