"""Typed, frozen settings loaded from params.yaml.

Every stage reads its knobs from here rather than from raw YAML, so that a
misspelt key or a wrong type fails before any work starts, with the key's
dotted name in the message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlops.core.errors import MlopsError

DEFAULT_PARAMS = Path("params.yaml")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSettings(Strict):
    path: str = Field(min_length=1)
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet"] = "auto"
    header: bool = True
    columns: tuple[str, ...] | None = None
    text: tuple[str, ...] = Field(default=("text",), min_length=1)
    label: str = "label"
    label_names: dict[str, str] | None = None

    @model_validator(mode="after")
    def _columns_for_headerless(self) -> SourceSettings:
        if not self.header and self.format in ("csv", "tsv", "auto") and not self.columns:
            raise ValueError("a headerless file needs `columns` to name its columns")
        return self


class GeneratedSettings(Strict):
    rows: int = Field(default=3000, ge=50, le=1_000_000)
    classes: tuple[str, ...] = Field(min_length=2)


class SplitSettings(Strict):
    validation: float = Field(gt=0, lt=0.5)
    test: float = Field(gt=0, lt=0.5)


class DataSettings(Strict):
    source: SourceSettings
    test_source: SourceSettings | None = None
    generated: GeneratedSettings
    split: SplitSettings


class ValidateSettings(Strict):
    min_rows: int = Field(ge=1)
    max_rows: int = Field(ge=1)
    min_text_chars: int = Field(ge=1)
    max_text_chars: int = Field(ge=1)
    max_duplicate_share: float = Field(ge=0, le=1)
    min_class_share: float = Field(ge=0, le=1)
    max_class_share: float = Field(gt=0, le=1)
    max_quarantine_share: float = Field(ge=0, le=1)
    max_length_shift: float = Field(gt=0)
    max_label_shift: float = Field(gt=0, le=1)
    labels: tuple[str, ...] | None = Field(default=None, min_length=2)

    @model_validator(mode="after")
    def _bounds_ordered(self) -> ValidateSettings:
        if self.min_rows > self.max_rows:
            raise ValueError("min_rows must not exceed max_rows")
        if self.min_text_chars > self.max_text_chars:
            raise ValueError("min_text_chars must not exceed max_text_chars")
        if self.min_class_share > self.max_class_share:
            raise ValueError("min_class_share must not exceed max_class_share")
        return self


class TextRepair(Strict):
    """One regex replacement the model's tokenizer applies before its own normaliser (mlops/ml/text_repairs.py)."""
    pattern: str = Field(min_length=1)
    replacement: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        """Compiled by the engine that will run it (Oniguruma, in the tokenizers library), not Python's `re`."""
        from tokenizers import Regex, normalizers

        try:
            rule = normalizers.Replace(Regex(pattern), "\x01")
        except Exception as error:  # tokenizers raises a bare Exception for a bad pattern
            raise ValueError(f"not a valid regular expression {pattern!r}: {error}") from None
        if rule.normalize_str("\x00").startswith("\x01\x00"):  # matched before the text, consuming nothing
            raise ValueError(f"{pattern!r} matches the empty string: its replacement would go between every "
                             "two characters")
        return pattern


class ModelSettings(Strict):
    base: str = Field(min_length=1)
    max_length: int = Field(ge=8, le=4096)
    text_repairs: tuple[TextRepair, ...] = ()

    def repairs(self) -> list[tuple[str, str]]:
        """The repairs as (pattern, replacement) pairs, in order: what the label map records."""
        return [(repair.pattern, repair.replacement) for repair in self.text_repairs]


class ContinueSettings(Strict):
    """Fine-tune the champion further when labelled feedback is new, instead of the base model from scratch."""
    enabled: bool = False
    replay_rows: int = Field(default=2000, ge=0)
    epochs: float = Field(default=3, gt=0)
    lr: float = Field(default=2.0e-5, gt=0)


class TrainSettings(Strict):
    epochs: float = Field(gt=0)
    batch_size: int = Field(ge=1)
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    warmup_ratio: float = Field(ge=0, lt=1)
    grad_accum_steps: int = Field(ge=1)
    eval_steps: int = Field(ge=1)
    early_stopping_patience: int | None = Field(default=None, ge=1)
    max_train_samples: int | None = Field(default=None, ge=1)
    # After the validation split has chosen the step, train again on train + validation for that many epochs'
    # worth of steps and keep those weights (AutoGluon's refit_full): the held-out rows are data too.
    refit: bool = False
    continue_from_champion: ContinueSettings = ContinueSettings()


