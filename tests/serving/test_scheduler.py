"""The arrival-ordered scheduler: windows of the oldest requests, one tokenizer call per window, micro-batches cut
by the token budget, no request overtaken by a later one across windows, one model per window. Deterministic:
a fake runtime, micro-batches taken and finished by hand; one test runs the threads (no timing asserted)."""

from __future__ import annotations

import asyncio
import threading

import numpy as np

from mlops.serving.scheduler import ModelCalls, Overloaded, Request, Scheduler


class FakeRuntime:
    """Tokens are the words of a text; probabilities say the text's word count; records every tokenizer call."""

    labels = ["short", "long"]

    def __init__(self) -> None:
        self.tokenized: list[list[str]] = []

    def tokenize(self, texts):
        self.tokenized.append(list(texts))
        return {"input_ids": [[1] * len(text.split()) for text in texts]}

    def predict_encoded(self, encoded, rows):
        counts = np.array([len(encoded["input_ids"][row]) for row in rows], dtype=np.float32)
        return np.stack([counts, -counts], axis=1), np.stack([counts, counts], axis=1)


def words(count: int) -> str:
    return " ".join(["w"] * count)


def drain(scheduler: Scheduler) -> list[tuple[int, list[Request]]]:
    """Run every micro-batch in the order the scheduler hands them out: (window, requests completed) each."""
    served = []
    while (batch := scheduler.take()) is not None:
        served.append((batch.window, scheduler.finish(batch, *batch.active[1].predict_encoded(batch.encoded,
                                                                                                batch.rows))))
    return served


def test_requests_complete_in_arrival_order_across_windows():
    runtime = FakeRuntime()
    active = ("m:1", runtime)
    scheduler = Scheduler(window_texts=4, max_rows=2, max_tokens=8)
    lengths = [9, 1, 7, 2, 2, 8, 1, 3, 5, 1]  # long ones arrive first: sorting the whole queue would overtake them
    requests = [scheduler.submit(Request([words(n)], active)) for n in lengths]
    served = drain(scheduler)
    completed = [(window, request.seq) for window, done in served for request in done]
    assert sorted(seq for _, seq in completed) == list(range(len(lengths)))  # each answered exactly once
    windows = {seq: window for window, seq in completed}
    for earlier in range(len(lengths)):
        for later in range(earlier + 1, len(lengths)):  # never answered in a window after a later request's
            assert windows[earlier] <= windows[later], (earlier, later, windows)
    assert [windows[i] for i in range(len(lengths))] == [1, 1, 1, 1, 2, 2, 2, 2, 3, 3]  # oldest 4 texts first
    assert len(runtime.tokenized) == 3  # one tokenizer call per window, not per request or micro-batch
    for request, n in zip(requests, lengths, strict=True):
        assert request.proba[0, 0] == n and request.embeddings.shape == (1, 2)


def test_inside_a_window_micro_batches_are_sorted_by_length_and_within_the_token_budget():
    active = ("m:1", FakeRuntime())
    scheduler = Scheduler(window_texts=64, max_rows=3, max_tokens=12)
    scheduler.submit(Request([words(n) for n in (6, 1, 5, 2, 2, 13)], active))
    batches = []
    while (batch := scheduler.take()) is not None:
        batches.append([len(batch.encoded["input_ids"][row]) for row in batch.rows])
        scheduler.finish(batch, *batch.active[1].predict_encoded(batch.encoded, batch.rows))
    assert batches == [[1, 2, 2], [5, 6], [13]]  # 3 rows at most; 2 x 6 <= 12; 13 over the budget goes alone


def test_a_multi_text_request_answers_when_its_last_text_is_done_in_input_order():
    active = ("m:1", FakeRuntime())
    scheduler = Scheduler(window_texts=64, max_rows=1)
    request = scheduler.submit(Request([words(3), words(1), words(2)], active))
    served = drain(scheduler)
    assert [len(done) for _, done in served] == [0, 0, 1]
    assert request.proba[:, 0].tolist() == [3, 1, 2]  # back in the request's own order


