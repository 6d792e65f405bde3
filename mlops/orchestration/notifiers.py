"""Where an alert goes (`alerts.notifier` in params.yaml): a webhook, or one of Airflow's provider notifiers.

Every channel carries the same message, built here from the alert's fields
(mlops/orchestration/alerts.py): a title (what happened), the evidence (the
fields: task, run, error, drifted signals and scores, the gate's reasons) and
links to the reports (the run in the Airflow UI when AIRFLOW__API__BASE_URL
is set, and the report, summary and decision files). The webhook posts it as
JSON (`text` plus the fields, as before); `smtp` (locked, the SMTP provider),
`slack`, `apprise` and `pagerduty` (each its Airflow provider, an optional
extra of the same name) hand it to the provider's own notifier. Every
channel is the Airflow connection `mlops_alerts` (MLOPS_ALERT_CONN_ID names
another) of the type that provider reads, so passwords and tokens live in the
connection (or the environment that defines it), never in params.yaml, and
are never printed.
"""

from __future__ import annotations

import html
import json
import os
from typing import Any

from mlops.core.errors import MlopsError

NOTIFIERS = ("webhook", "slack", "smtp", "apprise", "pagerduty")
PROVIDERS = {  # notifier -> (module of its Airflow notifier, the pip package, the project's extra)
    "smtp": ("airflow.providers.smtp.notifications.smtp", "apache-airflow-providers-smtp", "smtp"),
    "slack": ("airflow.providers.slack.notifications.slack_webhook", "apache-airflow-providers-slack", "slack"),
    "apprise": ("airflow.providers.apprise.notifications.apprise", "apache-airflow-providers-apprise", "apprise"),
    "pagerduty": ("airflow.providers.pagerduty.notifications.pagerduty", "apache-airflow-providers-pagerduty",
                  "pagerduty"),
}
LINK_FIELDS = ("report", "summary", "decision")  # the alert fields that name a report file
QUIET_FIELDS = ("text", "event", *LINK_FIELDS)  # said by the title or the links already


def links(body: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, target) of the alert's reports: the run in the Airflow UI, then its report files."""
    found = []
    base = os.environ.get("AIRFLOW__API__BASE_URL", "").rstrip("/")
    if base and body.get("dag_id") and body.get("run_id"):
        from urllib.parse import quote

        found.append(("Airflow run", f"{base}/dags/{quote(str(body['dag_id']))}/runs/{quote(str(body['run_id']))}"))
    found += [(name, str(body[name])) for name in LINK_FIELDS if body.get(name)]
    return found


def evidence(body: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, value as text) of everything the alert knows but the title and links."""
    return [(name, value if isinstance(value, str) else json.dumps(value, default=str))
            for name, value in body.items() if name not in QUIET_FIELDS and value not in (None, "", [], {})]


def message(body: dict[str, Any]) -> dict[str, str]:
    """The one message every channel carries: `title`, `text` (plain) and `html` (e-mail), from the alert body
    (already redacted by `alert_body`)."""
    title = str(body["text"])
    found, linked = evidence(body), links(body)
    text = "\n".join([title, "", *(f"{name}: {value}" for name, value in found),
                      *([""] + [f"{label}: {target}" for label, target in linked] if linked else [])])
    rows = "".join(f"<tr><th align='left'>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>"
                   for name, value in found)
    items = "".join(f"<li><a href='{html.escape(target, quote=True)}'>{html.escape(label)}</a>: "
                    f"{html.escape(target)}</li>" for label, target in linked)
    page = (f"<p><b>{html.escape(title)}</b></p><table>{rows}</table>"
            + (f"<p>Reports:</p><ul>{items}</ul>" if items else ""))
    return {"title": title, "text": text, "html": page}


def provider_notifier(notifier: str) -> Any:
    """The provider's notifier module, or a clear error naming what to install."""
    import importlib


    module, package, extra = PROVIDERS[notifier]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MlopsError(f"alerts.notifier is {notifier}, but {package} is not installed: "
                         f"pip install -e '.[{extra}]'") from None


def deliver(notifier: str, connection_id: str, body: dict[str, Any], alerts: Any) -> str:
    """Send `body` through the provider notifier `notifier` over the connection; returns what was done, for the
    log. Provider notifiers are called with their `notify` directly: the message is built here, not rendered
    as a template (an error text may hold `{{`)."""
    content = message(body)
    module = provider_notifier(notifier)
    if notifier == "smtp":
        if not alerts.to:

            raise MlopsError("alerts.notifier is smtp, but alerts.to names no recipient")
        module.SmtpNotifier(to=list(alerts.to), from_email=alerts.from_email, subject=content["title"],
                            html_content=content["html"], smtp_conn_id=connection_id).notify({})
        return f"e-mailed to {len(alerts.to)} recipient(s)"
    if notifier == "slack":
        module.SlackWebhookNotifier(slack_webhook_conn_id=connection_id, text=content["text"]).notify({})
        return "posted to Slack"
    if notifier == "apprise":
        module.AppriseNotifier(title=content["title"], body=content["text"], apprise_conn_id=connection_id).notify({})
        return "sent through Apprise"
    module.PagerdutyNotifier(summary=content["title"][:1024], severity=alerts.pagerduty_severity, source="mlops",
                             custom_details={**dict(evidence(body)), **dict(links(body))},
                             dedup_key=f"{body.get('event')}-{body.get('dag_id')}-{body.get('run_id')}",
                             pagerduty_events_conn_id=connection_id).notify({})
    return "triggered a PagerDuty event"
