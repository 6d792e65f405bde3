"""Arrival-ordered micro-batching: the texts of concurrent requests, fed to the model calls oldest first.

Requests wait in one queue per worker process, in arrival order. A model call
that is free takes the next micro-batch of the current *window*; when the
window has none left, it opens the next one: the oldest waiting requests, up
to `window_texts` texts (whole requests, all pinned to the same model, see
mlops/serving/swap.py), tokenised in one tokenizer call, sorted by token
count and cut into micro-batches whose padded size (rows x longest) stays
within `max_tokens` (and `max_rows`). Every model call of the process works
on the same window, so a window is done as soon as possible, and no request
is overtaken by a later one across windows: length decides the order only
inside a window, among requests that arrived together. A request is answered
the moment its last text is done, not when its whole window is.

`Scheduler` is the queue and the plan, with no threads and no clock of its
own (deterministic, tested on its own); `ModelCalls` runs it in threads.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlops.ml.model import plan_micro_batches

logger = logging.getLogger("mlops.serving.scheduler")

Active = tuple[str, Any]  # (model version, runtime), as mlops/serving/swap.py pins it


def notify(request: Request) -> None:
    """Tell a request's owner it is answered; a failing callback (its event loop closed) is logged, not raised."""
    try:
        request.done(request)
    except Exception:
        logger.exception("could not hand an answer back to its request")


class Overloaded(Exception):
    """The oldest waiting request has already waited past the limit: refuse new ones (503)."""


@dataclass(eq=False)
class Request:
    """One request's texts, the model it is pinned to, and what is known of its answers so far."""

    texts: Sequence[str]
    active: Active
    done: Callable[[Request], None] = lambda request: None  # called once, from a model thread, when answered
    seq: int = -1
    arrived: float = 0.0
    proba: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    remaining: int = 0
    error: BaseException | None = None


@dataclass(eq=False)
class MicroBatch:
    """Rows of a window's tokenised texts to run together, and whose texts they are (request, position)."""

    active: Active
    encoded: dict[str, list[list[int]]]
    rows: np.ndarray
    owners: list[tuple[Request, int]]
    window: int


@dataclass
class Scheduler:
    """The waiting requests and the current window's micro-batches (not thread-safe: `ModelCalls` locks it)."""

    window_texts: int
    max_rows: int
    max_tokens: int | None = None
    pending: collections.deque[Request] = field(default_factory=collections.deque)
    batches: collections.deque[MicroBatch] = field(default_factory=collections.deque)
    windows: int = 0
    on_window: Callable[[int], None] | None = None  # told each window's text count (the batch-size metric)
    counter: itertools.count = field(default_factory=itertools.count)

    def submit(self, request: Request, now: float = 0.0) -> Request:
        request.seq, request.arrived, request.remaining = next(self.counter), now, len(request.texts)
        self.pending.append(request)
        return request

    def oldest_wait(self, now: float) -> float:
        return now - self.pending[0].arrived if self.pending else 0.0

    def next_window(self) -> list[Request]:
        """The oldest waiting requests: whole ones, the same model as the first, up to `window_texts` texts."""
        window = [self.pending.popleft()]
        texts = len(window[0].texts)
        while self.pending and self.pending[0].active[1] is window[0].active[1] \
                and texts + len(self.pending[0].texts) <= self.window_texts:
            texts += len(self.pending[0].texts)
            window.append(self.pending.popleft())
        return window

    def take(self) -> MicroBatch | None:
        """The next micro-batch to run, opening a new window when the current one is used up; None when idle."""
        while not self.batches:  # a window whose tokenisation failed has none: its requests are failed, go on
            if not self.pending:
                return None
            self.plan(self.next_window())
        return self.batches.popleft()

    def plan(self, window: list[Request]) -> None:
        """Tokenise the window's texts in one call, sort them by token count and cut them by the token budget."""
        self.windows += 1
        owners = [(request, position) for request in window for position in range(len(request.texts))]
        if self.on_window is not None:
            self.on_window(len(owners))
        active = window[0].active
        try:
            encoded = active[1].tokenize([request.texts[position] for request, position in owners])
        except Exception as error:  # a tokenizer failure fails these requests, not the server
            for request in window:
                self.fail_request(request, error)
            return
        lengths = [len(ids) for ids in encoded["input_ids"]]
        for rows in plan_micro_batches(lengths, self.max_rows, self.max_tokens):
            self.batches.append(MicroBatch(active, encoded, rows, [owners[row] for row in rows], self.windows))

    def finish(self, batch: MicroBatch, proba: np.ndarray, embeddings: np.ndarray) -> list[Request]:
        """Record a micro-batch's answers; the requests it completed (each answered exactly once)."""
        completed = []
        for (request, position), row_proba, row_embedding in zip(batch.owners, proba, embeddings, strict=True):
            if request.proba is None:
                request.proba = np.zeros((len(request.texts), len(row_proba)), dtype=np.float32)
                request.embeddings = np.zeros((len(request.texts), len(row_embedding)), dtype=np.float32)
            request.proba[position], request.embeddings[position] = row_proba, row_embedding
            request.remaining -= 1
            if request.remaining == 0 and request.error is None:
                completed.append(request)
        for request in completed:
            notify(request)
        return completed

    def fail(self, batch: MicroBatch, error: BaseException) -> None:
        for request in {id(r): r for r, _ in batch.owners}.values():
            self.fail_request(request, error)

    @staticmethod
    def fail_request(request: Request, error: BaseException) -> None:
        if request.error is None:
            request.error = error
            notify(request)


class ModelCalls:
    """`calls` threads running a `Scheduler`'s micro-batches as they come; `submit` never blocks."""

    def __init__(self, scheduler: Scheduler, calls: int, max_wait_s: float | None = None) -> None:
        self.scheduler, self.max_wait_s = scheduler, max_wait_s
        self.ready = threading.Condition()
        self.stopped = False
        self.threads = [threading.Thread(target=self.run, name=f"model-call-{i}", daemon=True) for i in range(calls)]
        for thread in self.threads:
            thread.start()

    def submit(self, request: Request) -> Request:
        with self.ready:
            now = time.monotonic()
            if self.max_wait_s is not None and self.scheduler.oldest_wait(now) > self.max_wait_s:
                raise Overloaded(f"the oldest queued request has waited over {self.max_wait_s:.1f} s")
            self.scheduler.submit(request, now)
            self.ready.notify()
        return request

    def run(self) -> None:
        while True:
            with self.ready:
                try:
                    while (batch := self.scheduler.take()) is None:
                        if self.stopped:  # only once nothing is left: requests already queued are answered
                            return
                        self.ready.wait()
                except Exception:  # a bug must not end the thread: the window it hit is already dequeued
                    logger.exception("model call: scheduling failed")
                    continue
                if self.scheduler.batches or self.scheduler.pending:
                    self.ready.notify()  # more work: wake another idle call
            try:
                proba, embeddings = batch.active[1].predict_encoded(batch.encoded, batch.rows)
            except Exception as error:
                logger.exception("model call failed")
                with self.ready:
                    self.scheduler.fail(batch, error)
                continue
            with self.ready:
                self.scheduler.finish(batch, proba, embeddings)

    def stop(self) -> None:
        with self.ready:
            self.stopped = True
            self.ready.notify_all()
