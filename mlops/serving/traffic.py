"""The served-traffic log that monitoring reads and feedback refers to.

One JSON line per classified text: its id (the one its answer carried, which
`POST /feedback` names to label it), the text (or, with `serve.traffic.hash_texts`,
a keyed HMAC-SHA256 of it plus its descriptors, so monitoring still works
without ever storing the text), the prediction, its confidence, the model's
sentence embedding (float16, base64), the model version, the request latency
and a timestamp. Files are per UTC day and numbered parts: a part that grows
past `max_file_mb` is closed and a new one started, and the oldest parts
beyond `keep_files` are deleted, so the log never fills the disk and a
monitoring window is a cheap read of the newest files.

The service does not write on the request's path: `TrafficWriter` takes the
records (embeddings still as arrays) into a bounded queue and one background
thread per process encodes and writes them, several requests per write. A full
queue never blocks a request: the record is dropped and counted (and the
service's `mlops_traffic_log_dropped_total` metric says so); `close` writes
everything queued before the process exits. What readers of the log need (its
file names, an id's time, a window's records) is in mlops/core/traffic_log.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import queue
import secrets
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops.core.environment import secret
from mlops.core.errors import MlopsError
from mlops.core.settings import TrafficSettings
from mlops.core.traffic_log import CROCKFORD, PART, list_parts
from mlops.ml.descriptors import describe


def new_ids(count: int) -> list[str]:
    """`count` ULIDs: 48 bits of milliseconds, then 80 random bits, in Crockford base32 (26 characters).

    Random bits from the OS make them unique across worker processes and
    restarts with no coordination (two ids collide only if the same
    millisecond draws the same 80 bits); the time prefix tells feedback which
    day's traffic files hold an id, and sorts ids by when they were served.
    """
    millis = time.time_ns() // 1_000_000
    ids = []
    for _ in range(count):
        value = (millis << 80) | secrets.randbits(80)
        ids.append("".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -5, -5)))
    return ids


class TrafficLog:
    def __init__(self, directory: Path, settings: TrafficSettings | None = None) -> None:
        self.directory = Path(directory)
        self.settings = settings or TrafficSettings()
        self.key: bytes | None = None
        if self.settings.hash_texts:
            salt = secret(self.settings.salt_env)
            if salt is None:
                raise MlopsError(f"serve.traffic.hash_texts is on but ${self.settings.salt_env} is not set: "
                                 "the texts' hashes need a secret key (an unkeyed hash of a short text is "
                                 "reversible by guessing)")
            self.key = salt.get_secret_value().encode()
        self.day, self.part = "", 0
        self.opened: Path | None = None  # the part this process last appended to

    def current_file(self, day: str) -> Path:
        if day != self.day:  # first write, or a new day: continue the day's newest part
            parts = [int(PART.match(p.name).group(2)) for p in list_parts(self.directory) if p.name[8:16] == day]
            self.day, self.part = day, max(parts, default=0)
        return self.directory / f"traffic-{self.day}-{self.part:04d}.jsonl"

    def identify(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Per text, what the log keeps of it: the text, or its keyed hash and descriptors (one pass for all)."""
        if self.key is None:
            return [{"text": text} for text in texts]

        return [{"text_hmac": hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest(), **described}
                for text, described in zip(texts, describe(texts).round(4).to_dict("records"), strict=True)]

    def append(self, texts: Sequence[str], results: Sequence[dict[str, Any]], latency_ms: float,
               embeddings: Sequence[Any] | None = None) -> None:
        self.write(self.lines(texts, results, latency_ms, embeddings))

    def lines(self, texts: Sequence[str], results: Sequence[dict[str, Any]], latency_ms: float,
              embeddings: Sequence[Any] | None = None, now: datetime | None = None) -> list[str]:
        """One JSON line per text; an embedding is a ready string or an array (encoded here, float16 base64)."""
        from mlops.ml.model import encode_embedding

        now = now or datetime.now(UTC)
        stamp, latency = now.isoformat(), round(latency_ms, 2)
        lines = []
        for identity, result, embedding in zip(self.identify(texts), results,
                                               [None] * len(texts) if embeddings is None else embeddings,
                                               strict=True):
            served_id = {"id": result["id"]} if "id" in result else {}
            entry = {"timestamp": stamp, **served_id, **identity, "prediction": result["label"],
                     "confidence": round(result["score"], 6), "model_version": result["model_version"],
                     "latency_ms": latency}
            if embedding is not None:
                entry["embedding"] = embedding if isinstance(embedding, str) else encode_embedding(embedding)
            lines.append(json.dumps(entry) + "\n")
        return lines

    def write(self, lines: Sequence[str]) -> None:
        """Append lines to the current part (today's), then start a new part when this one is full."""
        if not lines:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.current_file(f"{datetime.now(UTC):%Y%m%d}")
        if path != self.opened:  # a part another process left: a crash may have torn its last line
            self.opened = path
            if ends_torn(path):
                lines = ["\n", *lines]  # the torn line stays one bad line instead of spoiling this one too
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("".join(lines))
            size = handle.tell()
        if size > self.settings.max_file_mb * 2**20:
            self.part += 1
            self.prune()

    def prune(self) -> None:
        """Delete the oldest closed parts, leaving room for the new one within `keep_files`."""
        parts = list_parts(self.directory)
        for old in parts[:max(0, len(parts) - (self.settings.keep_files - 1))]:
            old.unlink(missing_ok=True)


