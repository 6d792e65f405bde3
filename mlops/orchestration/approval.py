"""A person's approval before the lifecycle DAG promotes: `promote.approval: human` in params.yaml.

Labels that come from outside the team (feedback posted to the service) can
retrain and, through the gate, replace the champion with no one looking. With
`human`, the `approve` task between `package` and `promote` is Airflow's
human-in-the-loop `ApprovalOperator`: it shows the gate's decision, its
reasons, the candidate and its model card in the UI's *Required actions* and
the REST API's hitlDetails, and waits (holding no worker slot) for Approve or
Reject. Every run of the DAG with a new candidate waits, whatever started it
(drift, new feedback labels, a trigger by hand): a run started by hand can
carry the same outside labels. `mlops promote` on the command line never
waits; whoever runs it is the person approving.

Reject, or no answer within `promote.approval_timeout_h` (the default answer
is Reject), skips `promote`: nothing is promoted, the champion is unchanged,
the task log and the run's record (reports/runs/<run id>/approval.json, and
run.json's promotion result) say who decided, or that no one did. The run
itself succeeds: a refusal is a decision, not a failure.

With `auto` (the default) the task skips itself at run time and `promote`
follows `package` as before; so it does when the candidate already is the
champion (package "unchanged", e.g. a drift run without new labels), since
promoting it changes nothing. The setting is read when the task runs, from the
params.yaml the run uses, so the DAG's structure never depends on it.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, DownstreamTasksSkipped

from mlops.core.errors import MlopsError
from mlops.core.records import GateDecision, PackageResult
from mlops.core.settings import parse_settings
from mlops.orchestration.runs import APPROVAL_FILE, run_dir, write_text
from mlops.orchestration.task_workspace import workspace_for

CARD_CHARS = 30_000  # the model card shown in the request's body, at most (the whole card is at its path)
DEFAULT_TIMEOUT = timedelta(hours=72)  # promote.approval_timeout_h's default; the run's value wins at run time


def read_run_text(project: str, run_id: str, name: str) -> tuple[str | None, str]:
    """A file of this run (project-relative `name`), from the project or, isolated, from the run's branch."""

    return workspace_for(project).read_run_file(run_id, name)


def read_record(kind: type[GateDecision] | type[PackageResult], text: str, where: str) -> Any:
    """A record of this run from its text; a broken or foreign one fails the task, naming the file."""
    try:
        return kind.model_validate(json.loads(text))
    except ValueError as error:  # invalid JSON, or pydantic's ValidationError (a ValueError)
        raise AirflowFailException(f"error: {where}: not a {kind.__name__} record: {error}".splitlines()[0]) from None


def promote_settings(project: str, run_id: str) -> Any:
    """The run's `promote:` settings (its params.yaml, trigger overrides applied); a bad file fails the task."""

    text, where = read_run_text(project, run_id, "params.yaml")
    if text is None:
        raise AirflowFailException(f"error: no params.yaml at {where}")
    try:
        return parse_settings(yaml.safe_load(text), origin=where).promote
    except (MlopsError, yaml.YAMLError) as error:
        raise AirflowFailException(f"error: {error}".splitlines()[0]) from None


def approval_request(decision: GateDecision, decision_at: str, package: PackageResult | None,
                     card: str | None, card_at: str, run_id: str, started_by: str,
                     timeout: timedelta) -> tuple[str, str]:
    """The request's subject and Markdown body: what is being approved, and on what grounds."""
    verdict = "ACCEPTED" if decision.accepted else "REJECTED"
    model = (package and package.model) or "the candidate"
    subject = f"Promote {model} to champion? The gate {verdict.lower()} it ({decision.basis})"
    metrics = (package and package.metrics) or {}
    headline = ", ".join(f"{name} {value}" for name, value in metrics.items()) or "see the model card"
    hours = f"{timeout.total_seconds() / 3600:g} h"
    lines = [
        f"Lifecycle run `{run_id}`, {started_by}.",
        "",
        f"**Gate decision: {verdict}** ({decision.basis}), {decision.decided_at or '?'}; "
        f"`{decision_at}`. Reasons:",
        *(f"- {reason}" for reason in decision.reasons or ["none given"]),
        "",
        f"**Candidate:** model `{model}`, Bento `{(package and package.bento) or '?'}`, serve variant "
        f"`{(package and package.serve_variant) or '?'}`; {headline}.",
        f"**Model card:** `{card_at}` (in the model store: `bentoml models get {model}` shows the folder with "
        f"`MODEL_CARD.md`).",
        "",
        "**Approve**: `promote` starts the candidate's Bento, checks it (infra validation) and makes it champion. "
        f"**Reject**, or no answer within {hours}: nothing is promoted and the champion stays.",
    ]
    if card:
        shown = card if len(card) <= CARD_CHARS else card[:CARD_CHARS] + f"\n\n… (cut; the whole card: `{card_at}`)"
        lines += ["", "---", "", shown]
    else:
        lines += ["", f"No model card at `{card_at}`."]
    return subject, "\n".join(lines)


