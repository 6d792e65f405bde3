"""The alert path through Airflow itself: `airflow dags test` of a task that fails calls the notifier, and a
webhook on loopback, configured as the Airflow connection `mlops_alerts`, receives the alert."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tests.helpers import BIN, ROOT, project_env, run_cmd

pytestmark = pytest.mark.slow


def test_failed_task_alerts_the_webhook_connection(tmp_path):
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = project_env(ROOT) | {"AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                               "AIRFLOW_CONN_MLOPS_ALERTS": f"http://127.0.0.1:{server.server_port}/hook"}
    try:
        run_cmd([str(BIN / "airflow"), "db", "migrate"], cwd=ROOT, env=env)
        result = run_cmd([str(BIN / "airflow"), "dags", "test", "batch_predict", "-c",
                          json.dumps({"input": "no/such/file.csv"})], cwd=ROOT, env=env, check=False)
    finally:
        server.shutdown()
    assert result.returncode != 0
    assert len(received) == 1, result.stdout[-3000:] + result.stderr[-3000:]
    alert = received[0]
    assert alert["event"] == "task_failed" and alert["dag_id"] == "batch_predict" and alert["task_id"] == "predict"
    assert "no/such/file.csv: no such file" in alert["error"]