logger = logging.getLogger("mlops.serving.traffic")


class TrafficWriter:
    """A `TrafficLog` written by one background thread from a bounded queue: `submit` never blocks or writes.

    Records that find the queue full are dropped and counted (`dropped`, and
    `on_drop(texts)` for a metric); `close` stops taking new ones, writes every
    queued record and joins the thread.
    """

    def __init__(self, log: TrafficLog, max_queued: int = 10_000,
                 on_drop: Any = None) -> None:
        self.log, self.on_drop = log, on_drop
        self.queue: queue.Queue[tuple | None] = queue.Queue(maxsize=max_queued)
        self.dropped = 0  # texts not logged because the queue was full
        self.closed = False
        self.thread = threading.Thread(target=self.run, name="traffic-log", daemon=True)
        self.thread.start()

    def submit(self, texts: Sequence[str], results: Sequence[dict[str, Any]], latency_ms: float,
               embeddings: Sequence[Any] | None = None) -> bool:
        """Queue one request's records; False (and counted) when the queue is full or the writer closed."""
        if not self.closed:
            try:
                self.queue.put_nowait((list(texts), list(results), latency_ms, embeddings, datetime.now(UTC)))
                return True
            except queue.Full:
                pass
        self.dropped += len(texts)
        if self.on_drop is not None:
            self.on_drop(len(texts))
        return False

    def run(self) -> None:
        stopping = False
        while not stopping:
            items = [self.queue.get()]
            while len(items) < 512:  # what has queued meanwhile goes in the same write
                try:
                    items.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            stopping = None in items
            lines = []
            for item in items:
                if item is None:
                    continue
                texts, results, latency_ms, embeddings, when = item
                try:
                    lines.extend(self.log.lines(texts, results, latency_ms, embeddings, when))
                except Exception:  # one bad record must not stop the log
                    logger.exception("traffic log: a record could not be written")
            try:
                self.log.write(lines)
            except Exception:  # a full disk or a removed directory: logged, and the next write tries again
                logger.exception("traffic log: %d records could not be written", len(lines))

    def close(self, timeout: float = 30) -> None:
        """Write everything queued, then stop the thread (idempotent)."""
        if not self.closed:
            self.closed = True
            self.queue.put(None)  # after every queued record: blocks only while the queue is full
        self.thread.join(timeout)


def ends_torn(path: Path) -> bool:
    """Whether a file exists, is not empty and does not end with a newline (its last append was cut short)."""
    try:
        with open(path, "rb") as handle:
            if handle.seek(0, os.SEEK_END) == 0:
                return False
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) != b"\n"
    except FileNotFoundError:
        return False


