"""The monitoring DAG: drift of the served traffic, live quality and new labels, and retraining when one says so.

    monitor → drift_detected → announce_drift ··(asset mlops://monitoring/drift)··> lifecycle
    new_labels → announce_new_labels ··(asset mlops://feedback/new-labels)··> lifecycle

`monitor` runs `mlops monitor` on the traffic log the service writes
(`$MLOPS_TRAFFIC_DIR`, else `<project>/logs/traffic`; the `current` param
overrides it for one run) into `reports/monitoring-runs/<run id>/`
(summary.json, report.html). With no traffic log yet the task is skipped;
input the monitor refuses (exit 2) fails it at once, without retries.
`drift_detected` logs the verdict and every signal's score and threshold, and
lets `announce_drift` run for the verdict "drift" or for a live quality breach
(the trusted labels put the serving version's accuracy below
gate.min_accuracy, mlops/ml/live_quality.py), whatever the drift verdict;
otherwise ("no_drift", "insufficient_data") it skips it. `announce_drift`
emits an event of the drift asset whose `extra` names the report, the
summary, the drifted signals, the reasons (`drift`, `live_quality_breach`),
the breach and this run; the `lifecycle` DAG is scheduled on that asset, so
the event starts a lifecycle run, which records the report that triggered it.
Its notifier alerts once per reason.

`new_labels`, beside them (it needs no traffic), counts the trusted labels
the champion's data lacks (labellers' labels posted to /feedback and rows of
feedback batches the last ingest did not hold, mlops/loop/retrain.py) and
lets `announce_new_labels` emit an event of the new-labels asset when they
reach `loop.min_new_labels` (null: never); the lifecycle runs on it too.
The lifecycle's `configure` names each run's trigger and skips a run that
comes within `loop.cooldown_minutes` of the last triggered one
(mlops/orchestration/triggers.py).

The schedule is `monitor.schedule` in params.yaml (a cron expression or a
preset such as "@hourly"; null: only by hand), read when the file is parsed.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

from airflow.providers.standard.operators.python import PythonOperator, ShortCircuitOperator
from airflow.sdk import DAG, Param

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project these files lie in: its mlops package

from mlops.core.environment import project_dir  # noqa: E402

PROJECT = project_dir(default=Path(__file__).resolve().parents[1])

from mlops.core.settings import load_settings  # noqa: E402
from mlops.orchestration.airflow_tasks import MonitorOperator, announce_drift, drift_detected, task_env  # noqa: E402
from mlops.orchestration.alerts import DriftNotifier, WebhookNotifier  # noqa: E402
from mlops.orchestration.assets import DRIFT_ASSET, NEW_LABELS_ASSET  # noqa: E402
from mlops.orchestration.triggers import announce_new_labels, new_labels_ready  # noqa: E402

SCHEDULE = load_settings(PROJECT / "params.yaml").monitor.schedule

with DAG(
    dag_id="monitoring",
    description="drift of the served traffic and live quality (mlops monitor), new trusted labels; on drift, "
                "a live quality breach or loop.min_new_labels new labels, the lifecycle retrains",
    schedule=SCHEDULE,
    catchup=False,
    max_active_runs=1,
    tags=["mlops", "monitoring"],
    params={
        "current": Param(
            None, type=["null", "string"], minLength=1, title="current",
            description="Traffic log (a directory or .jsonl file) or scored data file to compare with the "
                        "reference, for this run only; empty: $MLOPS_TRAFFIC_DIR, else logs/traffic.",
        ),
    },
    default_args={
        "retries": 1,
        "retry_delay": timedelta(seconds=30),
        "execution_timeout": timedelta(minutes=30),
        "on_failure_callback": WebhookNotifier("task_failed", str(PROJECT)),  # alert: see mlops/orchestration/alerts.py
    },
    doc_md=__doc__,
) as dag:
    monitor = MonitorOperator(
        task_id="monitor", project=str(PROJECT), env=task_env(PROJECT),
        doc_md="`mlops monitor --current <traffic> --out-dir reports/monitoring-runs/<run id>`\n\n**Reads** the "
               "traffic log (or the run's `current` param), the champion and its reference data.\n\n**Writes** "
               "`reports/monitoring-runs/<run id>/` (summary.json, report.html).\n\n**Skipped** when there is "
               "no traffic log yet and no `current` param: nothing to monitor.",
    )
    verdict = ShortCircuitOperator(
        task_id="drift_detected", python_callable=drift_detected, op_kwargs={"project": str(PROJECT)},
        retries=0, execution_timeout=timedelta(minutes=2),
        doc_md="The monitor's verdict and every signal's score; \"drift\" or a live quality breach lets "
               "`announce_drift` run."
               "\n\n**Reads** `reports/monitoring-runs/<run id>/summary.json`.\n\n**Writes** nothing.\n\n"
               "**Skipped** when `monitor` was (no traffic yet).",
    )
    announce = PythonOperator(
        task_id="announce_drift", python_callable=announce_drift, op_kwargs={"project": str(PROJECT)},
        outlets=[DRIFT_ASSET], retries=0, execution_timeout=timedelta(minutes=2),
        on_success_callback=DriftNotifier(str(PROJECT)),  # alert the `mlops_alerts` webhook per reason, if configured
        doc_md=f"Emit an event of `{DRIFT_ASSET.uri}` naming the report; the `lifecycle` DAG runs on it."
               f"\n\n**Reads** the run's summary.json.\n\n**Writes** the asset event.\n\n**Skipped** unless "
               f"the verdict is drift or a live quality breach (no_drift, insufficient_data).",
    )
    monitor >> verdict >> announce
    labels_ready = ShortCircuitOperator(
        task_id="new_labels", python_callable=new_labels_ready, op_kwargs={"project": str(PROJECT)},
        retries=0, execution_timeout=timedelta(minutes=5),
        doc_md="Count the trusted labels not in the champion's data (`mlops.loop.retrain.new_trusted_labels`); "
               "`loop.min_new_labels` of them let `announce_new_labels` run.\n\n**Reads** the feedback log "
               "(`$MLOPS_FEEDBACK_DIR/feedback.jsonl`), `feedback.batches_dir`, `feedback.held_dir` and "
               "`data/ingested.parquet`.\n\n**Writes** nothing.\n\n**Skipped** never; it skips "
               "`announce_new_labels` below the setting, or when the setting is null.",
    )
    announce_labels = PythonOperator(
        task_id="announce_new_labels", python_callable=announce_new_labels, op_kwargs={"project": str(PROJECT)},
        outlets=[NEW_LABELS_ASSET], retries=0, execution_timeout=timedelta(minutes=5),
        doc_md=f"Emit an event of `{NEW_LABELS_ASSET.uri}` with the count; the `lifecycle` DAG runs on it."
               f"\n\n**Reads** what `new_labels` reads.\n\n**Writes** the asset event.\n\n**Skipped** "
               f"while fewer than `loop.min_new_labels` new trusted labels are in the feedback store.",
    )
    labels_ready >> announce_labels
