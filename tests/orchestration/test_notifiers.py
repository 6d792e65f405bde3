"""alerts.notifier: one message for every channel; the webhook and Airflow's SMTP notifier reach loopback receivers."""

from __future__ import annotations

import email
import json
from email import policy
from types import SimpleNamespace

import pytest
import yaml

from mlops.orchestration.alerts import RejectedModelNotifier, WebhookNotifier
from mlops.orchestration.notifiers import message
from tests.helpers import ROOT, free_port, webhook_receiver

PASSWORD = "smtp-pa55word-value"


def project_with(tmp_path, **alerts):
    """A project whose params.yaml sets `alerts`, with a rejecting gate decision."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["alerts"].update(alerts)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    decision = tmp_path / "reports/gate/decision.json"
    decision.parent.mkdir(parents=True)
    decision.write_text(json.dumps({"accepted": False, "reasons": ["macro-F1 0.41 < 0.6"], "basis": "first run",
                                    "next_step": "label more texts"}))
    return tmp_path, str(decision.relative_to(tmp_path))


def context(run_id="manual__1"):
    return {"ti": SimpleNamespace(task_id="gate_decision", dag_id="lifecycle", run_id=run_id, try_number=1),
            "run_id": run_id}


@pytest.fixture
def smtp_server():
    """An SMTP server on loopback that asks for a login: yields (port, messages, logins)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    messages, logins = [], []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
            messages.append({"to": list(envelope.rcpt_tos), "from": envelope.mail_from,
                             "message": email.message_from_bytes(envelope.content, policy=policy.default)})
            return "250 OK"

    def authenticate(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=auth_data.password.decode() == PASSWORD)

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, authenticator=authenticate,
                            auth_require_tls=False)
    controller.start()
    try:
        yield port, messages, logins
    finally:
        controller.stop()


def test_smtp_alert_reaches_the_server_with_the_message_and_no_password_in_the_log(
        tmp_path, monkeypatch, capsys, smtp_server):
    # given alerts.notifier smtp, and the connection (with its password) in the environment only
    port, messages, logins = smtp_server
    project, decision = project_with(tmp_path, notifier="smtp", to=["ops@example.com"], from_email="mlops@example.com")
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_ALERTS", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": port, "login": "mlops", "password": PASSWORD,
        "extra": {"disable_ssl": True, "disable_tls": True, "retry_limit": 0, "timeout": 10}}))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.example:8080")
    # when the gate rejects the model
    RejectedModelNotifier(str(project), decision).notify(context())
    # then Airflow's SMTP notifier logged in and delivered one e-mail to the recipients
    assert logins == [("mlops", PASSWORD)] and len(messages) == 1
    sent = messages[0]
    assert sent["to"] == ["ops@example.com"] and sent["from"] == "mlops@example.com"
    assert sent["message"]["Subject"] == ("[mlops] the gate rejected the candidate model: macro-F1 0.41 < 0.6 "
                                          "(run manual__1)")
    page = sent["message"].get_body(("html",)).get_content()
    # with the evidence and the links to the reports
    assert "macro-F1 0.41 &lt; 0.6" in page and "label more texts" in page
    assert "http://airflow.example:8080/dags/lifecycle/runs/manual__1" in page and decision in page
    # and the log says where it went, never the password
    out = capsys.readouterr().out
    assert "alert model_rejected: e-mailed to 1 recipient(s) through connection 'mlops_alerts' (smtp)" in out
    assert PASSWORD not in out


@pytest.mark.slow  # the server answers a refused login after a delay
def test_a_refused_login_is_one_log_line_without_the_password(tmp_path, monkeypatch, capsys, smtp_server):
    port, messages, _ = smtp_server
    project, decision = project_with(tmp_path, notifier="smtp", to=["ops@example.com"], from_email="m@example.com")
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_ALERTS", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": port, "login": "mlops", "password": "wrong-" + PASSWORD,
        "extra": {"disable_ssl": True, "disable_tls": True, "retry_limit": 0, "timeout": 10}}))
    RejectedModelNotifier(str(project), decision).notify(context())  # does not raise: the task is unchanged
    out = capsys.readouterr().out
    assert messages == [] and "alert model_rejected: smtp through connection 'mlops_alerts' failed" in out
    assert PASSWORD not in out


def test_the_webhook_stays_the_default_and_carries_the_same_message(tmp_path, monkeypatch):
    project, decision = project_with(tmp_path)  # alerts.notifier: webhook, as shipped
    with webhook_receiver("/hooks/mlops") as (url, received):
        monkeypatch.setenv("AIRFLOW_CONN_MLOPS_ALERTS", url)
        RejectedModelNotifier(str(project), decision).notify(context())
    body = received[0]["body"]
    assert body["text"] == "[mlops] the gate rejected the candidate model: macro-F1 0.41 < 0.6 (run manual__1)"
    text = message(body)["text"]
    assert text.startswith(body["text"] + "\n\n") and "reasons: [\"macro-F1 0.41 < 0.6\"]" in text
    assert f"decision: {project / decision}" in text


def test_a_provider_that_is_not_installed_is_named(tmp_path, monkeypatch, capsys):
    import importlib

    project, _ = project_with(tmp_path, notifier="pagerduty")
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_ALERTS", json.dumps({"conn_type": "pagerduty_events", "password": "k"}))
    real = importlib.import_module

    def without_pagerduty(name, *args):
        if name.startswith("airflow.providers.pagerduty"):
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", without_pagerduty)
    WebhookNotifier("task_failed", str(project)).notify(context())
    assert ("alerts.notifier is pagerduty, but apache-airflow-providers-pagerduty is not installed: "
            "pip install -e '.[pagerduty]'") in capsys.readouterr().out
