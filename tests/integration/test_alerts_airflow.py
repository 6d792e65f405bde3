"""The alert path through Airflow itself: `airflow dags test` of a task that fails calls the notifier, and a
webhook on loopback, configured as the Airflow connection `mlops_alerts`, receives the alert."""

from __future__ import annotations

import json

import pytest

from tests.helpers import BIN, ROOT, project_env, run_cmd, webhook_receiver

pytestmark = pytest.mark.slow


def test_failed_task_alerts_the_webhook_connection(tmp_path):
    with webhook_receiver() as (url, received):
        env = project_env(ROOT) | {"AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                                   "AIRFLOW_CONN_MLOPS_ALERTS": url}
        run_cmd([str(BIN / "airflow"), "db", "migrate"], cwd=ROOT, env=env)
        result = run_cmd([str(BIN / "airflow"), "dags", "test", "batch_predict", "-c",
                          json.dumps({"input": "data/no/such/file.csv"})], cwd=ROOT, env=env, check=False)
    assert result.returncode != 0
    assert len(received) == 1, result.stdout[-3000:] + result.stderr[-3000:]
    alert = received[0]["body"]
    assert alert["event"] == "task_failed" and alert["dag_id"] == "batch_predict" and alert["task_id"] == "predict"
    assert "data/no/such/file.csv: no such file" in alert["error"]
