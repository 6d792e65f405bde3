"""The Airflow tasks around a lifecycle run's stages: its configuration, the gate's branch, its record and
verdict, the restore of params.yaml, the failure callback. Each asks the run's workspace
(mlops/orchestration/task_workspace.py) where the run's files are.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk.exceptions import AirflowFailException

from mlops.core.errors import MlopsError
from mlops.core.redact import redact
from mlops.orchestration import triggers
from mlops.orchestration.assets import VERDICT_ASSET
from mlops.orchestration.failures import failure_summary, run_id_of
from mlops.orchestration.report_links import record_links
from mlops.orchestration.runs import configure as apply_run
from mlops.orchestration.runs import record as write_record
from mlops.orchestration.runs import recorded_files, run_dir
from mlops.orchestration.task_workspace import read_run_json, remote_failures, workspace_for
from mlops.orchestration.verdict import run_verdict
from mlops.orchestration.workspace import RemoteUnreachable


def configure(project: str, params: dict[str, Any], dag_run: Any, run_id: str,
              triggering_asset_events: Any = None, **_: Any) -> dict[str, Any]:
    """The run's first task: validate the trigger params with the whole params file, then apply them.

    First its trigger and the cooldown (mlops/orchestration/triggers.py: a triggered run in the cooldown is
    skipped); then the trigger, and the event(s) that started it, into the run's record.
    """

    conf = dict(getattr(dag_run, "conf", None) or {})
    events = asset_events(triggering_asset_events)
    started = triggers.admit(Path(project), run_id, triggers.run_type_of(dag_run, events), events)
    space = workspace_for(project)

    def apply(path: Path) -> dict[str, Any]:
        overrides = apply_run(path, run_id, dict(params), conf_keys=list(conf))
        triggers.started_run(path, run_id, started, events)
        return overrides

    with remote_failures():  # the run's params and record where every later task starts (isolated: its branch)
        try:
            return space.start_run(run_id, apply)
        except RemoteUnreachable:
            raise
        except MlopsError as error:
            raise AirflowFailException(redact(f"error: {error}")) from None  # bad params never get better by retrying


def asset_events(triggering_asset_events: Any) -> list[dict[str, Any]]:
    """The context's `triggering_asset_events` (asset -> its events) as plain, JSON-ready dicts."""
    events = []
    for asset, consumed in dict(triggering_asset_events or {}).items():
        for event in consumed:
            timestamp = getattr(event, "timestamp", None)
            events.append({
                "asset": getattr(getattr(event, "asset", None), "uri", None) or getattr(asset, "uri", str(asset)),
                "timestamp": timestamp.isoformat() if hasattr(timestamp, "isoformat") else timestamp,
                "source_dag_id": getattr(event, "source_dag_id", None),
                "source_run_id": getattr(event, "source_run_id", None),
                "source_task_id": getattr(event, "source_task_id", None),
                "extra": dict(getattr(event, "extra", None) or {}),
            })
    return sorted(events, key=lambda event: str(event["timestamp"]))


def record(project: str, run_id: str, outlet_events: Any = None, **_: Any) -> dict[str, Any]:
    """The run's last task: its record, and its verdict as an event of the verdict asset (and this task's XCom);
    with MLOPS_DVC_PUSH=1 (the compose stack), `dvc push` to the remote."""

    space = workspace_for(project)  # isolated: the record is written from the run's branch, and committed to it
    summary = space.write_run_files(run_id, "record", lambda path: write_record(path, run_id))
    verdict = announce_verdict(project, run_id, summary, outlet_events)
    space.publish_run()
    return verdict


def announce_verdict(project: str, run_id: str, summary: dict[str, Any], outlet_events: Any) -> dict[str, Any]:
    """The run's verdict (mlops/orchestration/verdict.py) as the `extra` of an event of VERDICT_ASSET; the
    project's Airflow plugin copies its note into the run's note when the run succeeds."""

    verdict = run_verdict(summary, recorded_files(Path(project)), str(run_dir(Path("."), run_id) / "run.json"))
    if outlet_events is not None:
        outlet_events[VERDICT_ASSET].extra = verdict
    print(redact(f"record: verdict: {verdict['headline']}"), flush=True)
    return verdict


class RecordOperator(PythonOperator):
    """The `record` task: a PythonOperator (`record` above) with links to the run's record."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

        self.operator_extra_links = record_links()


def restore(project: str, **_: Any) -> None:
    """The run's very last task, whatever happened before: params.yaml back to its bytes before the run."""
    workspace_for(project).restore_params()


def on_failure(context: Any) -> None:
    """Task failure callback: a one-paragraph summary in the log and in reports/runs/<run id>/failure.md (in
    isolated mode on the run's branch, where the rest of the run's record is; the worker's disk does not last)."""

    task = context.get("task")
    project = getattr(task, "project", None) or (getattr(task, "op_kwargs", None) or {}).get("project")
    space = workspace_for(project or os.getcwd())
    paragraph = space.write_failure(run_id_of(context), lambda path: failure_summary(path, context))
    print(redact(f"FAILURE SUMMARY: {paragraph}"), flush=True)


def read_decision(project: str, decision: str, run_id: str | None) -> tuple[dict[str, Any] | None, str]:
    """The gate's decision, from the project or (isolated) the run's branch; None if there is none."""
    return read_run_json(project, run_id, decision)


def gate_passed(project: str, decision: str, run_id: str | None = None, **_: Any) -> bool:
    """The branch after `gate`: True lets packaging run; False skips it, and the log says why."""
    verdict, where = read_decision(project, decision, run_id)
    if verdict is None:
        raise AirflowFailException(f"the gate wrote no decision at {where}")
    state = "ACCEPTED" if verdict["accepted"] else "REJECTED: packaging and deployment are skipped"
    print(f"gate {state} ({verdict['basis']})", flush=True)
    for reason in verdict["reasons"]:
        print(f"  - {reason}", flush=True)
    if verdict.get("next_step"):
        print(f"next step: {verdict['next_step']}", flush=True)
    return bool(verdict["accepted"])
