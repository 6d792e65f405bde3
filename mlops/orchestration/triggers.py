"""What starts a lifecycle run, the cooldown that lets a burst of triggers retrain once, and the trigger's name.

Five things start the `lifecycle` DAG, and each run's record names which
(`trigger` in run.json, `started-by.json`, the record task's line and the
run's verdict):

- `drift`: an event of the drift asset whose reasons hold `drift` (the
  monitoring DAG found the served traffic drifted);
- `live_accuracy`: an event of the drift asset whose reasons hold only
  `live_quality_breach` (the trusted labels put the serving version's
  accuracy's upper Wilson bound below gate.min_accuracy);
- `new_labels`: an event of the new-labels asset (the monitoring DAG counted
  `loop.min_new_labels` trusted labels the champion's data lacks,
  mlops/loop/retrain.py `new_trusted_labels`);
- `schedule`: `loop.schedule` (a cron expression or a preset, UTC);
- `manual`: a person (the UI's trigger form, the REST API, the CLI).

The lifecycle's schedule is `DRIFT_ASSET | NEW_LABELS_ASSET`, combined with
the cron schedule in an AssetOrTimeSchedule when `loop.schedule` is set. A run
with several triggering events (queued while another run was active) is named
by the first of drift, live_accuracy, new_labels; `triggers` lists them all.

Cooldown: a run started by anything but a person, whose trigger happened
(its latest event, else the moment the run starts) less than
`loop.cooldown_minutes` after the start of the last run so started, is
skipped by its first task, saying when the cooldown ends: a burst of events
retrains once. The start of every run let through is kept in
reports/runs/last-triggered.json in the project. A manual run is never
skipped and does not restart the cooldown.

Only the standard library is imported at module level: the DAG files import this module.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlops.core.io import atomic_path
from mlops.core.settings import load_settings
from mlops.orchestration.runs import RUNS_DIR, STARTED_BY_FILE, record_trigger, run_dir, say, write_text

TRIGGERS = ("drift", "live_accuracy", "new_labels", "schedule", "manual")  # a run's name: the first that applies
# what opens a retraining run's message (mlops.loop.retrain.prepare)
WORDS = {"drift": "drift", "live_accuracy": "a live accuracy breach", "new_labels": "new labels",
         "schedule": "the schedule", "manual": "a manual run"}
LAST_TRIGGERED = RUNS_DIR / "last-triggered.json"  # the last run a trigger started and let through
DRIFT_URI = "mlops://monitoring/drift"  # mlops.orchestration.assets (which imports Airflow) holds the assets
NEW_LABELS_URI = "mlops://feedback/new-labels"
SCHEDULED = ("scheduled", "backfill")  # Airflow's run types of a timetable's runs


def run_type_of(dag_run: Any, events: list[dict[str, Any]]) -> str:
    """The DAG run's type as a plain string (`manual`, `scheduled`, `asset_triggered`, ...); a context without
    one (a task called by hand) is asset-triggered with events, manual without."""
    run_type = getattr(dag_run, "run_type", None)
    if run_type is None:
        return "asset_triggered" if events else "manual"
    return str(getattr(run_type, "value", run_type))


def triggers_of(run_type: str, events: list[dict[str, Any]]) -> list[str]:
    """Every trigger of a run, in TRIGGERS' order: from its run type, and for an asset-triggered run from its
    events (the drift asset's `reasons`; an event without them is drift, as before reasons existed)."""
    if run_type in SCHEDULED:
        return ["schedule"]
    if run_type != "asset_triggered":
        return ["manual"]
    found = set()
    for event in events:
        if event.get("asset") == NEW_LABELS_URI:
            found.add("new_labels")
        elif event.get("asset") == DRIFT_URI:
            reasons = (event.get("extra") or {}).get("reasons") or ["drift"]
            found |= {{"drift": "drift", "live_quality_breach": "live_accuracy"}[r] for r in reasons
                      if r in ("drift", "live_quality_breach")}
    return [name for name in TRIGGERS if name in found] or ["manual"]


def parse_time(value: Any) -> datetime | None:
    """A timestamp (a datetime or an ISO string) as an aware UTC datetime; None for none or an unreadable one."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def trigger_time(events: list[dict[str, Any]], now: datetime) -> datetime:
    """When a run's trigger happened: its latest event's time, else `now` (a scheduled run starts when due)."""
    times = [t for t in (parse_time(event.get("timestamp")) for event in events) if t is not None]
    return max(times) if times else now


def cooldown_until(last_started: datetime | None, when: datetime, minutes: float) -> datetime | None:
    """The end of the cooldown a trigger at `when` falls in (the last triggered run started at `last_started`),
    or None when it falls in none: no run before, no cooldown, or long enough ago."""
    if last_started is None or minutes <= 0:
        return None
    end = last_started + timedelta(minutes=minutes)
    return end if when < end else None


def read_last(project: Path) -> dict[str, Any] | None:
    """The last run a trigger started and let through ({run_id, trigger, started}), None before the first."""
    path = Path(project) / LAST_TRIGGERED
    if not path.is_file():
        return None
    try:
        last = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None  # a torn file: no cooldown rather than a lifecycle that never starts again
    return last if isinstance(last, dict) and parse_time(last.get("started")) else None


def write_last(project: Path, run_id: str, trigger: str, started: datetime) -> None:

    path = Path(project) / LAST_TRIGGERED
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"run_id": run_id, "trigger": trigger,
                                   "started": started.isoformat(timespec="seconds")}) + "\n", encoding="utf-8")


def admit(project: Path, run_id: str, run_type: str, events: list[dict[str, Any]],
          now: datetime | None = None, cooldown_minutes: float | None = None) -> dict[str, Any]:
    """The first step of a lifecycle run: its trigger(s), and whether the cooldown lets it through.

    Returns {trigger, triggers, run_type, when, cooldown_minutes, last}; a run in the cooldown raises Airflow's
    skip, its message naming the trigger, the last triggered run and when the cooldown ends. `cooldown_minutes`
    defaults to loop.cooldown_minutes of the project's params.yaml.
    """
    project = Path(project)
    now = now or datetime.now(UTC)
    triggers = triggers_of(run_type, events)
    info: dict[str, Any] = {"trigger": triggers[0], "triggers": triggers, "run_type": run_type,
                            "when": trigger_time(events, now).isoformat(timespec="seconds")}
    if triggers[0] == "manual":
        say(f"configure: run {run_id} was started by hand ({run_type}): no cooldown applies")
        return info
    if cooldown_minutes is None:
        from mlops.core.settings import load_settings

        cooldown_minutes = load_settings(project / "params.yaml").loop.cooldown_minutes
    last = read_last(project)
    info |= {"cooldown_minutes": cooldown_minutes, "last": last}
    end = cooldown_until(parse_time((last or {}).get("started")), trigger_time(events, now), cooldown_minutes)
    if end is not None and last is not None:
        from airflow.sdk.exceptions import AirflowSkipException

        message = (f"cooldown: run {run_id} ({', '.join(triggers)} at {info['when']}) is skipped: run "
                   f"{last['run_id']} ({last.get('trigger')}) started at {last['started']}, less than "
                   f"loop.cooldown_minutes ({cooldown_minutes:g}) before; the cooldown ends at "
                   f"{end.isoformat(timespec='seconds')} (a run triggered by hand is never skipped)")
        say(message)
        raise AirflowSkipException(message)
    write_last(project, run_id, triggers[0], now)
    say(f"configure: run {run_id} was started by {' and '.join(WORDS[t] for t in triggers)} ({run_type}); "
        f"the cooldown of {cooldown_minutes:g} minute(s) starts now")
    return info


def started_run(project: Path, run_id: str, info: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    """After `configure` started the run's record: write its trigger there (started-by.json) and, for a
    triggered run, the events that started it (trigger.json) and the labels it found (loop.json): posted
    labels become a batch first (mlops.loop.retrain), and without new ones the record says so."""

    project = Path(project)
    folder = run_dir(project, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / STARTED_BY_FILE, json.dumps(info, indent=2, default=str) + "\n")
    if events:
        record_trigger(project, run_id, events)
    if info["trigger"] == "manual":
        from mlops.core.settings import load_settings

        # ingest depends on the feedback batches directory
        (project / load_settings(project / "params.yaml").feedback.batches_dir).mkdir(parents=True, exist_ok=True)
        return {}
    from mlops.loop.retrain import prepare, write_loop_record

    summaries = [event["extra"]["summary"] for event in events if (event.get("extra") or {}).get("summary")]
    result = prepare(project, summaries, reason=WORDS[info["trigger"]])
    write_loop_record(folder, result)
    say(f"configure: {result['message']}")
    return result


def new_labels_ready(project: str, **_: Any) -> bool:
    """The monitoring DAG's check of the feedback store: True (announce) when the trusted labels the champion's
    data lacks reach loop.min_new_labels; the log says the count either way."""
    from mlops.loop.retrain import new_trusted_labels

    settings = load_settings(Path(project) / "params.yaml")
    wanted = settings.loop.min_new_labels
    if wanted is None:
        say("new labels: loop.min_new_labels is null: new labels alone start no lifecycle run")
        return False
    counted = new_trusted_labels(Path(project), settings)
    verdict = ("announcing them, which starts a lifecycle run (retraining)" if counted["count"] >= wanted
               else f"{wanted - counted['count']} more needed")
    say(f"new labels: {counted['count']} trusted label(s) not in the champion's data ({counted['in_batches']} in "
        f"{len(counted['batches'])} new batch(es), {counted['posted']} posted and not yet collected), "
        f"loop.min_new_labels {wanted}: {verdict}")
    return bool(counted["count"] >= wanted)


def announce_new_labels(project: str, run_id: str, outlet_events: Any, **_: Any) -> dict[str, Any]:
    """Emit the new-labels asset's event, its `extra` the count; the lifecycle DAG is scheduled on it."""
    from mlops.loop.retrain import new_trusted_labels
    from mlops.orchestration.assets import NEW_LABELS_ASSET

    settings = load_settings(Path(project) / "params.yaml")
    extra = {**new_trusted_labels(Path(project), settings), "min_new_labels": settings.loop.min_new_labels,
             "monitoring_run_id": run_id}
    outlet_events[NEW_LABELS_ASSET].extra = extra
    say(f"announce_new_labels: event of {NEW_LABELS_ASSET.uri} with {json.dumps(extra)}")
    return extra


def lifecycle_schedule(project: Path) -> Any:
    """The lifecycle DAG's schedule: `DRIFT_ASSET | NEW_LABELS_ASSET`, or with loop.schedule set, those assets or
    that cron schedule (UTC). Read when the DAG is parsed; no trigger parameter changes it, so a run's
    overrides of params.yaml make no new DAG version."""
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    from mlops.orchestration.assets import DRIFT_ASSET, NEW_LABELS_ASSET

    assets = DRIFT_ASSET | NEW_LABELS_ASSET
    cron = load_settings(Path(project) / "params.yaml").loop.schedule
    if cron is None:
        return assets
    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(cron, timezone="UTC"), assets=assets)
