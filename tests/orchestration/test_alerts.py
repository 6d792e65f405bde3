"""Alerts through Airflow notifiers: a loopback webhook receives one for a failed task, drift, a live quality breach,
a rejected model."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from mlops.orchestration.alerts import DriftNotifier, RejectedModelNotifier, WebhookNotifier, webhook_url
from mlops.orchestration.runs import monitoring_run_dir
from tests.helpers import ROOT, project_env, webhook_receiver


@pytest.fixture
def receiver(monkeypatch):
    """A webhook on loopback, configured as the Airflow connection `mlops_alerts`; yields what it received."""
    with webhook_receiver("/hooks/mlops") as (url, received):
        monkeypatch.setenv("AIRFLOW_CONN_MLOPS_ALERTS", url)
        yield received


def task_context(run_id="manual__1", task_id="train", **more):
    ti = SimpleNamespace(task_id=task_id, dag_id="lifecycle", run_id=run_id, try_number=3)
    return {"ti": ti, "run_id": run_id, **more}


def test_failed_task_alert(receiver, capsys):
    WebhookNotifier("task_failed").notify(task_context(exception=RuntimeError("stage train failed (dvc exit 1)")))
    assert len(receiver) == 1 and receiver[0]["path"] == "/hooks/mlops"
    body = receiver[0]["body"]
    assert body["event"] == "task_failed" and body["task_id"] == "train" and body["dag_id"] == "lifecycle"
    assert body["error"] == "stage train failed (dvc exit 1)" and body["try_number"] == 3
    assert body["text"] == "[mlops] task train of lifecycle failed (run manual__1, try 3)"
    assert "sent to connection 'mlops_alerts' (HTTP 204)" in capsys.readouterr().out


def test_an_alert_carries_no_secret(receiver, monkeypatch, capsys):
    """The webhook is someone else's service: an error that quotes a token, a URL's credentials or a secret of
    the environment reaches it masked, whatever field holds it."""
    monkeypatch.setenv("MLOPS_API_KEY", "api-k3y-value")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG")
    error = RuntimeError("git push https://bot:ghp_t0ken@git.example/o/p.git failed; key api-k3y-value; "
                         "Authorization: Bearer eyJ.abc.def; aws wJalrXUtnFEMI/K7MDENG")
    WebhookNotifier("task_failed").notify(task_context(exception=error, run_id="manual__api-k3y-value"))
    body = receiver[0]["body"]
    assert body["error"] == ("git push https://***@git.example/o/p.git failed; key ***; Authorization: Bearer ***; "
                             "aws ***")
    assert body["run_id"] == "manual__***" and body["text"].endswith("(run manual__***, try 3)")
    for secret in ("ghp_t0ken", "bot:", "api-k3y-value", "eyJ.abc.def", "wJalrXUtnFEMI/K7MDENG"):
        assert secret not in json.dumps(body) and secret not in capsys.readouterr().out


def test_drift_alert_names_the_drifted_signals_and_the_report(receiver, tmp_path):
    run_id = "scheduled__2026-12-01T10:00:00+00:00"
    folder = monitoring_run_dir(tmp_path, run_id)
    folder.mkdir(parents=True)
    signals = {"embedding": {"score": 0.93, "drifted": True}, "text_length": {"score": 0.4, "drifted": True},
               "confidence": {"score": 0.01, "drifted": False}}
    (folder / "summary.json").write_text(json.dumps({"status": "drift", "signals": signals}))
    DriftNotifier(str(tmp_path)).notify({"run_id": run_id})
    body = receiver[0]["body"]
    assert body["event"] == "drift" and body["drifted_signals"] == ["embedding", "text_length"]
    assert body["scores"]["embedding"] == 0.93 and body["report"] == str(folder / "report.html")
    assert body["text"].startswith("[mlops] drift in served traffic: embedding, text_length drifted")
    (folder / "summary.json").write_text(json.dumps({"status": "no_drift", "signals": signals}))
    DriftNotifier(str(tmp_path)).notify({"run_id": run_id})
    assert len(receiver) == 1  # no drift, no alert


def test_a_live_quality_breach_alerts_on_its_own(receiver, tmp_path):
    """Given a monitoring summary with no drift but a live quality breach, then one alert names the breach; with
    drift too, the drift alert and the breach alert both go."""
    run_id = "scheduled__2026-12-01T11:00:00+00:00"
    folder = monitoring_run_dir(tmp_path, run_id)
    folder.mkdir(parents=True)
    breach = {"model_version": "m:v1", "accuracy": 0.5, "accuracy_ci": [0.4314, 0.5686], "min_accuracy": 0.8,
              "reason": "live accuracy of m:v1 is 0.5 (95% CI 0.4314-0.5686, 200 labels): even its upper bound is "
                        "below gate.min_accuracy 0.8"}
    window = {"status": "measured", "labelled": 200, "accuracy": 0.5, "accuracy_ci": [0.4314, 0.5686]}
    summary = {"status": "no_drift", "signals": {"embedding": {"score": 0.5, "drifted": False}},
               "live_quality": {"m:v1": {"window": window}}, "live_quality_breach": breach}
    (folder / "summary.json").write_text(json.dumps(summary))
    DriftNotifier(str(tmp_path)).notify({"run_id": run_id})
    assert [r["body"]["event"] for r in receiver] == ["live_quality_breach"]
    body = receiver[0]["body"]
    assert body["text"] == f"[mlops] live quality breach: {breach['reason']} (monitoring run {run_id})"
    assert body["live_quality"] == window and body["report"] == str(folder / "report.html")

    (folder / "summary.json").write_text(json.dumps(summary | {"status": "drift", "signals": {
        "embedding": {"score": 0.9, "drifted": True}}}))
    DriftNotifier(str(tmp_path)).notify({"run_id": run_id})
    assert [r["body"]["event"] for r in receiver[1:]] == ["drift", "live_quality_breach"]


def test_rejected_model_alert_only_when_rejected(receiver, tmp_path):
    decision = tmp_path / "reports/gate/decision.json"
    decision.parent.mkdir(parents=True)
    decision.write_text(json.dumps({"accepted": True, "basis": "first run", "reasons": ["all passed"]}))
    notifier = RejectedModelNotifier(str(tmp_path), "reports/gate/decision.json")
    notifier.notify(task_context(task_id="gate_decision"))
    assert receiver == []
    decision.write_text(json.dumps({"accepted": False, "basis": "absolute thresholds",
                                    "reasons": ["min_accuracy: observed 0.41 vs 0.8"]}))
    notifier.notify(task_context(task_id="gate_decision"))
    body = receiver[0]["body"]
    assert body["event"] == "model_rejected" and body["reasons"] == ["min_accuracy: observed 0.41 vs 0.8"]
    assert "rejected the candidate model: min_accuracy: observed 0.41 vs 0.8" in body["text"]


def test_no_connection_no_alert_and_a_dead_webhook_never_fails_the_task(monkeypatch, capsys):
    monkeypatch.delenv("AIRFLOW_CONN_MLOPS_ALERTS", raising=False)
    WebhookNotifier("task_failed").notify(task_context())
    assert "no Airflow connection 'mlops_alerts', nothing sent" in capsys.readouterr().out
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_ALERTS", "http://127.0.0.1:9/nothing-listens")
    WebhookNotifier("task_failed").notify(task_context())
    assert "webhook of connection 'mlops_alerts' failed" in capsys.readouterr().out


def test_webhook_url_from_the_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_ALERTS", "https://hooks.example.com/services/T0/B0/X?channel=ml")
    assert webhook_url("mlops_alerts") == "https://hooks.example.com/services/T0/B0/X?channel=ml"
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_ALERTS", json.dumps({"conn_type": "http",
                                                                "extra": {"url": "http://127.0.0.1:8/a"}}))
    assert webhook_url("mlops_alerts") == "http://127.0.0.1:8/a"
    assert webhook_url("no_such_connection") is None
    with pytest.raises(ValueError, match="unknown alert event"):
        WebhookNotifier("weather")


PROBE = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag('dags')
def names(callbacks):
    callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
    return [type(c).__name__ if not callable(c) or hasattr(c, 'notify') else c.__name__ for c in callbacks if c]
lifecycle, monitoring, batch = (bag.dags[d] for d in ('lifecycle', 'monitoring', 'batch_predict'))
print(json.dumps({
    'errors': {k: str(v) for k, v in bag.import_errors.items()},
    'lifecycle_failure': {t.task_id: names(t.on_failure_callback) for t in lifecycle.tasks},
    'gate': names(lifecycle.get_task('gate_decision').on_success_callback),
    'drift': names(monitoring.get_task('announce_drift').on_success_callback),
    'monitoring_failure': names(monitoring.get_task('monitor').on_failure_callback),
    'batch_failure': names(batch.get_task('predict').on_failure_callback),
}))
"""


@pytest.mark.slow  # parses the DAGs in a fresh interpreter (seconds)
def test_dags_attach_the_notifiers(tmp_path):
    env = project_env(ROOT) | {"AIRFLOW_HOME": str(tmp_path / "airflow-home")}
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    assert all(names == ["on_failure", "WebhookNotifier"] for names in report["lifecycle_failure"].values())
    assert report["gate"] == ["RejectedModelNotifier"] and report["drift"] == ["DriftNotifier"]
    assert report["monitoring_failure"] == ["WebhookNotifier"] == report["batch_failure"]
