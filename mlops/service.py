"""The BentoML service: `POST /classify` in front of an adaptively batched model.

Two services, as BentoML intends for batching: `TextClassifier` validates
requests, logs traffic and answers; `ClassifierModel` holds the weights and
receives texts from many concurrent requests merged into one batch. Limits
(texts per request, characters per text, body size) and batching knobs come
from params.yaml, which the Bento carries; an API key, when its environment
variable is set, is required on every endpoint but health and docs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

import bentoml
from pydantic import Field

from mlops.guard import RequestGuard
from mlops.settings import load_settings
from mlops.traffic import TrafficLog

SETTINGS = load_settings(os.environ.get("MLOPS_PARAMS", "params.yaml"))
SERVE = SETTINGS.serve


def model_tag() -> str:
    """The model to serve: an explicit tag, else the registry's champion, else the newest."""
    if os.environ.get("MLOPS_MODEL_TAG"):
        return os.environ["MLOPS_MODEL_TAG"]
    from mlops.registry import champion

    current = champion()
    return current["model"] if current else f"{SERVE.name}:latest"


@bentoml.service(name="classifier-model", workers=1, traffic={"timeout": 60})
class ClassifierModel:
    model_ref = bentoml.models.BentoModel(model_tag())

    def __init__(self) -> None:
        from mlops.model import Classifier, set_cpu_threads

        set_cpu_threads(SERVE.threads)
        self.classifier = Classifier.load(Path(self.model_ref.path))
        self.version = str(self.model_ref.tag)

    @bentoml.api(batchable=True, batch_dim=0, max_batch_size=SERVE.max_batch_size,
                 max_latency_ms=SERVE.max_latency_ms)
    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        proba = self.classifier.predict_proba(texts, batch_size=SERVE.max_batch_size)
        labels = self.classifier.labels
        return [
            {"label": labels[int(row.argmax())], "score": float(row.max()),
             "probabilities": {label: float(p) for label, p in zip(labels, row, strict=True)},
             "model_version": self.version}
            for row in proba
        ]


Text = Annotated[str, Field(min_length=1, max_length=SERVE.max_text_chars)]


@bentoml.service(name=SERVE.name, workers=1, traffic={"timeout": 60, "max_concurrency": 512})
class TextClassifier:
    model = bentoml.depends(ClassifierModel)

    def __init__(self) -> None:
        self.traffic = TrafficLog(Path(os.environ.get("MLOPS_TRAFFIC_DIR", "logs/traffic")))

    @bentoml.api(route="/classify")
    async def classify(
        self, texts: Annotated[list[Text], Field(min_length=1, max_length=SERVE.max_texts)]
    ) -> list[dict[str, Any]]:
        """Classify one or more texts; each answer has the label, its score and all probabilities."""
        started = time.perf_counter()
        results = await self.model.to_async.predict(texts)
        self.traffic.append(texts, results, latency_ms=(time.perf_counter() - started) * 1000)
        return results


TextClassifier.add_asgi_middleware(RequestGuard, max_body_bytes=SERVE.max_body_kb * 1024,
                                   api_key_env=SERVE.api_key_env)
