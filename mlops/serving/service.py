"""The BentoML service: `POST /classify`, micro-batched in arrival order in the process that answers it.

BentoML's textbook layout for batching is two services: an API service that
validates and answers, calling a batchable model service. Between the two,
every request is pickled, sent over a socket, handled by a second HTTP server
and pickled back; on a 2-core machine that hop cost more CPU than it saved.
So one service does both. Each of its `serve.workers` processes validates
requests and queues their texts in its scheduler (mlops/serving/scheduler.py),
which `serve.model_calls` threads (one per core by default) of `serve.threads`
torch threads each work from, while the event loop keeps accepting requests:
a free model call takes the next micro-batch of the current window; a window
is the oldest queued requests (up to `serve.max_batch_size` texts), tokenised
in one call, sorted by token count and cut into micro-batches of at most
`serve.max_batch_tokens` padded tokens (rows x longest) and `serve.micro_batch`
rows. Every model call works on the same window, so requests are served in
arrival order across windows and answered as soon as their own texts are done:
the tail stays near the median. A lone request finds a model call waiting and
runs at once: nothing is held back hoping for company. A request that arrives
when the oldest queued one has waited past `serve.max_latency_ms` gets 503.
`serve.batching: false` runs each request on its own, as many at a time as
there are model-call threads. The traffic log is written by a background
thread from a bounded queue (mlops/serving/traffic.py), after the answer, and
flushed when the worker shuts down. Limits (texts per request, characters per
text, body size), precision and the traffic log come from params.yaml, which
the Bento carries (`MLOPS_PARAMS` names another file). Every endpoint but
health and docs needs a credential of its role (mlops/serving/credentials.py):
a client's or a labeller's key, the metrics key for metrics when one is set;
keyless requests are answered from loopback only. The model sits in a
swappable slot (mlops/serving/swap.py):
a served champion follows the registry's promotions and rollbacks without a
restart; `self.slot.active` is the (version, model) answering new requests.
While the registry names a canary, a share of clients is answered by it
(mlops/serving/canary.py); a canary answer that fails is answered again by
the champion. `/metrics` adds the model's own metrics (mlops/serving/model_metrics.py).
BentoML's access log and its tracing spans are settings, off by default
(mlops/serving/server_config.py). A worker ends with the `bentoml serve` that
started it, even a killed one (mlops/serving/worker_lifetime.py).
"""

from __future__ import annotations

from mlops.core.environment import apply_defaults

apply_defaults()  # before torch is first imported: OMP_WAIT_POLICY

import asyncio  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated, Any  # noqa: E402

import bentoml  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field, model_validator  # noqa: E402
from starlette.responses import Response  # noqa: E402

from mlops.core.environment import environment, traffic_dir  # noqa: E402
from mlops.core.settings import load_settings  # noqa: E402
from mlops.serving.canary import CANDIDATE, CHAMPION, CanaryRouter, client_id  # noqa: E402
from mlops.serving.credentials import Credentials  # noqa: E402
from mlops.serving.feedback import FeedbackEndpoint, FeedbackRoute  # noqa: E402
from mlops.serving.guard import RequestGuard  # noqa: E402
from mlops.serving.scheduler import ModelCalls, Overloaded, Request, Scheduler  # noqa: E402
from mlops.serving.server_config import service_config  # noqa: E402
from mlops.serving.shadow import start_shadow  # noqa: E402
from mlops.serving.swap import Active, ModelSlot, Pinned  # noqa: E402
from mlops.serving.traffic import TrafficLog, TrafficWriter, new_ids  # noqa: E402
from mlops.serving.worker_lifetime import tie_worker_to_server  # noqa: E402

tie_worker_to_server(bentoml.server_context.worker_index)  # a killed `bentoml serve` takes its workers with it

SETTINGS = load_settings(environment().params)
SERVE = SETTINGS.serve
FEEDBACK = FeedbackEndpoint(max_items=SETTINGS.feedback.max_items)  # POST /feedback (mlops/serving/feedback.py)
CREDENTIALS = Credentials.from_environment(SERVE)  # who may ask what (mlops/serving/credentials.py)
if SERVE.allow_anonymous and not CREDENTIALS.guarded:
    print("serve: WARNING: serve.allow_anonymous is true and no client or labeller key is set: anyone who can reach "
          "this port may classify and send suggestions (never trusted labels)", flush=True)


def model_tag() -> str:
    """The model to serve: an explicit tag, else the registry's champion, else the newest."""
    pinned = environment().model_tag
    if pinned:
        return pinned
    from mlops.core.registry import champion

    current = champion()
    return current["model"] if current else f"{SERVE.name}:latest"


