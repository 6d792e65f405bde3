"""The BentoML adapter: fails, naming the private API, when an upgrade moves or changes it."""

from __future__ import annotations

import asyncio
import inspect

from mlops.adapters import bentoml_batching


def test_dispatcher_takes_the_arguments_the_service_passes():
    parameters = inspect.signature(bentoml_batching.CorkDispatcher.__init__).parameters
    missing = [name for name in bentoml_batching.DISPATCHER_ARGS if name not in parameters]
    assert not missing, (f"bentoml._internal.marshal.dispatcher.CorkDispatcher no longer takes {missing} "
                         f"(written for {bentoml_batching.WRITTEN_FOR}): update mlops/adapters/bentoml_batching.py")


def test_semaphore_is_non_blocking_and_shared():
    sema = bentoml_batching.NonBlockSema(1)
    assert sema.acquire() is True, "bentoml NonBlockSema.acquire() no longer returns True when free"
    assert sema.acquire() is False, "bentoml NonBlockSema.acquire() no longer refuses when taken"
    sema.release()
    assert sema.acquire() is True


def test_dispatcher_merges_concurrent_calls_and_splits_answers():
    """Three concurrent requests of 1, 2 and 1 texts: each gets back exactly its own answers."""
    seen_batches: list[int] = []

    async def model(requests):
        seen_batches.append(sum(len(texts) for texts in requests))
        return [[text.upper() for text in texts] for texts in requests]

    async def scenario():
        dispatcher = bentoml_batching.make_dispatcher(max_latency_ms=5000, max_batch_size=8,
                                                      fallback=lambda: None, shared=bentoml_batching.NonBlockSema(1))
        batched = dispatcher(model)
        return await asyncio.gather(batched(["a"]), batched(["b", "c"]), batched(["d"]))

    assert asyncio.run(scenario()) == [["A"], ["B", "C"], ["D"]]
    assert sum(seen_batches) == 4
