"""The monitoring DAG's tasks after `mlops monitor`: the drift verdict as a branch, and the drift asset's event."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from mlops.core.errors import MlopsError
from mlops.orchestration.assets import DRIFT_ASSET
from mlops.orchestration.runs import drift_status, drifted_signals, monitoring_run_dir, retrain_reasons


def read_monitoring_summary(project: str, run_id: str) -> tuple[dict[str, Any], Path]:

    path = monitoring_run_dir(Path(project), run_id) / "summary.json"
    if not path.is_file():
        raise AirflowFailException(f"mlops monitor wrote no summary at {path}")
    return json.loads(path.read_text(encoding="utf-8")), path


def drift_detected(project: str, run_id: str, **_: Any) -> bool:
    """The monitoring DAG's branch: True (announce, retrain) for the verdict "drift" or a live quality breach."""

    summary, path = read_monitoring_summary(project, run_id)
    try:
        status = drift_status(summary)
        reasons = retrain_reasons(summary)
    except MlopsError as error:
        raise AirflowFailException(f"{path}: {error}") from None
    rows = f"{summary.get('current_rows', '?')} current rows vs {summary.get('reference_rows', '?')} reference"
    verdict = {"drift": "DRIFT: announcing it, which starts a lifecycle run (retraining)",
               "no_drift": "no drift: nothing to do",
               "insufficient_data": "insufficient data: no verdict, no retraining"}[status]
    if reasons and status != "drift":  # no drift, but the labels say the serving model is worse than the gate
        verdict = {"no_drift": "no drift", "insufficient_data": "insufficient data: no drift verdict"}[status] + (
            ", but a live quality breach (below)")
    print(f"monitoring: {verdict} ({rows}); report {path.parent / 'report.html'}", flush=True)
    for name, signal_ in (summary.get("signals") or {}).items():
        if isinstance(signal_, dict):
            mark = "DRIFTED" if signal_.get("drifted") else "ok"
            print(f"  {name}: score {signal_.get('score')} (threshold {signal_.get('threshold')}) {mark}", flush=True)
    drifted = drifted_signals(summary)
    if status == "drift":
        print(f"  drifted: {', '.join(drifted) or 'none named'}", flush=True)
    if "live_quality_breach" in reasons:
        print(f"monitoring: LIVE QUALITY BREACH: {summary['live_quality_breach'].get('reason')}; announcing it, "
              "which starts a lifecycle run (retraining)", flush=True)
    return bool(reasons)


def announce_drift(project: str, run_id: str, outlet_events: Any, **_: Any) -> dict[str, Any]:
    """Emit the drift asset's event, its `extra` naming the report and the reasons (drift, a live quality
    breach); the lifecycle DAG is scheduled on it."""

    summary, path = read_monitoring_summary(project, run_id)
    extra = {"report": str((path.parent / "report.html").resolve()), "summary": str(path.resolve()),
             "drifted": sorted(drifted_signals(summary)), "monitoring_run_id": run_id,
             "reasons": retrain_reasons(summary)}
    if summary.get("live_quality_breach"):
        extra["live_quality_breach"] = summary["live_quality_breach"]
    outlet_events[DRIFT_ASSET].extra = extra
    print(f"announce_drift: event of {DRIFT_ASSET.uri} with {json.dumps(extra)}", flush=True)
    return extra
