"""Canary, in the service: a share of requests answered by a candidate, sticky per client, counted for the judge.

`mlops promote --canary SHARE` (mlops/serving/canary_rollout.py) names a
canary in the registry (`registry.json`'s `canary`: model, share, id, expiry).
Every worker of every replica reads that document already, to follow the
champion (mlops/serving/swap.py); here a `CanaryRouter` polls it as well, loads
the candidate beside the champion, and from then on sends each request whose
client falls in the share to the candidate. Nothing lives in one process's
memory but a cache: a new worker, or a restarted replica, reads the same
document and routes the same way.

Which client: the `X-Client-Id` header when given, else the name of the
request's credential (a key of the keys file, or the role of a key from the
environment); a client is placed by a hash of that name with the canary's id,
so it sees one version for the whole canary, in every worker. A request with
neither (a keyless request from loopback or an anonymous client) is placed at
random, request by request.

What is counted: per version, requests, failures and recent latencies, in one
small JSON file per worker under `<BENTOML_HOME>/canary/<canary id>/`, written
twice a second when it changed; `collect` sums them for the judge. A canary
answer that fails is retried on the champion by the service, so its client
never sees the error: it is counted as the canary's failure. A canary past its
`expires_at` is not routed to, even if the `mlops promote` watching it died.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import socket
import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from mlops.serving.credentials import ANONYMOUS, LOCAL
from mlops.serving.guard import IDENTITY
from mlops.serving.swap import Active

logger = logging.getLogger("mlops.serving.canary")

CLIENT_HEADER = b"x-client-id"
MAX_CLIENT_ID = 200  # characters of a client id that count
LATENCIES_KEPT = 2000  # per version and worker: the p95 the judge sees is over the newest answers
FLUSH_S = 0.5
CANDIDATE, CHAMPION = "candidate", "champion"


def client_id(scope: dict[str, Any]) -> str | None:
    """Who is asking, for stickiness: the X-Client-Id header, else a named credential; None for nobody in
    particular (keyless loopback or anonymous requests)."""
    given = dict(scope.get("headers") or []).get(CLIENT_HEADER, b"").decode("latin-1").strip()
    if given:
        return "client:" + given[:MAX_CLIENT_ID]
    identity = scope.get(IDENTITY)
    if identity is not None and identity.name not in (LOCAL, ANONYMOUS):
        return "key:" + identity.name
    return None


def placement(client: str | None, canary_id: str) -> float:
    """Where a client falls in [0, 1): the same for every request of a canary, in every worker and replica."""
    if client is None:
        return random.random()
    digest = hashlib.sha256(f"{canary_id}\0{client}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def stats_dir(home: Path, canary_id: str) -> Path:
    return home / "canary" / canary_id


def prune_stats(home: Path, keep: str | None = None) -> list[str]:
    """Remove the counts of every canary but `keep` (the one running): an ended canary's counts live on in its
    decision (reports/promotion.json), and a worker's late write after the end leaves a folder the next canary's
    start removes. The ids removed."""
    root = home / "canary"
    removed = [folder for folder in (root.iterdir() if root.is_dir() else []) if folder.is_dir() and
               folder.name != keep]
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
    return sorted(folder.name for folder in removed)


def expired(record: dict[str, Any], now: datetime | None = None) -> bool:
    return datetime.fromisoformat(record["expires_at"]) <= (now or datetime.now(UTC))


class Counts:
    """One version's requests, failures and newest latencies in this worker."""

    def __init__(self) -> None:
        self.requests, self.errors, self.latencies = 0, 0, deque(maxlen=LATENCIES_KEPT)
        self.last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors, "latencies_ms": list(self.latencies),
                "last_error": self.last_error}


