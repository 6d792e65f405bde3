"""The `refit_feedback` section: the refit on every label after an accepted feedback retrain."""

from __future__ import annotations

from pydantic import Field

from mlops.core.sections.base import Strict


class RefitFeedbackSettings(Strict):
    """Once the gate accepts a candidate continued on feedback, the model packaged is refit on every label."""
    enabled: bool = Field(default=True, description="Whether, once the gate accepts a candidate continued from the "
                                                    "champion on labelled feedback, the packaged model is refit with "
                                                    "the same recipe on every feedback row, the held-out recent set "
                                                    "included (mlops/stages/refit.py); off: the judged candidate is "
                                                    "packaged.")
    max_test_drop_points: float = Field(
        default=0.5, ge=0, description="The refit is packaged only if its test accuracy is at most this many points "
                                       "below the judged candidate's (same serving variant, same original test "
                                       "rows); else the judged candidate is, and the record says why.")
    min_agreement: float = Field(
        default=0.9, ge=0, le=1, description="The refit is packaged only if at least this share of its predictions "
                                             "on the test and recent rows equals the judged candidate's; else the "
                                             "judged candidate is, and the record says why.")