def started_by(context: Any) -> str:
    run_type = getattr(context.get("dag_run"), "run_type", None)
    run_type = str(getattr(run_type, "value", run_type) or "")  # the task SDK's DagRunType prints its name
    if run_type == "asset_triggered":
        return "started by drift (an event of the monitoring DAG's drift asset)"
    return "started by hand" if run_type == "manual" else f"started as a run of type {run_type or 'unknown'}"


def outcome_of(event: dict[str, Any], approved: bool, timeout_h: float | None) -> dict[str, Any]:
    """What the record keeps of the answer, with one line saying what it means for the promotion."""
    user = event.get("responded_by_user") or {}
    by = (user.get("name") or user.get("id")) if isinstance(user, dict) else str(user)
    at = event.get("responded_at")
    at = at.isoformat() if hasattr(at, "isoformat") else at
    if approved:
        line = f"promotion APPROVED by {by} at {at}: promote runs"
    elif event.get("timedout"):
        waited = f"{timeout_h:g} h" if timeout_h else "the response timeout"
        line = f"no answer within {waited} (counted as a rejection): nothing is promoted, the champion is unchanged"
    else:
        line = f"promotion REJECTED by {by} at {at}: nothing is promoted, the champion is unchanged"
    return {"approved": approved, "by": by, "at": at, "timed_out": bool(event.get("timedout")),
            "chosen": list(event.get("chosen_options") or []), "reason": line}


def record_approval(project: str, run_id: str, outcome: dict[str, Any]) -> None:
    """Write the answer into the run's record (isolated: committed to the run's branch, like the record)."""

    def write(path: Path) -> None:
        folder = run_dir(path, run_id)
        folder.mkdir(parents=True, exist_ok=True)
        write_text(folder / APPROVAL_FILE, json.dumps(outcome, indent=2, default=str) + "\n")

    workspace_for(project).write_run_files(run_id, "approve", write)


class PromotionApproval(ApprovalOperator):
    """The `approve` task: with `promote.approval: human`, a person's Approve or Reject before `promote`.

    `decision`, `card` and `package` are the project-relative paths of the
    gate's decision, its model card and package's result (dvc.yaml names them).
    Its default answer is Reject, so a timeout refuses the promotion; with
    `auto` it skips itself, and `promote` (trigger rule
    none_failed_min_one_success, also downstream of `package`) runs anyway.
    """

    ui_color = "#f0c808"

    def __init__(self, *, project: str, decision: str, card: str, package: str, **kwargs: Any) -> None:
        kwargs.setdefault("response_timeout", DEFAULT_TIMEOUT)
        super().__init__(
            subject="Promote the candidate to champion?",
            body="Written when the task runs: the gate's decision, its reasons and the model card.",
            defaults=self.REJECT, **kwargs)
        self.project, self.decision, self.card, self.package = project, decision, card, package

    def execute(self, context: Any) -> Any:
        run_id = context["run_id"]
        settings = promote_settings(self.project, run_id)
        if settings.approval == "auto":
            raise AirflowSkipException("promote.approval is auto: promote needs no approval, it follows package")
        decision_text, decision_at = read_run_text(self.project, run_id, self.decision)
        if decision_text is None:
            raise AirflowFailException(f"the gate wrote no decision at {decision_at}")
        package_text, _ = read_run_text(self.project, run_id, self.package)
        package = read_record(PackageResult, package_text, self.package) if package_text else None
        if package is not None and package.status == "unchanged":  # e.g. a drift run without new labels
            raise AirflowSkipException(f"the candidate {package.model} is already the champion "
                                       f"(package unchanged): promotion changes nothing, no approval needed")
        card, card_at = read_run_text(self.project, run_id, self.card)
        self.response_timeout = timedelta(hours=settings.approval_timeout_h)
        self.subject, self.body = approval_request(
            read_record(GateDecision, decision_text, decision_at), decision_at, package, card, card_at, run_id,
            started_by(context), self.response_timeout)
        print(f"approve: waiting up to {settings.approval_timeout_h:g} h for a person: {self.subject}", flush=True)
        try:
            print(f"approve: answer at {self.generate_link_to_ui_from_context(context=context)}", flush=True)
        except ValueError:  # no [api] base_url configured: the UI's Required actions page still lists it
            print("approve: answer in the UI (Required actions) or PATCH .../hitlDetails", flush=True)
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        # resumed on a fresh copy of the task: the run's timeout is in its params.yaml, not in this object
        timeout_h = promote_settings(self.project, context["run_id"]).approval_timeout_h if event.get(
            "timedout") else None
        try:
            result = super().execute_complete(context=context, event=event)
        except DownstreamTasksSkipped:  # Reject (or the timeout's default answer): `promote` is skipped
            self.report(context, outcome_of(event, approved=False, timeout_h=timeout_h))
            raise
        self.report(context, outcome_of(event, approved=bool(self.hitl_summary_extra.get("approved")),
                                        timeout_h=timeout_h))
        return result

    def report(self, context: Any, outcome: dict[str, Any]) -> None:
        print(f"approve: {outcome['reason']}", flush=True)
        record_approval(self.project, context["run_id"], outcome)
