"""The `alerts` section: where the DAGs' alerts go."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlops.core.sections.base import Strict


class AlertSettings(Strict):
    """Where alerts go (mlops/orchestration/notifiers.py): the channel; its address and secrets are the Airflow
    connection `mlops_alerts` (MLOPS_ALERT_CONN_ID names another), never this file."""
    notifier: Literal["webhook", "slack", "smtp", "apprise", "pagerduty"] = Field(
        default="webhook", description="The channel: `webhook` (a JSON POST), or the Airflow provider notifier "
                                       "`smtp`, `slack` (incoming webhook), `apprise` or `pagerduty` (each an "
                                       "optional extra of that name); every one carries the same message.")
    to: tuple[str, ...] = Field(default=(), description="`smtp`: the recipients' e-mail addresses.")
    from_email: str | None = Field(default=None, description="`smtp`: the sender (null: the connection's "
                                                             "`from_email` extra).")
    pagerduty_severity: Literal["critical", "error", "warning", "info"] = Field(
        default="error", description="`pagerduty`: the severity of the events triggered.")