def load(tag: str) -> Any:
    """A stored model as it serves, loaded beside the one serving (a new champion, a canary)."""
    from mlops.core.registry import model_path
    from mlops.ml.variants import load_served

    model = load_served(model_path(tag), SERVE.precision, SERVE.threads)
    gc.collect()  # one full collection per swap, then the new model's objects are out of the collector's sight
    gc.freeze()
    return model


def follow_registry(version: str, classifier: Any) -> ModelSlot:
    """The served model in a swappable slot; a champion (no MLOPS_MODEL_TAG pinned) follows the registry."""
    from mlops.core.registry import champion

    slot = ModelSlot(version, classifier, load, lambda: (champion() or {}).get("model"), SERVE.registry_poll_s)
    if SERVE.follow_registry and not environment().model_tag:
        slot.follow()
    return slot


def follow_canary() -> CanaryRouter:
    """The registry's canary, when one runs, for a served champion (one pinned by MLOPS_MODEL_TAG has none)."""
    from mlops.core.registry import bentoml_home, canary

    router = CanaryRouter(load, canary, bentoml_home(), SERVE.registry_poll_s)
    return router.follow() if SERVE.follow_registry and not environment().model_tag else router


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
    """The answer to a request that arrives while the oldest queued one has waited past max_latency_ms: 503."""
    from bentoml.exceptions import ServiceUnavailable

    raise ServiceUnavailable(f"overloaded: queued requests have waited longer than serve.max_latency_ms "
                             f"({SERVE.max_latency_ms} ms); retry later")


def dropped_records_counter() -> Any:
    """`mlops_traffic_log_dropped_total`: texts not logged because the traffic log's queue was full."""
    import prometheus_client

    return prometheus_client.Counter("mlops_traffic_log_dropped", "Texts not written to the traffic log because "
                                     "its queue (serve.traffic.queue_size) was full")


def resolve(future: asyncio.Future, request: Request) -> None:
    if not future.done():  # a client that went away cancelled it
        future.set_result(request)


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


