"""Shadow: the challenger scores a share of the served requests in the background, and nobody sees its answers.

Offline test sets say how a candidate did on yesterday's data; the shadow
says how it answers today's traffic, before it answers anyone. With
`serve.shadow` on, each worker also loads the *challenger*: the registry's
`challenger` entry (the candidate `package` stored after the gate accepted
it; `mlops promote` clears it by promoting it) when it is neither the
champion nor a model rolled back since its last promotion. Without one the
shadow is idle, says why at start, and `mlops_shadow_active` is 0; it looks
again every `serve.registry_poll_s` seconds, so a new candidate is picked up
(and a promoted one let go) without a restart.

`Shadow.offer` runs after the champion's answer is ready and only queues:
every `1 / serve.shadow_share`-th request (a deterministic credit, so the
share is exact) goes into a bounded queue of `serve.shadow_queue` requests,
which one background thread per worker, at a lower OS priority, scores with
the challenger a micro-batch at a time (it waits up to 2 s for one to
gather: model calls on single texts would hold the GIL, per text, many times
longer than the served micro-batches do). A full queue drops the request's shadow work and
counts it (`mlops_shadow_dropped_total`); a challenger that raises is counted
(`mlops_shadow_errors_total`) and logged: nothing of the shadow can delay,
change or fail a client's answer.

The challenger's answers go to the traffic log's directory as `shadow-*.jsonl`
parts (per UTC day, numbered, rotated and pruned as the served parts), one
line per text: `"shadow": true`, `shadow_of` (the id of the served answer it
shadows), the challenger's `prediction`, `confidence` and `model_version`, and
the champion's `champion_prediction` and `champion_version`. They never carry
an `id` of their own and never sit in `traffic-*.jsonl`, so every reader of
served answers (monitoring's window, feedback's id lookup, live quality)
cannot take them for answers. `mlops monitor` reads them
(mlops/ml/shadow_report.py).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mlops.core import registry
from mlops.core.settings import ServeSettings
from mlops.serving.shadow_log import ShadowLog
from mlops.serving.traffic import TrafficWriter

logger = logging.getLogger("mlops.serving.shadow")

def find_challenger() -> tuple[str | None, str]:
    """The challenger's model tag, or None and why there is none."""

    document = registry.read_registry()
    entry, champion = document.get("challenger"), document.get("champion")
    if not entry or not entry.get("model"):
        return None, "the registry has no challenger (no candidate has passed the gate since the last promotion)"
    if champion and champion.get("model") == entry["model"]:
        return None, f"the registry's challenger {entry['model']} is the champion"
    if registry.retired_by_rollback(entry["model"]):
        return None, f"the registry's challenger {entry['model']} was rolled back"
    return entry["model"], ""


def shadow_metrics() -> dict[str, Any]:
    """The shadow's series on /metrics (created in the worker, as mlops/serving/model_metrics.py explains)."""
    from prometheus_client import Counter, Gauge

    return {
        "active": Gauge("mlops_shadow_active", "1 while a challenger scores shadow traffic, 0 while the shadow is "
                        "idle (no challenger) or off.", multiprocess_mode="mostrecent"),
        "challenger": Gauge("mlops_shadow_challenger_info", "The challenger the shadow scores with (1; 0 once "
                            "replaced).", ("model_version",), multiprocess_mode="mostrecent"),
        "scored": Counter("mlops_shadow_scored", "Texts the challenger scored in shadow."),
        "agreed": Counter("mlops_shadow_agreed", "Shadowed texts on which the challenger agreed with the champion."),
        "dropped": Counter("mlops_shadow_dropped", "Texts left unscored because the shadow queue "
                           "(serve.shadow_queue) was full."),
        "errors": Counter("mlops_shadow_errors", "Texts the challenger failed to score (never seen by clients)."),
    }


# Seconds the shadow waits for a micro-batch of texts before scoring fewer; the niceness its thread adds.
GATHER_S = 2.0
NICE = 10


def lower_priority(nice: int) -> None:
    """Lower the calling thread's OS priority by `nice` (Linux: a thread id is a process id to setpriority)."""
    import os

    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except (AttributeError, OSError):  # another OS, or not allowed: the same shadow at the same priority
        pass


