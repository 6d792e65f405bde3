"""Progress bars for the long loops of train, evaluate, monitor and gate (tqdm, on stderr, shown on a terminal).

Scoring thousands of texts on a CPU takes minutes; a bar with a rate and an
ETA says the stage is alive and when it will end. Off where stderr is not a
terminal (CI), and wherever MLOPS_PROGRESS=0 says so: the Airflow tasks set it,
since a task log keeps every redraw of a bar as a line of its own and buries
the stage's answer under them (training's one line per logging step stays).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

from mlops.core.environment import bars_requested

T = TypeVar("T")


def bars_shown() -> bool:
    """Whether this process draws progress bars: MLOPS_PROGRESS when it says 0 or 1, else whether stderr is a
    terminal."""

    return bars_requested()


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """`items`, with a progress bar named `desc` when `bars_shown()`."""
    from tqdm.auto import tqdm

    yield from tqdm(items, desc=desc, total=total, unit=unit, disable=not bars_shown(), leave=False)


def predict_with_progress(classifier: Any, texts: Sequence[str], desc: str, chunk_size: int = 512,
                          batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """`classifier.predict(texts)` in chunks of `chunk_size`, one bar step per text; the same outputs."""
    from tqdm.auto import tqdm

    texts = list(texts)
    if len(texts) <= chunk_size:
        return classifier.predict(texts, batch_size)
    probas, embeddings = [], []
    with tqdm(total=len(texts), desc=desc, unit="text", disable=not bars_shown(), leave=False) as bar:
        for start in range(0, len(texts), chunk_size):
            proba, embedding = classifier.predict(texts[start:start + chunk_size], batch_size)
            probas.append(proba)
            embeddings.append(embedding)
            bar.update(len(proba))
    return np.concatenate(probas), np.concatenate(embeddings)
