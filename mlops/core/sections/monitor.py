"""The `monitor` section: drift monitoring of served traffic."""

from __future__ import annotations

from pydantic import Field, model_validator

from mlops.core.sections.base import Strict


class MonitorSettings(Strict):
    """The `monitor:` section: the window judged, the drift thresholds, live quality and the history."""

    current: str = Field(min_length=1, description="What the pipeline's `monitor` stage compares with the reference: "
                                                   "`test` (the scored test split, the stand-in until traffic "
                                                   "exists), or a path to a traffic log or data file.")
    window_rows: int = Field(ge=10, description="The newest rows of the current window.")
    window_hours: float | None = Field(
        default=None, gt=0, description="When set, only the rows of the last N hours (null: no time limit).")
    min_rows: int = Field(ge=10, description="With fewer rows there is no verdict (insufficient data) and no "
                                             "retraining; at most window_rows.")
    live_min_labels: int = Field(
        default=30, ge=1, description="Trusted labels a model version needs in the window before its live accuracy "
                                      "is judged (fewer: the count and how many more are needed, no verdict).")
    drift_share: float = Field(gt=0, le=1, description="Share of the 6 signals that must drift for the dataset to "
                                                       "drift (0.3: 2 of 6).")
    num_threshold: float = Field(gt=0, description="Normed Wasserstein distance above which a text descriptor "
                                                   "(length, word count, non-letter share) drifts.")
    cat_threshold: float = Field(gt=0, description="Jensen-Shannon distance above which the predicted-label mix "
                                                   "drifts.")
    embedding_threshold: float = Field(
        gt=0.5, lt=1, description="ROC AUC of a reference-versus-current classifier on the embeddings above which "
                                  "they drift.")
    confidence_drop: float = Field(gt=0, lt=1, description="Fall of mean confidence (absolute) that counts as drift.")
    history_dir: str = Field(min_length=1, description="Where every report is archived, with an index page and the "
                                                       "drift-over-time plot.")
    workspace: str = Field(
        default="reports/monitoring-workspace", min_length=1,
        description="The local Evidently workspace every monitoring run adds one snapshot to (one project, its "
                    "dashboards over time: drift signals, live accuracy per model version, traffic); `make "
                    "monitor-ui` serves it on 127.0.0.1.")
    schedule: str | None = Field(default=None, description="The monitoring DAG's schedule: a cron expression or a "
                                                           "preset such as @hourly (null: trigger it by hand).")

    @model_validator(mode="after")
    def _window_covers_minimum(self) -> MonitorSettings:
        if self.min_rows > self.window_rows:
            raise ValueError("min_rows must not exceed window_rows")
        return self