class Shadow:
    """The challenger of one worker, its queue, its scoring thread and its registry watcher."""

    def __init__(self, share: float, max_queued: int, load: Callable[[str], Any], writer: TrafficWriter | None,
                 find: Callable[[], tuple[str | None, str]] = find_challenger, poll_s: float = 2.0,
                 micro_batch: int = 16, max_batch_tokens: int | None = None, metrics: dict[str, Any] | None = None,
                 gather_s: float = GATHER_S, nice: int = NICE) -> None:
        self.share, self.load, self.writer, self.find = share, load, writer, find
        self.poll_s, self.micro_batch, self.max_batch_tokens = poll_s, micro_batch, max_batch_tokens
        self.metrics = metrics or {}
        self.gather_s, self.nice = gather_s, nice
        self.queue: queue.Queue[tuple | None] = queue.Queue(maxsize=max_queued)
        self.active: tuple[str, Any] | None = None  # (challenger version, model)
        self.idle_reason = "not started"
        self.credit = 0.0
        self.counts = {"offered": 0, "scored": 0, "agreed": 0, "dropped": 0, "errors": 0}
        self.refused: set[str] = set()
        self.stopped = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> Shadow:
        """Find and load the challenger now (the start line says which, or why none), then score and watch."""
        self.sync()
        print(f"serve: shadow: {self.describe()}", flush=True)
        self.threads = [threading.Thread(target=self.run, name="shadow", daemon=True),
                        threading.Thread(target=self.watch, name="shadow-follower", daemon=True)]
        for thread in self.threads:
            thread.start()
        return self

    def describe(self) -> str:
        if self.active is None:
            return f"idle: {self.idle_reason}"
        return f"the challenger {self.active[0]} scores {self.share:.0%} of requests in shadow"

    def set_active(self, active: tuple[str, Any] | None, reason: str = "") -> None:
        before = self.active[0] if self.active else None
        self.active, self.idle_reason = active, reason
        if "active" in self.metrics:
            self.metrics["active"].set(1 if active else 0)
            if before:
                self.metrics["challenger"].labels(model_version=before).set(0)
            if active:
                self.metrics["challenger"].labels(model_version=active[0]).set(1)

    def sync(self) -> bool:
        """One look at the registry: load a new challenger, or go idle; True when the shadow changed."""
        wanted, reason = self.find()
        current = self.active[0] if self.active else None
        if wanted == current:
            if wanted is None:
                self.idle_reason = reason
            return False
        if wanted is None:
            self.set_active(None, reason)
        elif wanted not in self.refused:
            try:
                self.set_active((wanted, self.load(wanted)))
            except Exception as error:  # a challenger that cannot load leaves the shadow idle, serving unchanged
                self.refused.add(wanted)
                logger.error("shadow: cannot load the challenger %s (%s)", wanted, error)
                self.set_active(None, f"the challenger {wanted} could not be loaded: {error}")
        else:
            return False
        logger.warning("shadow: %s", self.describe())
        return True

    def watch(self) -> None:
        while not self.stopped.wait(self.poll_s):
            try:
                self.sync()
            except Exception:  # a broken registry file must not end the watcher
                logger.exception("shadow: registry poll failed")

    def offer(self, texts: Sequence[str], results: Sequence[dict[str, Any]]) -> bool:
        """Queue a served request for the challenger if it is its turn; never blocks, never raises."""
        try:
            active = self.active
            if active is None or self.stopped.is_set():
                return False
            self.credit += self.share
            if self.credit < 1:
                return False
            self.credit -= 1
            served = [(r["id"], r["label"], r["model_version"]) for r in results]
            if any(version == active[0] for _, _, version in served):
                return False  # the challenger answered this itself (a swap made it the champion)
            self.counts["offered"] += len(served)
            try:
                self.queue.put_nowait((list(texts), served, active))
                return True
            except queue.Full:
                self.count("dropped", len(served))
                return False
        except Exception:  # shadow bookkeeping must never reach the client
            logger.exception("shadow: could not queue a request")
            return False

    def count(self, name: str, amount: int) -> None:
        self.counts[name] += amount
        if name in self.metrics:
            self.metrics[name].inc(amount)

    def run(self) -> None:
        """Score queued requests with their challenger, a micro-batch per model call, and log the answers.

        The thread waits up to `gather_s` for a micro-batch of texts to gather: a model call on one text holds
        the GIL between its many small operations about as long as a call on sixteen, time taken from the
        threads answering clients. It also runs at a lower OS priority, so the cores serve clients first.
        """
        lower_priority(self.nice)
        stopping = False
        while not stopping:
            items = [self.queue.get()]
            texts = len(items[0][0]) if items[0] else 0
            deadline = time.monotonic() + self.gather_s
            while items[-1] is not None and texts < self.micro_batch:
                try:
                    item = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                items.append(item)
                texts += len(item[0]) if item else 0
            stopping = None in items
            work = [item for item in items if item is not None]
            by_model: dict[int, list[tuple]] = {}
            for item in work:
                by_model.setdefault(id(item[2][1]), []).append(item)
            for group in by_model.values():
                self.score(group)

    def score(self, group: list[tuple]) -> None:
        version, model = group[0][2]
        texts = [text for item in group for text in item[0]]
        served = [answer for item in group for answer in item[1]]
        started = time.perf_counter()
        try:
            proba, _ = model.predict(texts, batch_size=self.micro_batch, max_batch_tokens=self.max_batch_tokens)
            rows = proba.tolist()
        except Exception as error:
            self.count("errors", len(texts))
            if self.counts["errors"] == len(texts):  # the first failure with its traceback, then counted only
                logger.exception("shadow: the challenger %s failed (%s); counted in mlops_shadow_errors_total",
                                 version, error)
            return
        latency = (time.perf_counter() - started) * 1000
        records, agreed = [], 0
        for (served_id, label, champion_version), row in zip(served, rows, strict=True):
            score = max(row)
            prediction = model.labels[row.index(score)]
            agreed += prediction == label
            records.append({"shadow_of": served_id, "prediction": prediction, "confidence": round(score, 6),
                            "model_version": version, "champion_prediction": label,
                            "champion_version": champion_version})
        self.count("scored", len(records))
        self.count("agreed", agreed)
        if self.writer is not None:
            self.writer.submit([""] * len(records), records, latency)

    def close(self, timeout: float = 30) -> None:
        """Score what is queued, write it, stop (idempotent)."""
        if not self.stopped.is_set():
            self.stopped.set()
            self.queue.put(None)
        for thread in self.threads:
            thread.join(timeout)
        if self.writer is not None:
            self.writer.close(timeout)


