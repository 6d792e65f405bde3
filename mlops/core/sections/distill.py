"""The `distill` section: the pruned, distilled student."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlops.core.sections.base import Strict


class DistillSettings(Strict):
    """A smaller student pruned from the candidate and distilled from it (mlops/stages/distill.py).

    Off, the stage writes only a marker, so the pipeline's shape does not change with it."""
    enabled: bool = Field(default=False, description="Whether the `distill` stage builds a student; off, it writes a "
                                                     "marker only and no student variant exists.")
    layers: Literal["every_other", "first_k"] = Field(
        default="every_other", description="Which encoder layers the student keeps: `every_other` (layers 0, 2, 4, "
                                           "...) or `first_k` (the first `keep_layers`).")
    keep_layers: int = Field(
        default=3, ge=1, le=48, description="`first_k` only: how many layers the student keeps (fewer than the "
                                            "candidate has).")
    temperature: float = Field(
        default=2.0, gt=0, le=20, description="Softens both models' logits in the soft loss; higher shares more of "
                                              "the teacher's view of the wrong classes.")
    alpha: float = Field(default=0.5, ge=0, le=1, description="Weight of the soft loss (KL divergence to the "
                                                              "teacher, scaled by temperature squared); 1 - alpha "
                                                              "weighs cross-entropy on the true labels.")
    epochs: float = Field(default=3, gt=0, le=100, description="Distillation epochs.")
    lr: float = Field(default=1.0e-4, gt=0, lt=1, description="Distillation learning rate.")
