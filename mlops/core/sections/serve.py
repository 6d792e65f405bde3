"""The `serve` section: the BentoML service and its traffic log."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from mlops.core.sections.base import Strict


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
