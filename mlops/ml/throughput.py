"""Offline throughput of several runtimes of one model, measured side by side.

Texts/s on a shared machine moves with whatever else runs; measured in one
process, window after window, with the order of the runtimes rotating on
every window, a busy moment slows them all alike and their ratio holds. The
windows are what the service's batcher hands a model call (up to 64 texts,
sorted by length inside `predict`) and each runs in micro-batches of 8, the
served setting (`serve.max_batch_size`, `serve.micro_batch`).
"""

from __future__ import annotations

import time
from typing import Any

WINDOW = 64
MICRO_BATCH = 8


def measure_throughput(runtimes: dict[str, Any], texts: list[str], window: int = WINDOW,
                       micro_batch: int = MICRO_BATCH) -> dict[str, float]:
    """Texts per second of each runtime on the same `texts`, after one warm-up window each."""
    windows = [texts[start:start + window] for start in range(0, len(texts), window)]
    names = list(runtimes)
    if not windows:
        return dict.fromkeys(names, 0.0)
    for name in names:
        runtimes[name].predict(windows[0], micro_batch)
    elapsed = dict.fromkeys(names, 0.0)
    for i, chunk in enumerate(windows):
        for name in names[i % len(names):] + names[:i % len(names)]:
            started = time.perf_counter()
            runtimes[name].predict(chunk, micro_batch)
            elapsed[name] += time.perf_counter() - started
    return {name: round(len(texts) / max(elapsed[name], 1e-9), 1) for name in names}
