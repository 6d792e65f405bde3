"""Progress bars for the long loops of evaluate, monitor and gate (tqdm, on stderr, shown on a terminal).

Scoring thousands of texts on a CPU takes minutes; a bar with a rate and an
ETA says the stage is alive and when it will end. Off where stderr is not a
terminal (Airflow task logs, CI), so logs are not filled with redraws.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """`items`, with a progress bar named `desc` when stderr is a terminal."""
    from tqdm.auto import tqdm

    yield from tqdm(items, desc=desc, total=total, unit=unit, disable=None, leave=False)


def predict_with_progress(classifier: Any, texts: Sequence[str], desc: str, chunk_size: int = 512,
                          batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """`classifier.predict(texts)` in chunks of `chunk_size`, one bar step per text; the same outputs."""
    from tqdm.auto import tqdm

    texts = list(texts)
    if len(texts) <= chunk_size:
        return classifier.predict(texts, batch_size)
    probas, embeddings = [], []
    with tqdm(total=len(texts), desc=desc, unit="text", disable=None, leave=False) as bar:
        for start in range(0, len(texts), chunk_size):
            proba, embedding = classifier.predict(texts[start:start + chunk_size], batch_size)
            probas.append(proba)
            embeddings.append(embedding)
            bar.update(len(proba))
    return np.concatenate(probas), np.concatenate(embeddings)
