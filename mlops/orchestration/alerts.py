"""Alerts through Airflow's own notifier mechanism: a failed task, drift, a live quality breach, a rejected model.

`WebhookNotifier` is an Airflow `BaseNotifier`, attached to the DAGs as a
callback (`on_failure_callback` for failed tasks, `on_success_callback` of
`announce_drift` for drift and a live quality breach, each its own alert, and
of `gate_decision` for a rejected model; `mlops promote` sends `canary_ended`
itself, mlops/serving/canary_rollout.py). It
POSTs one JSON document to the URL of the Airflow connection `mlops_alerts`
(`MLOPS_ALERT_CONN_ID` names another), e.g.

    AIRFLOW_CONN_MLOPS_ALERTS='https://hooks.slack.com/services/T000/B000/XXXX'

or a connection made in the UI / `airflow connections add`. The body has a
`text` line (what Slack and most chat webhooks show) and the details as
fields. No connection (the default): no alert, one log line saying so. A
webhook that fails is logged, never fails the task. `alerts.notifier` in
params.yaml sends the same alert by e-mail, Slack, Apprise or PagerDuty
instead, through Airflow's provider notifiers (mlops/orchestration/notifiers.py).
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from airflow.sdk import BaseNotifier

from mlops.core.environment import environment, project_dir
from mlops.core.errors import MlopsError
from mlops.core.redact import redact, redact_all
from mlops.core.settings import AlertSettings, load_settings
from mlops.orchestration.airflow_tasks import read_decision
from mlops.orchestration.notifiers import deliver
from mlops.orchestration.runs import monitoring_run_dir

DEFAULT_CONN_ID = "mlops_alerts"
EVENTS = {
    "task_failed": "task {task_id} of {dag_id} failed (run {run_id}, try {try_number})",
    "drift": "drift in served traffic: {drifted} drifted (monitoring run {run_id})",
    "live_quality_breach": "live quality breach: {breach} (monitoring run {run_id})",
    "model_rejected": "the gate rejected the candidate model: {reasons} (run {run_id})",
    "canary_ended": "canary of {model} {outcome}: {reason}; champion {champion}",
}


def conn_id() -> str:

    return environment().alert_conn_id


def webhook_url(connection_id: str) -> str | None:
    """The webhook URL of an Airflow connection, or None when the connection is not defined.

    `extra.url` wins; else scheme (conn_type http/https), host, port and path (schema), the other extras as
    query parameters, as Airflow parses `AIRFLOW_CONN_<ID>='https://host/path?k=v'`."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        connection = BaseHook.get_connection(connection_id)
    except AirflowNotFoundException:
        return None
    extra = dict(connection.extra_dejson or {})
    if extra.get("url"):
        return str(extra["url"])
    scheme = connection.conn_type if connection.conn_type in ("http", "https") else "https"
    host = connection.host or ""
    if "://" in host:  # a host given as a whole URL
        base = host.rstrip("/")
    else:
        base = f"{scheme}://{host}" + (f":{connection.port}" if connection.port else "")
    path = f"/{connection.schema.lstrip('/')}" if connection.schema else ""
    return base + path + (f"?{urlencode(extra)}" if extra else "")


def alert_body(event: str, context: Any, **details: Any) -> dict[str, Any]:
    """The JSON an alert carries: a human line in `text` and the fields it was made from, secrets redacted
    (an error's text may name a remote with its token; the webhook is someone else's service)."""

    task_instance = context.get("ti") or context.get("task_instance")
    fields = {
        "event": event,
        "dag_id": getattr(context.get("dag"), "dag_id", None) or getattr(task_instance, "dag_id", None),
        "task_id": getattr(task_instance, "task_id", None),
        "run_id": context.get("run_id") or getattr(task_instance, "run_id", None),
        "try_number": getattr(task_instance, "try_number", None),
        **details,
    }
    exception = context.get("exception")
    if exception is not None:
        message = redact(exception)  # before it is cut: a secret cut in two would no longer match
        fields["error"] = message.splitlines()[0][:500] if message else type(exception).__name__
    text = EVENTS[event].format_map({k: ("-" if v is None else v) for k, v in fields.items()} | {
        "drifted": ", ".join(details.get("drifted_signals") or []) or "signals",
        "reasons": "; ".join(details.get("reasons") or []) or "see the decision",
        "breach": (details.get("live_quality_breach") or {}).get("reason") or "see the monitoring summary",
    })
    return redact_all({"text": f"[mlops] {text}", **fields})


def post(url: str, body: dict[str, Any], timeout: float = 10) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status