class DistillSettings(Strict):
    """A smaller student pruned from the candidate and distilled from it (mlops/stages/distill.py).

    Off, the stage writes only a marker, so the pipeline's shape does not change with it."""
    enabled: bool = False
    layers: Literal["every_other", "first_k"] = "every_other"  # which encoder layers the student keeps
    keep_layers: int = Field(default=3, ge=1, le=48)  # first_k: how many (fewer than the candidate has)
    temperature: float = Field(default=2.0, gt=0, le=20)  # softens both models' logits in the soft loss
    alpha: float = Field(default=0.5, ge=0, le=1)  # weight of the soft (teacher) loss; 1 - alpha: the true labels
    epochs: float = Field(default=3, gt=0, le=100)
    lr: float = Field(default=1.0e-4, gt=0, lt=1)


class EvaluateSettings(Strict):
    behaviour_suite: str = Field(min_length=1)
    calibration_bins: int = Field(ge=2, le=100)
    length_buckets: tuple[int, ...] = Field(min_length=1)
    latency_samples: int = Field(ge=10)


VariantName = Literal["torch_int8", "onnx_fp32", "onnx_int8"]


class OptimizeSettings(Strict):
    """Which converted variants of the candidate the optimize stage builds (none: fp32 alone serves)."""
    variants: tuple[VariantName, ...] = ("onnx_fp32", "onnx_int8")

    @field_validator("variants")
    @classmethod
    def _each_once(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"listed more than once: {', '.join(repeated)}")
        return value


class GateSettings(Strict):
    min_accuracy: float = Field(ge=0, le=1)
    min_macro_f1: float = Field(ge=0, le=1)
    min_class_recall: float = Field(ge=0, le=1)
    max_latency_p95_ms: float | None = Field(default=None, gt=0)  # absolute, opt-in: it moves with the load
    max_latency_ratio: float = Field(default=1.5, gt=0)  # candidate p95 / champion p95, measured side by side
    max_model_mb: float = Field(gt=0)
    min_behaviour_pass_rate: float = Field(ge=0, le=1)
    # a serving variant (optimize.variants) losing more accuracy than this against fp32 is refused (not servable)
    max_variant_accuracy_drop_points: float = Field(default=1.0, ge=0)
    max_student_accuracy_drop_points: float = Field(default=1.5, ge=0)
    max_regression: float = Field(ge=0, le=1)
    promote_if: Literal["better", "non_inferior"]
    confidence: float = Field(gt=0.5, lt=1)
    bootstrap_samples: int = Field(ge=100, le=100_000)


class TrafficSettings(Strict):
    enabled: bool = True
    hash_texts: bool = False    # log a keyed hash and descriptors instead of the text itself
    salt_env: str = Field(default="MLOPS_TRAFFIC_SALT", pattern=r"^[A-Z_][A-Z0-9_]*$")
    max_file_mb: float = Field(default=64, gt=0)
    keep_files: int = Field(default=48, ge=1)
    queue_size: int = Field(default=10_000, ge=1)  # requests awaiting the writer thread; beyond it, dropped and counted


