"""Typed, frozen settings loaded from params.yaml.

Every stage reads its knobs from here rather than from raw YAML, so that a
misspelt key or a wrong type fails before any work starts, with the key's
dotted name in the message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from mlops.core.errors import MlopsError
from mlops.core.labels import declared_labels
from mlops.core.sections.alerts import AlertSettings
from mlops.core.sections.base import Strict, format_validation_error
from mlops.core.sections.data import (
    AllowedSourcesSettings,
    DataSettings,
    GeneratedSettings,
    SourceScheme,
    SourceSettings,
    SplitSettings,
)
from mlops.core.sections.distill import DistillSettings
from mlops.core.sections.evaluate import EvaluateSettings
from mlops.core.sections.feedback import FeedbackSettings, ScreenSettings
from mlops.core.sections.gate import GateSettings
from mlops.core.sections.loop import CRON_PRESETS, LoopSettings
from mlops.core.sections.model import ModelSettings, TextRepair
from mlops.core.sections.monitor import MonitorSettings
from mlops.core.sections.optimize import OptimizeSettings, VariantName
from mlops.core.sections.promote import PromoteSettings, ShadowEvidence
from mlops.core.sections.refit_feedback import RefitFeedbackSettings
from mlops.core.sections.serve import ServeSettings, TrafficSettings
from mlops.core.sections.train import ContinueSettings, TrainSettings
from mlops.core.sections.validate import ValidateSettings

# every section's types are also reachable from here, for code that reads the whole settings
__all__ = [
    "AlertSettings", "AllowedSourcesSettings", "CRON_PRESETS", "ContinueSettings", "DEFAULT_PARAMS", "DataSettings",
    "DistillSettings", "EvaluateSettings", "FeedbackSettings", "GateSettings", "GeneratedSettings", "LoopSettings",
    "ModelSettings", "MonitorSettings", "OptimizeSettings", "PromoteSettings", "RefitFeedbackSettings",
    "ScreenSettings", "ServeSettings", "Settings", "ShadowEvidence", "SourceScheme", "SourceSettings",
    "SplitSettings", "Strict", "TextRepair", "TrafficSettings", "TrainSettings", "ValidateSettings", "VariantName",
    "declared_labels", "format_validation_error", "load_settings", "parse_settings",
]

DEFAULT_PARAMS = Path("params.yaml")


class Settings(Strict):
    """Every section of params.yaml, validated: the one typed view of the parameters all code reads."""

    seed: int = Field(description="Seed of every random choice: the generated corpus, the split, training, the "
                                  "bootstrap.")
    data: DataSettings = Field(description="Where the labelled text comes from and how it is split.")
    validate_: ValidateSettings = Field(
        alias="validate", description="The data-validation suite's bounds: row problems are quarantined while they "
                                      "stay under max_quarantine_share; above it, and on any table-level failure, "
                                      "the batch is rejected whole; shifts against the last accepted batch are "
                                      "warnings.")
    model: ModelSettings = Field(description="The pretrained model and its tokenisation.")
    train: TrainSettings = Field(description="Fine-tuning with the Hugging Face Trainer.")
    distill: DistillSettings = Field(
        default=DistillSettings(), description="A smaller, faster student pruned from the candidate and distilled "
                                               "from it (mlops/stages/distill.py).")
    optimize: OptimizeSettings = Field(
        default=OptimizeSettings(), description="Converted variants of the candidate for serving "
                                                "(mlops/stages/optimize.py).")
    evaluate: EvaluateSettings = Field(description="Scoring of the test split: behaviour suite, calibration, length "
                                                   "slices, latency.")
    gate: GateSettings = Field(description="The checks that decide whether the candidate may replace the champion.")
    serve: ServeSettings = Field(description="The BentoML service: batching, request limits, concurrency, the served "
                                             "variant, the traffic log.")
    promote: PromoteSettings = Field(
        default=PromoteSettings(), description="Infra validation by `mlops promote`: the candidate Bento is started "
                                               "on a free loopback port and checked before the registry points at "
                                               "it.")
    monitor: MonitorSettings = Field(description="Drift monitoring of served traffic against the serving model's "
                                                 "reference.")
    alerts: AlertSettings = Field(
        default=AlertSettings(), description="Where the DAGs' alerts go: the channel, and its recipients.")
    feedback: FeedbackSettings = Field(
        default=FeedbackSettings(), description="Labels from production: POST /feedback, the labelling queue, "
                                                "feedback batches, the recent test set.")
    refit_feedback: RefitFeedbackSettings = Field(
        default=RefitFeedbackSettings(), description="After an accepted feedback retrain: refit the packaged model "
                                                     "on every label, recent set included, with its own sanity "
                                                     "checks (mlops/stages/refit.py).")
    loop: LoopSettings = Field(
        default=LoopSettings(), description="The retraining loop's triggers beyond drift (a live accuracy breach, "
                                            "new trusted labels, a schedule) and its cooldown "
                                            "(mlops/orchestration/triggers.py).")

    @model_validator(mode="after")
    def _budget_fits_a_text(self) -> Settings:
        budget = self.serve.max_batch_tokens
        if budget is not None and budget < self.model.max_length:
            raise ValueError(f"serve.max_batch_tokens ({budget}) must be at least model.max_length "
                             f"({self.model.max_length}): a micro-batch must hold one text of full length")
        return self


def parse_settings(raw: Any, origin: str = "params") -> Settings:
    """Validate a parsed params mapping; every problem in one error, each naming its key."""
    if not isinstance(raw, dict):
        raise MlopsError(f"{origin}: expected a mapping of settings, got {type(raw).__name__}")
    try:
        return Settings.model_validate(raw)
    except ValidationError as error:
        raise MlopsError(format_validation_error(error, origin)) from None


def load_settings(path: Path | str = DEFAULT_PARAMS) -> Settings:
    """Read and validate a params file; every problem names its key."""
    path = Path(path)
    if not path.is_file():
        raise MlopsError(f"params file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise MlopsError(f"{path}: not valid YAML: {error}".replace("\n", " ")) from None
    return parse_settings(raw, origin=str(path))