class WebhookNotifier(BaseNotifier):
    """POST an alert for `event` to the webhook of the alert connection, if one is configured."""

    def __init__(self, event: str, project: str | None = None) -> None:
        super().__init__()
        if event not in EVENTS:
            raise ValueError(f"unknown alert event {event!r}; one of {', '.join(EVENTS)}")
        self.event = event
        self.project = project

    def details(self, context: Any) -> dict[str, Any] | None:
        """What this event adds to the alert; None: nothing to alert about."""
        return {}

    def alerts(self, context: Any) -> list[tuple[str, dict[str, Any]]]:
        """The alerts to send, as (event, details): this notifier's event, unless `details` says nothing."""
        details = self.details(context)
        return [] if details is None else [(self.event, details)]

    def notify(self, context: Any) -> None:
        for event, details in self.alerts(context):
            self.send(event, context, details)

    def settings(self) -> Any:
        """params.yaml's `alerts` (read when an alert is sent: the DAG's shape never depends on it); unreadable,
        the defaults (the webhook), said in the log."""

        path = Path(self.project or project_dir()) / "params.yaml"
        try:
            return load_settings(path).alerts
        except MlopsError as error:
            print(f"alerts: {error}; using the webhook", flush=True)
            return AlertSettings()

    def send(self, event: str, context: Any, details: dict[str, Any]) -> None:

        connection_id = conn_id()
        alerts = self.settings()
        if alerts.notifier != "webhook":
            return self.send_by_provider(event, alerts, connection_id, alert_body(event, context, **details))
        url = webhook_url(connection_id)
        if url is None:
            print(f"alert {event}: no Airflow connection {connection_id!r}, nothing sent", flush=True)
            return
        body = alert_body(event, context, **details)
        try:
            status = post(url, body)
            print(f"alert {event}: sent to connection {connection_id!r} (HTTP {status})", flush=True)
        except OSError as error:  # the alert is lost, the task's outcome is not changed
            print(redact(f"alert {event}: webhook of connection {connection_id!r} failed: {error}"), flush=True)

    @staticmethod
    def send_by_provider(event: str, alerts: Any, connection_id: str, body: dict[str, Any]) -> None:
        """Through the Airflow provider's notifier (mlops/orchestration/notifiers.py); a missing connection, a
        missing provider or a refusing server is one log line, never a failed task."""
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException


        try:
            BaseHook.get_connection(connection_id)
        except AirflowNotFoundException:
            print(f"alert {event}: no Airflow connection {connection_id!r}, nothing sent", flush=True)
            return
        try:
            done = deliver(alerts.notifier, connection_id, body, alerts)
            print(f"alert {event}: {done} through connection {connection_id!r} ({alerts.notifier})", flush=True)
        except Exception as error:  # noqa: BLE001 - any provider's failure: the alert is lost, the task is not
            print(redact(f"alert {event}: {alerts.notifier} through connection {connection_id!r} failed: "
                         f"{type(error).__name__}: {error}"), flush=True)


class DriftNotifier(WebhookNotifier):
    """On `announce_drift`'s success (it runs for a drift verdict or a live quality breach): a `drift` alert with
    the drifted signals and the report, and a `live_quality_breach` alert with the breach, each when it holds."""

    def __init__(self, project: str) -> None:
        super().__init__("drift", project)

    def summary(self, context: Any) -> tuple[dict[str, Any], Path]:

        folder = monitoring_run_dir(Path(self.project or "."), context["run_id"])
        summary_path = folder / "summary.json"
        return (json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else {}), folder

    def details(self, context: Any) -> dict[str, Any] | None:
        summary, folder = self.summary(context)
        if summary.get("status") != "drift":
            return None
        signals = summary.get("signals") or {}
        return {"drifted_signals": sorted(name for name, s in signals.items() if s.get("drifted")),
                "scores": {name: s.get("score") for name, s in signals.items()},
                "report": str(folder / "report.html"), "summary": str(folder / "summary.json")}

    def alerts(self, context: Any) -> list[tuple[str, dict[str, Any]]]:
        found = super().alerts(context)
        summary, folder = self.summary(context)
        if summary.get("live_quality_breach"):
            found.append(("live_quality_breach", {
                "live_quality_breach": summary["live_quality_breach"],
                "live_quality": (summary.get("live_quality") or {}).get(summary["live_quality_breach"].get(
                    "model_version"), {}).get("window"),
                "report": str(folder / "report.html"), "summary": str(folder / "summary.json")}))
        return found


class RejectedModelNotifier(WebhookNotifier):
    """On `gate_decision`'s success: an alert only when the gate's decision rejected the candidate."""

    def __init__(self, project: str, decision: str) -> None:
        super().__init__("model_rejected", project)
        self.decision = decision

    def details(self, context: Any) -> dict[str, Any] | None:

        verdict, where = read_decision(self.project or ".", self.decision, context.get("run_id"))
        verdict = verdict or {}
        if verdict.get("accepted", True):
            return None
        return {"reasons": verdict.get("reasons", []), "basis": verdict.get("basis"), "decision": where,
                "next_step": verdict.get("next_step")}
