"""The `evaluate` section: how the candidate is scored."""

from __future__ import annotations

from pydantic import Field

from mlops.core.sections.base import Strict


class EvaluateSettings(Strict):
    """The `evaluate:` section: the behaviour suite, calibration and length slices, and latency samples."""

    behaviour_suite: str = Field(min_length=1, description="The CheckList-style behaviour cases (a YAML file; "
                                                           "mlops/ml/behaviour.py) the candidate is tested on.")
    calibration_bins: int = Field(ge=2, le=100, description="Bins of the expected calibration error (ECE).")
    length_buckets: tuple[int, ...] = Field(
        min_length=1, description="Slice edges, in characters, of the per-length metrics.")
    latency_samples: int = Field(ge=10, description="Single-text predictions timed on the CPU for the latency figures.")
