"""The BentoML service: `POST /classify` in front of an adaptively batched model.

Two services, as BentoML intends for batching: `TextClassifier` validates
requests, logs traffic and answers; `ClassifierModel` holds the weights and
receives texts from many concurrent requests merged into one batch, which it
sorts by length and runs in micro-batches padded only to their own longest
text. Limits (texts per request, characters per text, body size), batching,
workers, threads and precision come from params.yaml, which the Bento carries
(`MLOPS_PARAMS` names another file); an API key, when its environment variable
is set, is required on every endpoint but health, metrics and docs.
"""

from __future__ import annotations

import os

# libgomp's default busy-wait makes torch threads spin against any other busy
# process on a small machine (bs1 inference 55/s -> 2/s on 2 cores); set
# before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated, Any  # noqa: E402

import bentoml  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field, model_validator  # noqa: E402

from mlops.guard import RequestGuard  # noqa: E402
from mlops.settings import load_settings  # noqa: E402
from mlops.traffic import TrafficLog  # noqa: E402

SETTINGS = load_settings(os.environ.get("MLOPS_PARAMS", "params.yaml"))
SERVE = SETTINGS.serve


def model_tag() -> str:
    """The model to serve: an explicit tag, else the registry's champion, else the newest."""
    if os.environ.get("MLOPS_MODEL_TAG"):
        return os.environ["MLOPS_MODEL_TAG"]
    from mlops.registry import champion

    current = champion()
    return current["model"] if current else f"{SERVE.name}:latest"


@bentoml.service(name="classifier-model", workers=SERVE.worker_count(), traffic={"timeout": 60})
class ClassifierModel:
    model_ref = bentoml.models.BentoModel(model_tag())

    def __init__(self) -> None:
        from mlops.model import Classifier, set_cpu_threads

        set_cpu_threads(SERVE.threads)
        self.classifier = Classifier.load(Path(self.model_ref.path), precision=SERVE.precision)
        self.version = str(self.model_ref.tag)

    def answer(self, texts: list[str]) -> list[dict[str, Any]]:
        from mlops.model import encode_embedding

        proba, embeddings = self.classifier.predict(texts, batch_size=SERVE.micro_batch)
        labels = self.classifier.labels
        return [
            {"label": labels[int(row.argmax())], "score": float(row.max()),
             "probabilities": {label: float(p) for label, p in zip(labels, row, strict=True)},
             "model_version": self.version, "embedding": encode_embedding(vector)}
            for row, vector in zip(proba, embeddings, strict=True)
        ]

    @bentoml.api(batchable=True, batch_dim=0, max_batch_size=SERVE.max_batch_size,
                 max_latency_ms=SERVE.max_latency_ms)
    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        """Texts of many concurrent requests, merged by BentoML's adaptive batching."""
        return self.answer(texts)

    @bentoml.api
    def predict_unbatched(self, texts: list[str]) -> list[dict[str, Any]]:
        """One request's texts on their own (`serve.batching: false`)."""
        return self.answer(texts)


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


@bentoml.service(name=SERVE.name, workers=1, traffic={"timeout": 60, "max_concurrency": 1024})
class TextClassifier:
    model = bentoml.depends(ClassifierModel)

    def __init__(self) -> None:
        self.traffic = TrafficLog(Path(os.environ.get("MLOPS_TRAFFIC_DIR", "logs/traffic")), SERVE.traffic)
        self.method = "predict" if SERVE.batching else "predict_unbatched"  # the client resolves it per call
        # BentoML >= 1.4.31 closes its client session to the model service
        # every 100 requests while other requests are still in flight on it
        # (bentoml/BentoML#5540): under load, every in-flight request then
        # fails with "Server disconnected". Renew by age only; retry the rest.
        manager = getattr(self.model.to_async, "_session_manager", None)
        if manager is not None and hasattr(manager, "max_requests"):
            manager.max_requests = 2**62

    async def call_model(self, batch: list[str]) -> list[dict[str, Any]]:
        """The model service's answer; a connection dropped under us is retried (inference is idempotent)."""
        import aiohttp

        for attempt in range(3):
            try:
                return await getattr(self.model.to_async, self.method)(batch)
            except (aiohttp.ClientConnectionError, RuntimeError) as error:
                if attempt == 2 or (isinstance(error, RuntimeError) and "Session is closed" not in str(error)):
                    raise
        raise AssertionError("unreachable")

    @bentoml.api(route="/classify", input_spec=ClassifyRequest)
    async def classify(self, text: str | None = None,
                       texts: list[str] | None = None) -> dict[str, Any] | list[dict[str, Any]]:
        """Classify one text or a list: per text, the label, its score, all probabilities and the model version."""
        batch = [text] if texts is None else texts
        started = time.perf_counter()
        results = await self.call_model(batch)
        embeddings = [result.pop("embedding") for result in results]
        if SERVE.traffic.enabled:
            self.traffic.append(batch, results, (time.perf_counter() - started) * 1000, embeddings)
        return results[0] if texts is None else results


TextClassifier.add_asgi_middleware(RequestGuard, max_body_bytes=SERVE.max_body_kb * 1024,
                                   api_key_env=SERVE.api_key_env)
