"""The BentoML service: `POST /classify`, adaptively batched in the process that answers it.

BentoML's textbook layout for batching is two services: an API service that
validates and answers, calling a batchable model service. Between the two,
every request is pickled, sent over a socket, handled by a second HTTP server
and pickled back; on a 2-core machine that hop cost more CPU than it saved
(bench/serve.py: served throughput 0.71x the offline limit at 64 clients).
So one service does both. Each of its `serve.workers` processes validates
requests and hands their texts to BentoML's own adaptive-batching dispatcher
(the CorkDispatcher that a batchable API uses, with `serve.max_batch_size` and
`serve.max_latency_ms`), which merges concurrent requests into model calls;
each call sorts its texts by length and runs micro-batches of
`serve.micro_batch`, each padded only to its own longest text. Calls run in
`serve.model_calls` threads (one per core by default) of `serve.threads`
torch threads each, while the event loop keeps accepting requests: torch
leaves the GIL to the other threads, and a queue that feeds every core keeps
them busy even when one process holds all the connections, as it often does.
A request that finds a model call idle and nobody queued goes straight to it:
the dispatcher would hold it back hoping for company, which only adds latency
while a core waits. `serve.batching: false` runs each request on its own, as
many at a time as there are model-call threads. Limits (texts per request, characters per
text, body size), precision and the traffic log come from params.yaml, which
the Bento carries (`MLOPS_PARAMS` names another file); an API key, when its
environment variable is set, is required on every endpoint but health,
metrics and docs. The model sits in a swappable slot (mlops/serving/swap.py):
a served champion follows the registry's promotions and rollbacks without a
restart; `self.slot.active` is the (version, model) answering new requests.
`/metrics` adds the model's own metrics (mlops/serving/model_metrics.py).
"""

from __future__ import annotations

import os

from mlops.core.environment import apply_defaults

apply_defaults()  # before torch is first imported: OMP_WAIT_POLICY

import asyncio  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated, Any  # noqa: E402

import bentoml  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field, model_validator  # noqa: E402

from mlops.adapters.bentoml_batching import NonBlockSema, make_dispatcher  # noqa: E402
from mlops.core.settings import load_settings  # noqa: E402
from mlops.serving.feedback import FeedbackEndpoint, FeedbackRoute  # noqa: E402
from mlops.serving.guard import RequestGuard  # noqa: E402
from mlops.serving.swap import Active, ModelSlot, Pinned, group_by_model  # noqa: E402
from mlops.serving.traffic import TrafficLog, new_ids  # noqa: E402

SETTINGS = load_settings(os.environ.get("MLOPS_PARAMS", "params.yaml"))
SERVE = SETTINGS.serve
FEEDBACK = FeedbackEndpoint(max_items=SETTINGS.feedback.max_items)  # POST /feedback (mlops/serving/feedback.py)


def model_tag() -> str:
    """The model to serve: an explicit tag, else the registry's champion, else the newest."""
    if os.environ.get("MLOPS_MODEL_TAG"):
        return os.environ["MLOPS_MODEL_TAG"]
    from mlops.core.registry import champion

    current = champion()
    return current["model"] if current else f"{SERVE.name}:latest"


def follow_registry(version: str, classifier: Any) -> ModelSlot:
    """The served model in a swappable slot; a champion (no MLOPS_MODEL_TAG pinned) follows the registry."""
    from mlops.core.registry import champion, model_path
    from mlops.ml.variants import load_served

    slot = ModelSlot(version, classifier, lambda tag: load_served(model_path(tag), SERVE.precision, SERVE.threads),
                     lambda: (champion() or {}).get("model"), SERVE.registry_poll_s)
    if SERVE.follow_registry and not os.environ.get("MLOPS_MODEL_TAG"):
        slot.follow()
    return slot


Text = Annotated[str, Field(min_length=1, max_length=SERVE.max_text_chars)]


class ClassifyRequest(BaseModel):
    """`{"text": "..."}` for one text (one answer), or `{"texts": [...]}` for several (a list of answers)."""

    model_config = ConfigDict(extra="forbid")
    text: Text | None = None
    texts: Annotated[list[Text], Field(min_length=1, max_length=SERVE.max_texts)] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ClassifyRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError('give exactly one of "text" (a string) or "texts" (a list of strings)')
        return self


def overloaded() -> Any:
    """The dispatcher's answer to a request it expects to wait past max_latency_ms: 503, with the reason."""
    from bentoml.exceptions import ServiceUnavailable

    raise ServiceUnavailable(f"overloaded: this request would wait longer than serve.max_latency_ms "
                             f"({SERVE.max_latency_ms} ms); retry later")


def batch_size_histogram(service_name: str) -> Any:
    """`bentoml_service_adaptive_batch_size`, the histogram BentoML's batchable APIs fill, filled by this service.

    prometheus_client is imported here, in the worker, after BentoML has set up
    its multiprocess metrics directory (what BentoML's deprecated
    `bentoml.metrics` defers for the same reason).
    """
    import prometheus_client

    return prometheus_client.Histogram(
        name="adaptive_batch_size", namespace="bentoml_service", documentation="Service adaptive batch size",
        labelnames=["runner_name", "worker_index", "method_name", "service_version", "service_name"],
        buckets=sorted({2 ** power for power in range(SERVE.max_batch_size.bit_length())} | {SERVE.max_batch_size}),
    ).labels(runner_name=service_name, worker_index=bentoml.server_context.worker_index, method_name="classify",
             service_version=bentoml.server_context.bento_version,
             service_name=bentoml.server_context.bento_name or service_name)


