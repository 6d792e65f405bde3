"""The `loop` section: the retraining triggers beyond drift and their cooldown."""

from __future__ import annotations

from pydantic import Field, field_validator

from mlops.core.sections.base import Strict


class LoopSettings(Strict):
    """The `loop:` section: what, besides drift, starts a lifecycle run (a retraining), and how often at most."""

    schedule: str | None = Field(
        default=None, min_length=1,
        description="Retrain on a clock as well: a cron expression or a preset such as @weekly (UTC), read when "
                    "the lifecycle DAG is parsed (null: no scheduled runs).")
    min_new_labels: int | None = Field(
        default=200, ge=1,
        description="Trusted labels not yet in the champion's data (labellers' labels posted to /feedback and "
                    "rows of feedback batches the last ingest did not hold) that start a lifecycle run; the "
                    "monitoring DAG counts them on each of its runs (null: labels alone start nothing). 200 with "
                    "feedback.recent_share 0.5 fills the gate's recent set (feedback.min_recent_rows 100).")
    cooldown_minutes: float = Field(
        default=60, ge=0,
        description="A lifecycle run started by drift, a live accuracy breach, new labels or the schedule within "
                    "this many minutes of the last one so started is skipped, saying so: a burst of events "
                    "retrains once. A run triggered by hand is never skipped (0: no cooldown).")

    @field_validator("schedule")
    @classmethod
    def _schedule_is_cron(cls, value: str | None) -> str | None:
        if value is None or value.startswith("@"):
            if value is not None and value not in CRON_PRESETS:
                raise ValueError(f"{value!r} is none of the presets {', '.join(CRON_PRESETS)}")
            return value
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression (five fields: minute hour day month weekday)")
        return value



CRON_PRESETS = ("@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")