class CanaryRouter:
    """Reads the registry's canary, keeps its model loaded, routes requests, counts them, writes the counts."""

    def __init__(self, load: Callable[[str], Any], read: Callable[[], dict[str, Any] | None], home: Path,
                 poll_s: float) -> None:
        self.load, self.read, self.home, self.poll_s = load, read, home, poll_s
        self.record: dict[str, Any] | None = None
        self.model: Active | None = None  # (version, classifier) of the canary, once loaded
        self.refused: set[str] = set()
        self.counts: dict[str, Counts] = {}
        self.changed = False
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.name = f"{socket.gethostname()}-{os.getpid()}.json"
        self.thread: threading.Thread | None = None

    def follow(self) -> CanaryRouter:
        self.thread = threading.Thread(target=self.watch, name="canary-follower", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.flush()

    def route(self, client: str | None) -> Active | None:
        """The canary's (version, model) when this request falls in its share, else None (the champion)."""
        record, model = self.record, self.model
        if record is None or model is None or model[0] != record["model"]:
            return None
        return model if placement(client, record["id"]) < record["share"] else None

    def observe(self, arm: str, latency_ms: float | None, error: BaseException | None = None) -> None:
        """Count one request of `arm` (candidate or champion) while a canary runs."""
        if self.record is None:
            return
        with self.lock:
            counts = self.counts.setdefault(arm, Counts())
            counts.requests += 1
            if error is not None:
                counts.errors += 1
                counts.last_error = f"{type(error).__name__}: {error}"[:300]
            elif latency_ms is not None:
                counts.latencies.append(round(latency_ms, 2))
            self.changed = True

    def watch(self) -> None:
        polls = max(1, round(self.poll_s / FLUSH_S))
        tick = 0
        while not self.stopped.wait(FLUSH_S):
            try:
                if tick % polls == 0:
                    self.sync()
                self.flush()
            except Exception:  # a broken registry file must not kill the follower: the next poll retries
                logger.exception("canary poll failed")
            tick += 1

    def sync(self) -> None:
        """One look at the registry: start, keep or end routing to its canary."""
        wanted = self.read()
        if wanted is not None and expired(wanted):
            wanted = None
        current = self.record
        if wanted is None or current is None or wanted["id"] != current["id"]:
            self.flush()
            with self.lock:
                self.record, self.counts, self.changed = None, {}, False  # nothing is routed while loading
            if wanted is None:
                self.model = None
                return
            if wanted["model"] in self.refused:
                return
            if self.model is None or self.model[0] != wanted["model"]:
                try:
                    self.model = (wanted["model"], self.load(wanted["model"]))
                except Exception as error:
                    self.refused.add(wanted["model"])
                    logger.error("cannot load the canary %s (%s); the champion answers everything", wanted["model"],
                                 error)
                    return
            self.record = wanted
            logger.warning("canary %s serves %.0f%% of requests", wanted["model"], wanted["share"] * 100)

    def flush(self) -> None:
        """Write this worker's counts for the running canary (temp file and rename: readers see it whole)."""
        with self.lock:
            if self.record is None or not self.changed:
                return
            payload = {"model": self.record["model"], "written_at": datetime.now(UTC).isoformat(),
                       "arms": {arm: counts.as_dict() for arm, counts in self.counts.items()}}
            self.changed = False
            folder = stats_dir(self.home, self.record["id"])
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{self.name}.tmp"
        temporary.write_text(json.dumps(payload))
        os.replace(temporary, folder / self.name)


def collect(home: Path, canary_id: str) -> dict[str, dict[str, Any]]:
    """Every worker's counts for a canary, summed per arm: requests, errors, ok, p95_ms, last_error."""
    arms: dict[str, dict[str, Any]] = {arm: {"requests": 0, "errors": 0, "latencies": [], "last_error": None}
                                       for arm in (CANDIDATE, CHAMPION)}
    folder = stats_dir(home, canary_id)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            written = json.loads(path.read_text())
        except (OSError, ValueError):  # being replaced right now: the next look reads it
            continue
        for arm, counts in written.get("arms", {}).items():
            if arm in arms:
                arms[arm]["requests"] += counts["requests"]
                arms[arm]["errors"] += counts["errors"]
                arms[arm]["latencies"] += counts["latencies_ms"]
                arms[arm]["last_error"] = counts.get("last_error") or arms[arm]["last_error"]
    for figures in arms.values():
        latencies = figures.pop("latencies")
        figures["ok"] = figures["requests"] - figures["errors"]
        figures["p95_ms"] = round(float(np.percentile(latencies, 95)), 2) if latencies else None
    return arms


def judge(arms: dict[str, dict[str, Any]], live: dict[str, Any], config: Any) -> tuple[str | None, str]:
    """The canary's verdict now: ("rollback", why) at the first breach, ("promote", why) after
    `canary_requests` healthy answers, else (None, how far it is). `config` is the `promote` settings."""
    candidate, champion = arms[CANDIDATE], arms[CHAMPION]
    rate = candidate["errors"] / max(candidate["requests"], config.canary_min_requests)
    if rate > config.canary_max_error_rate:
        return "rollback", (f"error rate {rate:.3f} ({candidate['errors']} of {candidate['requests']} canary "
                            f"requests failed; over at least {config.canary_min_requests}) is above "
                            f"promote.canary_max_error_rate {config.canary_max_error_rate}; last: "
                            f"{candidate['last_error']}")
    ratio = None
    if min(candidate["ok"], champion["ok"]) >= config.canary_min_requests and champion["p95_ms"]:
        ratio = candidate["p95_ms"] / champion["p95_ms"]
        if ratio > config.canary_max_latency_ratio:
            return "rollback", (f"p95 latency {candidate['p95_ms']} ms is {ratio:.2f}x the champion's "
                                f"{champion['p95_ms']} ms, above promote.canary_max_latency_ratio "
                                f"{config.canary_max_latency_ratio}")
    ours, theirs = live.get(CANDIDATE) or {}, live.get(CHAMPION) or {}
    if ours.get("status") == "measured" and theirs.get("status") == "measured":
        floor = theirs["accuracy"] - config.canary_max_accuracy_drop
        if ours["accuracy_ci"][1] < floor:
            return "rollback", (f"live accuracy {ours['accuracy']} (95% CI {ours['accuracy_ci'][0]}-"
                                f"{ours['accuracy_ci'][1]}, {ours['labelled']} labels) is below the champion's "
                                f"{theirs['accuracy']} minus promote.canary_max_accuracy_drop "
                                f"{config.canary_max_accuracy_drop}")
    progress = (f"{candidate['ok']} of {config.canary_requests} healthy canary answers, "
                f"{candidate['errors']} failed; p95 {candidate['p95_ms']} ms vs {champion['p95_ms']} ms"
                + (f" ({ratio:.2f}x)" if ratio is not None else ""))
    if candidate["ok"] >= config.canary_requests:
        return "promote", progress
    return None, progress