@bentoml.service(name=SERVE.name, workers=SERVE.workers, traffic={"timeout": 60, "max_concurrency": 1024})
class TextClassifier:
    model_ref = bentoml.models.BentoModel(model_tag())

    def __init__(self) -> None:
        from mlops.ml.model import set_cpu_threads
        from mlops.ml.variants import load_served, served_variant

        set_cpu_threads(SERVE.threads)
        self.classifier = load_served(Path(self.model_ref.path), SERVE.precision, SERVE.threads)
        self.version = str(self.model_ref.tag)
        self.slot = follow_registry(self.version, self.classifier)  # hot swap: mlops/serving/swap.py
        FEEDBACK.attach(lambda: self.slot.active[1].labels)  # the labels of the model serving now
        self.traffic = TrafficLog(Path(os.environ.get("MLOPS_TRAFFIC_DIR", "logs/traffic")), SERVE.traffic)
        calls = SERVE.model_call_count()
        self.executor = ThreadPoolExecutor(max_workers=calls, thread_name_prefix="model")
        self.idle_calls = NonBlockSema(calls)  # model calls free right now, shared with the dispatcher
        self.dispatcher = make_dispatcher(max_latency_ms=SERVE.max_latency_ms, max_batch_size=SERVE.max_batch_size,
                                          fallback=overloaded, shared=self.idle_calls)
        self.batched = self.dispatcher(self.infer_merged)
        self.queued = 0  # requests waiting in the dispatcher
        try:
            self.batch_sizes = batch_size_histogram(SERVE.name)
        except Exception:  # metrics off or a BentoML without them: batching works the same
            self.batch_sizes = None
        from mlops.serving.model_metrics import ModelMetrics

        variant = served_variant(Path(self.model_ref.path), SERVE.precision)
        self.model_metrics = ModelMetrics(self.version, variant).start()  # predictions and drift

    def answer(self, texts: list[str], active: Active | None = None) -> tuple[list[dict[str, Any]], list[str]]:
        """Per text: label, score, all probabilities, model version; and its embedding for the traffic log."""
        from mlops.ml.model import encode_embedding

        version, classifier = active or self.slot.active
        proba, embeddings = classifier.predict(texts, batch_size=SERVE.micro_batch)
        labels = classifier.labels
        results = [{"label": labels[int(row.argmax())], "score": float(row.max()),
                    "probabilities": {label: float(p) for label, p in zip(labels, row, strict=True)},
                    "model_version": version} for row in proba]
        return results, [encode_embedding(vector) for vector in embeddings]

    async def infer(self, texts: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
        active = getattr(texts, "active", None) or self.slot.active  # the model this request started on
        return await asyncio.get_running_loop().run_in_executor(self.executor, self.answer, texts, active)

    async def infer_merged(self, requests: Sequence[list[str]]) -> list[tuple[list[dict[str, Any]], list[str]]]:
        """The texts of many concurrent requests in one model call (per model, across a swap), split back."""
        if self.batch_sizes is not None:
            self.batch_sizes.observe(sum(len(texts) for texts in requests))
        out: list[Any] = [None] * len(requests)
        for active, indexes in group_by_model(requests, self.slot.active):
            merged = Pinned([text for i in indexes for text in requests[i]], active)
            results, embeddings = await self.infer(merged)
            start = 0
            for i in indexes:
                out[i] = (results[start:start + len(requests[i])], embeddings[start:start + len(requests[i])])
                start += len(requests[i])
        return out

    async def infer_batched(self, texts: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
        """Straight to the model when a model call is idle and no request waits; else the dispatcher's batch.

        The dispatcher holds a lone request back a little, hoping for company;
        with a core idle that only adds latency, so batches form exactly when
        every model call is busy, which is when they pay.
        """
        if self.queued == 0 and self.idle_calls.acquire():
            try:
                return await self.infer(texts)
            finally:
                self.idle_calls.release()
        self.queued += 1
        try:
            return await self.batched(texts)
        finally:
            self.queued -= 1

    @bentoml.api(route="/classify", input_spec=ClassifyRequest)
    async def classify(self, text: str | None = None,
                       texts: list[str] | None = None) -> dict[str, Any] | list[dict[str, Any]]:
        """Classify one text or a list: per text, its id, the label, its score, all probabilities, the model version."""
        batch = Pinned([text] if texts is None else texts, self.slot.active)
        started = time.perf_counter()
        results, embeddings = await (self.infer_batched(batch) if SERVE.batching else self.infer(batch))
        for result, request_id in zip(results, new_ids(len(results)), strict=True):
            result["id"] = request_id  # what POST /feedback names to label this text
        if SERVE.traffic.enabled:
            self.traffic.append(batch, results, (time.perf_counter() - started) * 1000, embeddings)
        self.model_metrics.observe(results)
        return results[0] if texts is None else results


async def docs_page(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """`/docs`: BentoML serves its Swagger UI at `/` and the OpenAPI document at `/docs.json`; send users there."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 307, "headers": [(b"location", b"/")]})
        await send({"type": "http.response.body", "body": b""})


TextClassifier.mount_asgi_app(docs_page, path="/docs")
TextClassifier.add_asgi_middleware(RequestGuard, max_body_bytes=SERVE.max_body_kb * 1024,
                                   api_key_env=SERVE.api_key_env)
TextClassifier.add_asgi_middleware(FeedbackRoute, endpoint=FEEDBACK)  # after the guard, which runs first
