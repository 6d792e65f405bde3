"""BentoML's adaptive-batching dispatcher, used in the process that answers the request.

BentoML offers adaptive batching publicly only through a batchable API on a
second service; the hop to it pickles every request and cost more than it saved
on small machines (README, "Serving"). So the service drives BentoML's own
dispatcher in-process. Its classes live in `bentoml._internal`: this module is
the one place that imports them, and tests/adapters/test_bentoml_batching.py
fails, naming them, when an upgrade moves or changes them.
"""

from __future__ import annotations

from bentoml._internal.marshal.dispatcher import CorkDispatcher, NonBlockSema

WRITTEN_FOR = "bentoml 1.4.39"
DISPATCHER_ARGS = ("max_latency_in_ms", "max_batch_size", "fallback", "get_batch_size", "batch_dim", "shared_sema")

__all__ = ["CorkDispatcher", "NonBlockSema", "make_dispatcher"]


def make_dispatcher(*, max_latency_ms: int, max_batch_size: int, fallback, shared: NonBlockSema) -> CorkDispatcher:
    """A dispatcher that merges lists of texts (batch dim 0) and shares `shared` with direct model calls."""
    return CorkDispatcher(max_latency_in_ms=max_latency_ms, max_batch_size=max_batch_size, fallback=fallback,
                          get_batch_size=len, batch_dim=(0, 0), shared_sema=shared)