def test_a_window_holds_one_model_and_keeps_arrival_order_across_a_swap():
    old, new = ("m:1", FakeRuntime()), ("m:2", FakeRuntime())
    scheduler = Scheduler(window_texts=64, max_rows=8)
    pinned = [old, old, new, old]
    for active in pinned:
        scheduler.submit(Request(["a b"], active))
    served = drain(scheduler)
    assert [[r.active[0] for r in done] for _, done in served] == [["m:1", "m:1"], ["m:2"], ["m:1"]]
    assert len(old[1].tokenized) == 2 and len(new[1].tokenized) == 1


def test_a_failing_model_call_fails_its_requests_once_and_the_next_window_runs():
    class Broken(FakeRuntime):
        def predict_encoded(self, encoded, rows):
            raise RuntimeError("boom")

    scheduler = Scheduler(window_texts=1, max_rows=8)
    done: list[Request] = []
    bad = scheduler.submit(Request(["a", "b"], ("m:1", Broken()), done.append))
    good = scheduler.submit(Request(["c"], ("m:1", FakeRuntime()), done.append))
    batch = scheduler.take()
    scheduler.fail(batch, RuntimeError("boom"))
    drain(scheduler)
    assert done == [bad, good] and isinstance(bad.error, RuntimeError) and good.error is None


def test_a_window_that_cannot_be_tokenised_fails_its_requests_and_the_next_window_runs():
    class Untokenisable(FakeRuntime):
        def tokenize(self, texts):
            raise ValueError("bad text")

    scheduler = Scheduler(window_texts=8, max_rows=8)
    done: list[Request] = []
    bad = scheduler.submit(Request(["a"], ("m:1", Untokenisable()), done.append))
    good = scheduler.submit(Request(["b c"], ("m:2", FakeRuntime()), done.append))
    batch = scheduler.take()  # the first window fails at once; the take goes on to the next one
    assert batch.owners == [(good, 0)] and done == [bad] and isinstance(bad.error, ValueError)
    scheduler.finish(batch, *batch.active[1].predict_encoded(batch.encoded, batch.rows))
    assert done == [bad, good] and scheduler.take() is None


def test_model_call_threads_answer_every_request_and_refuse_when_the_oldest_waited_too_long():
    runtime = FakeRuntime()
    scheduler = Scheduler(window_texts=8, max_rows=2, max_tokens=16)
    calls = ModelCalls(scheduler, calls=2)
    answered: list[Request] = []
    finished = threading.Event()

    def done(request: Request) -> None:
        answered.append(request)
        if len(answered) == 50:
            finished.set()

    for n in range(50):
        calls.submit(Request([words(1 + n % 7)], ("m:1", runtime), done))
    assert finished.wait(30)
    assert sorted(r.seq for r in answered) == list(range(50))
    calls.stop()
    for thread in calls.threads:
        thread.join(5)
    assert not any(thread.is_alive() for thread in calls.threads)

    stalled = ModelCalls(Scheduler(window_texts=8, max_rows=2), calls=0, max_wait_s=0.0)  # nobody runs the queue
    stalled.scheduler.submit(Request(["a"], ("m:1", runtime)), now=-1.0)  # queued long ago
    try:
        stalled.submit(Request(["b"], ("m:1", runtime)))
        raise AssertionError("a request behind one that waited past the limit must be refused")
    except Overloaded:
        pass


def test_stop_answers_what_is_already_queued():
    """A graceful shutdown: threads stopped after requests were queued still answer them before exiting."""
    scheduler = Scheduler(window_texts=2, max_rows=1)
    calls = ModelCalls(scheduler, calls=0)  # no thread yet: everything stays queued
    answered: list[Request] = []
    for _ in range(5):
        calls.submit(Request(["a b"], ("m:1", FakeRuntime()), answered.append))
    calls.stop()
    worker = threading.Thread(target=calls.run)
    worker.start()
    worker.join(10)
    assert len(answered) == 5 and not worker.is_alive()


def test_answers_reach_an_asyncio_future_from_the_model_thread():
    async def scenario():
        loop = asyncio.get_running_loop()
        calls = ModelCalls(Scheduler(window_texts=8, max_rows=4), calls=1)
        future = loop.create_future()
        calls.submit(Request(["x y z"], ("m:1", FakeRuntime()),
                             lambda r: loop.call_soon_threadsafe(future.set_result, r)))
        request = await asyncio.wait_for(future, 30)
        calls.stop()
        return request.proba[0, 0]

    assert asyncio.run(scenario()) == 3