def load_challenger(serve: ServeSettings) -> Callable[[str], Any]:
    """How a worker loads a challenger: the stored model's served variant, as the champion's (mlops/ml/variants.py)."""

    def load(tag: str) -> Any:
        from mlops.core.registry import model_path
        from mlops.ml.variants import load_served

        return load_served(model_path(tag), serve.precision, serve.threads)

    return load


def start_shadow(serve: ServeSettings, directory: Path, serving: str,
                 load: Callable[[str], Any] | None = None) -> Shadow | None:
    """The worker's shadow when `serve.shadow` is on (None when off), its challenger found and loaded.

    A server started on the challenger itself (`mlops promote`'s infra validation pins the candidate) has
    nothing to compare it with: idle, without loading a second copy."""
    if not serve.shadow:
        return None
    load = load or load_challenger(serve)

    def find() -> tuple[str | None, str]:
        tag, reason = find_challenger()
        return (None, f"the challenger {tag} is the model this server started with") if tag == serving \
            else (tag, reason)

    try:
        metrics = shadow_metrics()
    except Exception:  # metrics off: the shadow works the same
        metrics = {}
    writer = TrafficWriter(ShadowLog(directory, serve.traffic), serve.traffic.queue_size) \
        if serve.traffic.enabled else None
    return Shadow(serve.shadow_share, serve.shadow_queue, load, writer, find=find, poll_s=serve.registry_poll_s,
                  micro_batch=serve.micro_batch, max_batch_tokens=serve.max_batch_tokens,
                  metrics=metrics).start()
