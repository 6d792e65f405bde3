"""Canary, in `mlops promote`: start it, watch it, end it, promoted in full or rolled back, and say so.

After infra validation (mlops/serving/promotion.py) a canary promotion names
the candidate the registry's canary, with its share of requests: the running
services route that share of clients to it (mlops/serving/canary.py) and count
each version's requests, failures and latencies in shared files. This command
sums those counts every `promote.canary_check_s` and the live accuracy from
returning labels every `LIVE_EVERY_S` (mlops/ml/live_quality.py), and judges:
at the first breach (error rate, p95 latency ratio, live accuracy against the
champion) the canary is rolled back; after `promote.canary_requests` healthy
canary answers the candidate is promoted in full; past
`promote.canary_timeout_s` without enough traffic it is rolled back too.
`mlops registry rollback` ends it from outside, as does another promotion.
The decision, with the counts it was taken on, goes to reports/promotion.json
and to the alert webhook (mlops/orchestration/alerts.py). A command that is
interrupted (Ctrl-C, a stopped Airflow task) ends its canary on the way out;
one killed outright leaves it to expire at `expires_at`, when services stop
routing to it.
"""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime
from typing import Any

from mlops.core import registry
from mlops.core.environment import feedback_dir, traffic_dir
from mlops.core.errors import MlopsError
from mlops.core.records import PromotionRecord
from mlops.core.settings import Settings
from mlops.serving.canary import CANDIDATE, CHAMPION, collect, judge, prune_stats

LIVE_EVERY_S = 15.0  # live accuracy reads the traffic log and the labels: not on every look
PROGRESS_EVERY_S = 10.0


def live_accuracy(settings: Settings, canary: dict[str, Any]) -> dict[str, Any]:
    """The canary's and the champion's live accuracy (their windows' figures), or why there is none."""
    from mlops.ml.live_quality import assess

    try:
        quality = assess(settings, feedback_dir(), traffic_dir(), canary["champion"])["live_quality"]
    except Exception as error:  # noqa: BLE001 - no labels yet, an unreadable log: no accuracy verdict, not a crash
        return {"error": f"{type(error).__name__}: {error}"}
    none = {"labelled": 0, "status": "insufficient_labels", "needed": settings.monitor.live_min_labels}
    return {CANDIDATE: (quality.get(canary["model"]) or {}).get("window", none),
            CHAMPION: (quality.get(canary["champion"]) or {}).get("window", none)}


def send_alert(outcome: dict[str, Any]) -> None:
    """The `canary_ended` alert through the project's alert webhook; none configured (or no Airflow): one line."""
    try:
        from mlops.orchestration.alerts import WebhookNotifier
    except ImportError as error:
        print(f"alert canary_ended: not sent ({error})", flush=True)
        return
    WebhookNotifier("canary_ended").send("canary_ended", {}, outcome)


def interrupted(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def watch(canary: dict[str, Any], settings: Settings) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    """Look at the canary until it is decided: (verdict, reason, counts, live accuracy); verdict is `promote`,
    `rollback` or `ended` (ended from outside)."""
    config, home = settings.promote, registry.bentoml_home()
    started = time.monotonic()
    live, looked_live, said = {}, -LIVE_EVERY_S, started
    while True:
        time.sleep(config.canary_check_s)
        arms = collect(home, canary["id"])
        current = registry.canary()
        if not current or current["id"] != canary["id"]:
            return "ended", "ended from outside: `mlops registry rollback` or another promotion", arms, live
        if time.monotonic() - looked_live >= LIVE_EVERY_S:
            live, looked_live = live_accuracy(settings, canary), time.monotonic()
        verdict, reason = judge(arms, live, config)
        if verdict == "promote":  # the last word on accuracy is from the labels as they are now
            live = live_accuracy(settings, canary)
            verdict, reason = judge(arms, live, config)
        if verdict is not None:
            return verdict, reason, arms, live
        if time.monotonic() - started > config.canary_timeout_s:
            return "rollback", (f"not enough traffic within promote.canary_timeout_s {config.canary_timeout_s:g} s: "
                                f"{reason}"), arms, live
        if time.monotonic() - said >= PROGRESS_EVERY_S:
            print(f"canary: {reason}", flush=True)
            said = time.monotonic()


def run_canary(entry: dict[str, Any], settings: Settings, share: float, result: dict[str, Any],
               out: Any) -> dict[str, Any]:
    """Serve `entry` to `share` of requests, watch it, and end it; `result` (the promotion decision so far, infra
    validation included) is completed and written to `out`. A canary that is rolled back raises MlopsError."""
    config = settings.promote
    canary = registry.start_canary(entry, share, config.canary_timeout_s)
    prune_stats(registry.bentoml_home(), keep=canary["id"])  # earlier canaries' counts (their decisions hold them)
    print(f"canary: {entry['model']} serves {share:.0%} of requests beside the champion {canary['champion']}; "
          f"promoted in full after {config.canary_requests} healthy answers, rolled back at the first breach "
          f"(`mlops registry rollback` ends it now)", flush=True)
    previous = None
    if threading.current_thread() is threading.main_thread():  # a stopped task's SIGTERM unwinds through here
        previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        verdict, reason, arms, live = watch(canary, settings)
    except BaseException:  # Ctrl-C, SIGTERM: the canary ends with the command that watches it
        registry.end_canary(canary["id"], "rolled_back", "mlops promote was interrupted")
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    outcome = {"model": entry["model"], "champion": canary["champion"], "share": share, "id": canary["id"],
               "started_at": canary["started_at"], "ended_at": datetime.now(UTC).isoformat(timespec="seconds"),
               "outcome": {"promote": "promoted", "rollback": "rolled_back", "ended": "ended_by_hand"}[verdict],
               "reason": reason, "counts": arms, "live_accuracy": live}
    result.update(strategy="canary", canary=outcome)
    prune_stats(registry.bentoml_home())  # the counts are in the decision now
    if verdict == "promote":
        promoted = registry.promote({**entry, "served_p95_ms": result["infra_validation"]["served_p95_ms"],
                                     "canary": {k: outcome[k] for k in ("share", "id", "started_at", "ended_at")}})
        result.update(promoted=True, champion=promoted["model"], reason=f"the canary was healthy: {reason}")
    else:
        if verdict == "rollback":
            registry.end_canary(canary["id"], "rolled_back", reason)
        result.update(promoted=False, reason=f"the canary was {outcome['outcome'].replace('_', ' ')}: {reason}")
    PromotionRecord.model_validate(result).write(out)
    send_alert({"model": entry["model"], "outcome": outcome["outcome"], "reason": reason,
                "champion": registry.champion()["model"], "counts": arms, "decision": str(out)})
    if not result["promoted"]:
        raise MlopsError(f"{entry['model']} NOT promoted: {result['reason']} (decision in {out}); the champion is "
                         f"still {canary['champion']}")
    print(f"canary: {entry['model']} is the champion: {reason} -> {out}", flush=True)
    return result
