"""The `gate` section: the checks a candidate must pass, and the comparison with the champion."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlops.core.sections.base import Strict


class GateSettings(Strict):
    """The `gate:` section: the thresholds and the comparison with the champion a candidate must pass."""

    min_accuracy: float = Field(ge=0, le=1, description="Test accuracy the candidate must reach; a first run (no "
                                                        "champion) is judged on the absolute thresholds alone.")
    min_macro_f1: float = Field(ge=0, le=1, description="Test macro-F1 the candidate must reach.")
    min_class_recall: float = Field(ge=0, le=1, description="Test recall every class must reach.")
    max_latency_p95_ms: float | None = Field(
        default=None, gt=0, description="Absolute single-text p95 latency limit in milliseconds, opt-in (null: off): "
                                        "it moves with the machine's load.")
    max_latency_ratio: float = Field(
        default=1.5, gt=0, description="The candidate's single-text p95 over the champion's, both measured side by "
                                       "side in the gate (interleaved, same texts, best of 3 runs per text).")
    max_model_mb: float = Field(gt=0, description="Largest model size, in MB.")
    min_behaviour_pass_rate: float = Field(
        ge=0, le=1, description="Share of the behaviour suite's cases the candidate must pass.")
    # a serving variant (optimize.variants) losing more accuracy than this against fp32 is refused (not servable)
    max_variant_accuracy_drop_points: float = Field(
        default=1.0, ge=0, description="A serving variant losing more test-accuracy points than this against fp32 is "
                                       "refused: not servable, but the gate does not fail for it.")
    max_student_accuracy_drop_points: float = Field(
        default=1.5, ge=0, description="The distilled student's variants may lose up to this many accuracy points "
                                       "against the candidate's fp32 (a smaller model, not a conversion).")
    max_regression: float = Field(ge=0, le=1, description="Against the champion on the same rows (paired bootstrap "
                                                          "of the macro-F1 difference): the candidate is rejected "
                                                          "unless the lower bound of the confidence interval is "
                                                          "above -max_regression (non-inferior).")
    max_regression_on_recent: float = Field(
        default=0.05, ge=0, le=1, description="The non-inferiority margin on the recent set (held-out feedback): "
                                              "its lower bound must be above -max_regression_on_recent. A few "
                                              "hundred rows bound the difference only to about +-0.07, so the "
                                              "test split's margin would refuse every real gain; forgetting is "
                                              "judged on the test split, with max_regression.")
    promote_if: Literal["better", "non_inferior", "expected_gain"] = Field(
        description="`better`: the lower bound must be above 0 (a significant gain); `non_inferior`: above "
                    "-max_regression, with a point estimate above 0; `expected_gain`: above -max_regression, with "
                    "at least min_gain_probability of the bootstrap resamples showing a gain. Judged on the recent "
                    "set when it holds `feedback.min_recent_rows`, else on the test split.")
    min_gain_probability: float = Field(
        default=0.8, ge=0, lt=1, description="With `promote_if: expected_gain`: the share of the paired bootstrap's "
                                             "resamples in which the candidate's macro-F1 is higher that it needs.")
    confidence: float = Field(gt=0.5, lt=1, description="Confidence level of the bootstrap interval.")
    bootstrap_samples: int = Field(ge=100, le=100_000, description="Resamples of the paired bootstrap.")