class ServeSettings(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    batching: bool = True
    max_batch_size: int = Field(ge=2)
    max_latency_ms: int = Field(ge=1)
    micro_batch: int = Field(ge=1)  # rows per micro-batch at most
    max_batch_tokens: int | None = Field(default=None, ge=1)  # padded tokens (rows x longest) per micro-batch
    max_texts: int = Field(ge=1)
    max_text_chars: int = Field(ge=1)
    max_body_kb: int = Field(ge=1)
    api_key_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")  # clients' key: /classify, /feedback as suggestions
    label_key_env: str = Field(default="MLOPS_LABEL_KEY", pattern=r"^[A-Z_][A-Z0-9_]*$")  # labellers' key
    metrics_key_env: str = Field(default="MLOPS_METRICS_KEY", pattern=r"^[A-Z_][A-Z0-9_]*$")  # /metrics, when set
    keys_file_env: str = Field(default="MLOPS_KEYS_FILE", pattern=r"^[A-Z_][A-Z0-9_]*$")  # named, hashed keys
    allow_anonymous: bool = False  # true: keyless requests from beyond loopback are served as anonymous clients
    workers: int = Field(default=1, ge=1)
    threads: int = Field(ge=1)
    model_calls: int | Literal["auto"] = "auto"
    # auto: the fastest variant the gate accepted (fp32 when none); any other value forces that variant
    precision: Literal["auto", "fp32", "torch_int8", "onnx_fp32", "onnx_int8", "student_fp32", "student_torch_int8",
                       "student_onnx_fp32", "student_onnx_int8"] = "auto"
    traffic: TrafficSettings = TrafficSettings()
    follow_registry: bool = True   # a served champion swaps to the registry's new champion without a restart
    registry_poll_s: float = Field(default=2.0, gt=0)
    access_log: bool = False  # BentoML's line per request on stdout (the traffic log records every request)
    tracing: bool = False  # BentoML's OpenTelemetry spans for the service's routes (with an exporter configured)

    @field_validator("model_calls")
    @classmethod
    def _positive_calls(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("model_calls must be at least 1, or auto")
        return value

    def model_call_count(self) -> int:
        """`auto`: one model call per `threads` cores, in every process.

        Processes split the clients by connection, unevenly (one of two often
        holds them all), so each must be able to keep every core busy on its own.
        """
        import os

        if isinstance(self.model_calls, int):
            return self.model_calls
        return max(1, (os.cpu_count() or 1) // self.threads)


class PromoteSettings(Strict):
    agreement_rows: int = Field(default=64, ge=1)
    latency_samples: int = Field(default=30, ge=5)
    ready_timeout_s: float = Field(default=180, gt=0)
    # `human`: the lifecycle DAG's promote waits for a person's approval (mlops/orchestration/approval.py)
    approval: Literal["auto", "human"] = "auto"
    approval_timeout_h: float = Field(default=72, gt=0)  # no answer by then counts as a rejection


class MonitorSettings(Strict):
    current: str = Field(min_length=1)
    window_rows: int = Field(ge=10)
    window_hours: float | None = Field(default=None, gt=0)
    min_rows: int = Field(ge=10)
    drift_share: float = Field(gt=0, le=1)
    num_threshold: float = Field(gt=0)
    cat_threshold: float = Field(gt=0)
    embedding_threshold: float = Field(gt=0.5, lt=1)
    confidence_drop: float = Field(gt=0, lt=1)
    history_dir: str = Field(min_length=1)
    schedule: str | None = None

    @model_validator(mode="after")
    def _window_covers_minimum(self) -> MonitorSettings:
        if self.min_rows > self.window_rows:
            raise ValueError("min_rows must not exceed window_rows")
        return self


class ScreenSettings(Strict):
    """When a batch of trusted labels is held for review instead of collected (mlops/loop/screening.py)."""

    confident: float = Field(default=0.9, gt=0, lt=1)  # the champion's confidence that counts as confident
    min_confident_rows: int = Field(default=20, ge=1)  # fewer confident answers: no contradiction verdict
    min_contradiction: float = Field(default=0.15, gt=0, lt=1)  # the contradiction limit is at least this
    error_multiple: float = Field(default=3.0, ge=1)  # ... and at least this many times the champion's test error
    confidence_level: float = Field(default=0.95, gt=0.5, lt=1)  # of the contradiction rate's Wilson interval
    max_source_share: float = Field(default=0.8, gt=0, le=1)  # one source's share of a multi-source batch


class FeedbackSettings(Strict):
    max_items: int = Field(default=256, ge=1)
    batches_dir: str = Field(default="data/feedback", min_length=1)
    held_dir: str = Field(default="data/feedback-held", min_length=1)  # batches held for review, and decided
    screen: ScreenSettings = ScreenSettings()
    queue_dir: str = Field(default="reports/labelling", min_length=1)
    queue_size: int = Field(default=500, ge=1)
    recent_share: float = Field(default=0.5, gt=0, lt=1)
    min_recent_rows: int = Field(default=100, ge=1)
    oversample: int = Field(default=1, ge=1, le=100)


class Settings(Strict):
    seed: int
    data: DataSettings
    validate_: ValidateSettings = Field(alias="validate")
    model: ModelSettings
    train: TrainSettings
    distill: DistillSettings = DistillSettings()
    optimize: OptimizeSettings = OptimizeSettings()
    evaluate: EvaluateSettings
    gate: GateSettings
    serve: ServeSettings
    promote: PromoteSettings = PromoteSettings()
    monitor: MonitorSettings
    feedback: FeedbackSettings = FeedbackSettings()

    @model_validator(mode="after")
    def _budget_fits_a_text(self) -> Settings:
        budget = self.serve.max_batch_tokens
        if budget is not None and budget < self.model.max_length:
            raise ValueError(f"serve.max_batch_tokens ({budget}) must be at least model.max_length "
                             f"({self.model.max_length}): a micro-batch must hold one text of full length")
        return self


def format_validation_error(error: ValidationError, origin: str) -> str:
    """Render pydantic's errors as `origin: dotted.key: problem` lines."""
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"{origin}: {key}: {message}")
    return "; ".join(lines)


def parse_settings(raw: Any, origin: str = "params") -> Settings:
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


def declared_labels(settings: Settings) -> list[str] | None:
    """The label set to enforce: declared in validate.labels, else the names labels map to."""
    if settings.validate_.labels is not None:
        return list(settings.validate_.labels)
    if settings.data.source.label_names:
        return sorted(set(settings.data.source.label_names.values()))
    return None
