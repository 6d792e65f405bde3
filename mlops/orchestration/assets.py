"""The Airflow asset that closes the loop: monitoring produces it on drift, the lifecycle is scheduled on it.

`announce_drift` in the `monitoring` DAG emits an event of DRIFT_ASSET only
when the monitor's verdict is drift; its `extra` names the report, the
summary, the drifted signals and the monitoring run. The `lifecycle` DAG has
`schedule=[DRIFT_ASSET]`, so each such event (or several, queued while a run
was active) starts one asset-triggered lifecycle run, whose `configure` task
writes the triggering report(s) into the run's record.

The URI uses a scheme of its own: Airflow treats it as an opaque identifier
(only `airflow` is reserved), and it does not depend on where the project
lives, so the DAG processor, the scheduler and every worker agree on it.
"""

from __future__ import annotations

from airflow.sdk import Asset

DRIFT_ASSET = Asset(name="mlops-drift", uri="mlops://monitoring/drift", group="mlops")
# The lifecycle's `record` task emits one event per run: its `extra` is the run's verdict
# (mlops/orchestration/verdict.py); nothing is scheduled on it, it is where the UI and the REST API show it
VERDICT_ASSET = Asset(name="mlops-lifecycle-verdict", uri="mlops://lifecycle/verdict", group="mlops")
