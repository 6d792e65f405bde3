"""A lifecycle run's verdict in one line, where the Airflow UI and REST API show it.

A run that rejected its model is an outcome, not a failure: the run is green,
and only skipped tasks hinted at the rejection. So the `record` task, which
runs at the end whatever the gate decided, turns the run's record into a
verdict: a headline ("REJECTED: <first reason>", "PROMOTED: <model>", "NOT
PROMOTED: approval rejected", ...), the scores it was judged on, the next
step. It emits that as the `extra` of an event of VERDICT_ASSET (the run's
*Created Asset Events* in the UI; `GET /api/v2/assets/events?source_run_id=...`)
and returns it (the task's XCom). A task cannot set its run's note (the task
SDK's execution API has no such call), so the project's Airflow plugin
(mlops/orchestration/airflow_plugin.py), which runs in the scheduler, copies
the event's `note` into the run's note when the run succeeds: the grid marks
the run as having a note, the run's page shows it, and the DagRun JSON of the
REST API carries it.

Only the standard library is imported here: the DAG file imports this module.
"""

from __future__ import annotations

from typing import Any

NOTE_LIMIT = 1000  # what Airflow's REST API accepts for a run's note


def headline(decision: dict[str, Any], promotion: dict[str, Any], approval: dict[str, Any] | None,
             loop: dict[str, Any] | None) -> tuple[str, str]:
    """The run's outcome, as a word and as the line a person reads first."""
    if (loop or {}).get("status") == "no_new_labels":
        return "not_retrained", f"NOT RETRAINED: {loop['message']}"
    if not decision:
        return "no_decision", "NO VERDICT: the gate wrote no decision in this run"
    if not decision.get("accepted"):
        return "rejected", f"REJECTED: {(decision.get('reasons') or ['no reason given'])[0]}"
    if approval and not approval.get("approved"):
        return "not_promoted", "NOT PROMOTED: approval rejected"
    if promotion.get("promoted"):
        return "promoted", f"PROMOTED: {promotion.get('champion') or (promotion.get('candidate') or {}).get('model')}"
    return "not_promoted", f"NOT PROMOTED: {promotion.get('reason') or 'promote did not run'}"


def scores(decision: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """What the verdict was judged on: the candidate's test scores and, against a champion, the judged set's
    macro-F1 difference and interval."""
    judged: dict[str, Any] = {}
    comparison = decision.get("comparison") or {}
    on = comparison.get("recent") if comparison.get("judged_on") == "recent" else comparison
    if on:
        judged = {"judged_on": comparison.get("judged_on", "test"), "rows": on.get("rows"),
                  "champion": comparison.get("champion"), "macro_f1_difference": on.get("difference"),
                  "ci_low": on.get("ci_low"), "ci_high": on.get("ci_high")}
    return {"test_accuracy": metrics.get("accuracy"), "test_macro_f1": metrics.get("macro_f1"),
            "test_rows": metrics.get("rows"), **judged}


def run_verdict(summary: dict[str, Any], files: dict[str, str], record_path: str) -> dict[str, Any]:
    """The verdict of a run from its record (`mlops.orchestration.runs.record`'s summary; `files`: what the
    record keeps, by name, as `recorded_files` gives them): the asset event's `extra` and the run's note."""
    results = summary.get("results") or {}
    decision = results.get(files["gate"]) or {}
    promotion = results.get(files["promotion"]) or {}
    package = results.get(files["package"]) or {}
    approval = summary.get("approval")
    outcome, line = headline(decision, promotion, approval, summary.get("loop"))
    candidate = package.get("model") or (decision.get("candidate_digest") or "")[:12] or None
    measured = scores(decision, results.get(files["evaluate"]) or {})
    details = [line]
    if outcome == "not_promoted" and approval and not approval.get("approved"):
        details.append(approval.get("reason", ""))
    if candidate:
        details.append(f"Candidate {candidate}: test accuracy {measured['test_accuracy']}, macro-F1 "
                       f"{measured['test_macro_f1']}" + (
                           f"; vs {measured['champion']} on the {measured['rows']} {measured['judged_on']} rows: "
                           f"macro-F1 difference {measured['macro_f1_difference']} (CI {measured['ci_low']} to "
                           f"{measured['ci_high']})" if measured.get("champion") else "") + ".")
    if outcome in ("rejected", "not_promoted", "no_decision", "not_retrained") and decision.get("champion"):
        details.append(f"The champion {decision['champion']} keeps serving.")
    if decision.get("next_step") and outcome == "rejected":
        details.append(f"Next step: {decision['next_step']}")
    if summary.get("trigger"):
        details.append(f"Started by: {', '.join(summary.get('triggers') or [summary['trigger']])}.")
    details.append(f"Record: {record_path}")
    note = "\n\n".join(part for part in details if part)
    if len(note) > NOTE_LIMIT:
        note = note[:NOTE_LIMIT - 1] + "\u2026"
    return {"run_id": summary.get("run_id"), "verdict": outcome, "headline": line, "note": note,
            "accepted": decision.get("accepted") if decision else None, "candidate": candidate,
            "champion": promotion.get("champion") if outcome == "promoted" else decision.get("champion"),
            "reasons": decision.get("reasons") or [], "next_step": decision.get("next_step"), "scores": measured,
            "record": record_path, "trigger": summary.get("trigger")}