@bentoml.service(**service_config(SERVE))  # access log and tracing: mlops/serving/server_config.py
class TextClassifier:
    model_ref = bentoml.models.BentoModel(model_tag())

    def __init__(self) -> None:
        from mlops.ml.model import set_cpu_threads
        from mlops.ml.variants import load_served, served_variant

        set_cpu_threads(SERVE.threads)
        self.classifier = load_served(Path(self.model_ref.path), SERVE.precision, SERVE.threads)
        self.version = str(self.model_ref.tag)
        self.slot = follow_registry(self.version, self.classifier)  # hot swap: mlops/serving/swap.py
        self.canary = follow_canary()  # a share of clients on the registry's canary: mlops/serving/canary.py
        FEEDBACK.attach(lambda: self.slot.active[1].labels)  # the labels of the model serving now
        try:
            self.batch_sizes = batch_size_histogram(SERVE.name)
            dropped = dropped_records_counter().inc
        except Exception:  # metrics off or a BentoML without them: serving works the same
            self.batch_sizes, dropped = None, None
        self.traffic = TrafficWriter(TrafficLog(traffic_dir(), SERVE.traffic), SERVE.traffic.queue_size, dropped) \
            if SERVE.traffic.enabled else None
        self.shadow = start_shadow(SERVE, traffic_dir(), self.version)  # serve.shadow: mlops/serving/shadow.py
        calls = SERVE.model_call_count()
        if SERVE.batching:
            self.scheduler = Scheduler(window_texts=SERVE.max_batch_size, max_rows=SERVE.micro_batch,
                                       max_tokens=SERVE.max_batch_tokens,
                                       on_window=None if self.batch_sizes is None else self.batch_sizes.observe)
            self.calls = ModelCalls(self.scheduler, calls, max_wait_s=SERVE.max_latency_ms / 1000)
        else:
            self.executor = ThreadPoolExecutor(max_workers=calls, thread_name_prefix="model")
        # in the worker only: its gauges live in the multiprocess files BentoML sets up for each worker
        from mlops.serving.model_metrics import ModelMetrics

        variant = served_variant(Path(self.model_ref.path), SERVE.precision)
        self.model_metrics = ModelMetrics(self.version, variant).start()  # predictions and drift
        # torch, transformers and BentoML leave ~250k objects that Python's cyclic collector scans in every full
        # collection (150 ms on an idle core; a stall of every request in flight); they live as long as the
        # worker, so move them out of its sight.
        gc.collect()
        gc.freeze()

    @staticmethod
    def results(version: str, labels: list[str], proba: Any) -> list[dict[str, Any]]:
        """Per text: label, score, all probabilities, model version.

        From Python floats (one `tolist` for the request), not numpy scalars: per-row numpy calls on the request
        thread cost more than the rest of the answer.
        """
        answers = []
        for row in proba.tolist():
            score = max(row)
            answers.append({"label": labels[row.index(score)], "score": score,
                            "probabilities": dict(zip(labels, row, strict=True)), "model_version": version})
        return answers

    def answer(self, texts: list[str], active: Active) -> tuple[list[dict[str, Any]], Any]:
        """One request on its own (`serve.batching: false`): its answers and embeddings."""
        version, classifier = active
        proba, embeddings = classifier.predict(texts, batch_size=SERVE.micro_batch,
                                               max_batch_tokens=SERVE.max_batch_tokens)
        return self.results(version, classifier.labels, proba), embeddings

    async def infer(self, texts: Pinned) -> tuple[list[dict[str, Any]], Any]:
        return await asyncio.get_running_loop().run_in_executor(self.executor, self.answer, texts, texts.active)

    async def infer_batched(self, texts: Pinned) -> tuple[list[dict[str, Any]], Any]:
        """Queued in arrival order, answered when the micro-batches holding its texts are done."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        try:
            self.calls.submit(Request(texts, texts.active, lambda done: loop.call_soon_threadsafe(resolve, future,
                                                                                                     done)))
        except Overloaded:
            overloaded()
        request = await future
        if request.error is not None:
            raise request.error
        version, classifier = request.active
        return self.results(version, classifier.labels, request.proba), request.embeddings

    async def infer_routed(self, texts: list[str], canary: Active | None) -> tuple[list[dict[str, Any]], Any, Any]:
        """Answers from the canary when this client is in its share, else (or when the canary fails: its error
        is counted, never shown) from the champion. Also the Pinned batch that answered."""
        from bentoml.exceptions import ServiceUnavailable

        batch = Pinned(texts, canary or self.slot.active)
        started = time.perf_counter()
        try:
            results, embeddings = await (self.infer_batched(batch) if SERVE.batching else self.infer(batch))
        except Exception as error:
            if canary is None or isinstance(error, ServiceUnavailable):  # overload is no fault of the canary
                raise
            self.canary.observe(CANDIDATE, None, error)
            return await self.infer_routed(texts, None)
        self.canary.observe(CANDIDATE if canary else CHAMPION, (time.perf_counter() - started) * 1000)
        return results, embeddings, batch

    @bentoml.api(route="/classify", input_spec=ClassifyRequest)
    async def classify(self, ctx: bentoml.Context, text: str | None = None,
                       texts: list[str] | None = None) -> dict[str, Any] | list[dict[str, Any]]:
        """Classify one text or a list: per text, its id, the label, its score, all probabilities, the model version.

        The answer is that JSON (the annotation gives the OpenAPI document its schema), serialised here and sent
        as a ready response: BentoML's output path would build a pydantic JSON schema of the return type and dump
        the answer through pydantic on every request (a sixth of the worker's GIL time at 64 clients).
        """
        started = time.perf_counter()
        results, embeddings, batch = await self.infer_routed([text] if texts is None else texts,
                                                             self.canary.route(client_id(ctx.request.scope)))
        for result, request_id in zip(results, new_ids(len(results)), strict=True):
            result["id"] = request_id  # what POST /feedback names to label this text
        self.model_metrics.observe(results, serving=self.slot.active[0])
        if self.traffic is not None:  # queued for the writer thread: the answer does not wait for the disk
            self.traffic.submit(batch, results, (time.perf_counter() - started) * 1000, embeddings)
        if self.shadow is not None:  # queued for the challenger's thread: never waited for, never seen
            self.shadow.offer(batch, results)
        return Response(json.dumps(results[0] if texts is None else results), media_type="application/json")

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        """A graceful stop: answer what is queued, then write every queued traffic record."""
        self.slot.stop()
        self.canary.stop()
        if SERVE.batching:
            self.calls.stop()
            for thread in self.calls.threads:
                thread.join(30)
        if self.traffic is not None:
            self.traffic.close()
        if self.shadow is not None:
            self.shadow.close()


async def docs_page(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """`/docs`: BentoML serves its Swagger UI at `/` and the OpenAPI document at `/docs.json`; send users there."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 307, "headers": [(b"location", b"/")]})
        await send({"type": "http.response.body", "body": b""})


TextClassifier.mount_asgi_app(docs_page, path="/docs")
TextClassifier.add_asgi_middleware(RequestGuard, max_body_bytes=SERVE.max_body_kb * 1024,
                                   credentials=CREDENTIALS)
TextClassifier.add_asgi_middleware(FeedbackRoute, endpoint=FEEDBACK)  # after the guard, which runs first
