"""The Airflow assets that close the loop: monitoring produces them, the lifecycle is scheduled on them.

`announce_drift` in the `monitoring` DAG emits an event of DRIFT_ASSET when
the monitor's verdict is drift or the trusted labels show a live accuracy
breach; its `extra` names the report, the summary, the drifted signals, the
reasons (`drift`, `live_quality_breach`) and the monitoring run.
`announce_new_labels` emits an event of NEW_LABELS_ASSET when the trusted
labels the champion's data lacks reach `loop.min_new_labels`. The `lifecycle`
DAG is scheduled on `DRIFT_ASSET | NEW_LABELS_ASSET` (and `loop.schedule`,
mlops/orchestration/triggers.py), so each such event (or several, queued
while a run was active) starts one asset-triggered lifecycle run, whose
`configure` task writes the triggering event(s) and the trigger's name into
the run's record.

The URI uses a scheme of its own: Airflow treats it as an opaque identifier
(only `airflow` is reserved), and it does not depend on where the project
lives, so the DAG processor, the scheduler and every worker agree on it.
"""

from __future__ import annotations

from airflow.sdk import Asset

DRIFT_ASSET = Asset(name="mlops-drift", uri="mlops://monitoring/drift", group="mlops")
# The feedback store holds enough trusted labels the champion's data lacks (loop.min_new_labels); `extra`: the count
NEW_LABELS_ASSET = Asset(name="mlops-new-labels", uri="mlops://feedback/new-labels", group="mlops")
# The lifecycle's `record` task emits one event per run: its `extra` is the run's verdict
# (mlops/orchestration/verdict.py); nothing is scheduled on it, it is where the UI and the REST API show it
VERDICT_ASSET = Asset(name="mlops-lifecycle-verdict", uri="mlops://lifecycle/verdict", group="mlops")
