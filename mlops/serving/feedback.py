"""`POST /feedback`: the true label of a served text, by the id its answer carried.

A label is worth something only if it comes back attached to the text it
labels, so the service looks the id up in its own traffic log (which the
id's time prefix narrows to one or two day files) and stores the label with
the text, the prediction and the model that made it: the feedback log is then
self-contained, and outlives the traffic log's rotation.

Every record names its source: the credential it was posted with, its role
and the time (mlops/serving/credentials.py). A labeller's label is appended to
`$MLOPS_FEEDBACK_DIR/feedback.jsonl`, the trusted labels that `mlops feedback
collect` turns into data; a client's is only a suggestion, appended to
`suggestions.jsonl`, which the labelling queue offers a labeller to confirm:
an end user's word never trains or judges a model by itself. Each is appended
under an exclusive lock (the service's worker processes share the file), and
written, flushed and fsynced before the answer goes out: a crash can lose at
most the request being written, never an acknowledged label. A crash
mid-write leaves a torn last line; the next append starts on a new line, and
readers skip lines that do not parse. A request is all or nothing: every
item is checked (types, label set, known id) before anything is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlops.core.environment import feedback_dir, traffic_dir
from mlops.core.feedback_log import FEEDBACK_FILE, SUGGESTIONS_FILE, read_feedback  # noqa: F401 (re-exported)
from mlops.core.traffic_log import id_time, list_parts
from mlops.serving.credentials import LOCAL, Identity
from mlops.serving.guard import IDENTITY

OPERATOR = Identity(LOCAL, "labeller")  # a script or test on this machine
MAX_ID_CHARS = 64
MAX_LABEL_CHARS = 200
SERVED_FIELDS = ("text", "text_hmac", "prediction", "confidence", "model_version")


class FeedbackError(Exception):
    """A request the service refuses: its HTTP status and a message that says what is wrong."""

    def __init__(self, status: int, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.details = status, message, details


@dataclass(frozen=True)
class Item:
    id: str
    label: str


def parse_items(body: bytes, max_items: int) -> tuple[list[Item], bool]:
    """The items of a request body, and whether it was one object (answered with one object); 400 otherwise."""
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise FeedbackError(400, "request body is not UTF-8") from None
    except json.JSONDecodeError as error:
        raise FeedbackError(400, f"request body is not JSON: {error.msg} at character {error.pos}") from None
    single = isinstance(data, dict)
    entries = [data] if single else data
    if not isinstance(entries, list):
        raise FeedbackError(400, 'expected {"id": "...", "label": "..."} or a list of such objects, '
                                 f"not a JSON {type(data).__name__}")
    if not entries:
        raise FeedbackError(400, "empty list: give at least one {\"id\", \"label\"} object")
    if len(entries) > max_items:
        raise FeedbackError(400, f"{len(entries)} items exceed the limit of {max_items} per request "
                                 "(feedback.max_items)")
    items, seen = [], set()
    for index, entry in enumerate(entries):
        where = "" if single else f"item {index}: "
        if not isinstance(entry, dict):
            raise FeedbackError(400, f"{where}expected an object with \"id\" and \"label\", not {type(entry).__name__}")
        if set(entry) != {"id", "label"}:
            missing, extra = sorted({"id", "label"} - set(entry)), sorted(set(entry) - {"id", "label"})
            raise FeedbackError(400, f"{where}" + "; ".join(
                [*(f"missing field {name!r}" for name in missing), *(f"unknown field {name!r}" for name in extra)]))
        for name, limit in (("id", MAX_ID_CHARS), ("label", MAX_LABEL_CHARS)):
            value = entry[name]
            if not isinstance(value, str):
                raise FeedbackError(400, f"{where}{name!r} must be a string, not {type(value).__name__}")
            if not value.strip() or len(value) > limit:
                raise FeedbackError(400, f"{where}{name!r} must have 1 to {limit} characters")
        if entry["id"] in seen:
            raise FeedbackError(400, f"{where}id {entry['id']} is given twice in this request")
        seen.add(entry["id"])
        items.append(Item(entry["id"], entry["label"]))
    return items, single


def check_labels(items: Sequence[Item], labels: Sequence[str]) -> None:
    """422 naming the first label outside the model's label set, with the allowed ones."""
    for item in items:
        if item.label not in labels:
            raise FeedbackError(422, f"label {item.label!r} (id {item.id}) is not one of the model's labels: "
                                     f"{', '.join(labels)}", allowed_labels=list(labels))


def traffic_files_for(request_id: str, parts: Sequence[Path]) -> list[Path]:
    """Those of the traffic files `parts` that can hold an id: the day it was made and the next (a midnight
    answer)."""
    made = id_time(request_id)
    if made is None:
        return []
    days = {f"{made:%Y%m%d}", f"{made + timedelta(days=1):%Y%m%d}"}
    return [part for part in parts if part.name[8:16] in days]


# The traffic log is written off the request path (serve.traffic, a background writer per worker): an id answered
# a moment ago may still be queued there, in this worker or another. Such an id is looked up again until then.
IN_FLIGHT_S = 5.0
# An id dated further ahead of this clock was not made by a service whose clock agrees with ours: not waited for.
CLOCK_SKEW_S = 1.0
POLL_S = 0.1
# Requests of one worker waiting for their ids' log lines at once; one more is answered 503 with Retry-After. A
# waiting request holds no thread (it sleeps on the event loop) and rereads no byte of the log (`ServedScan`).
MAX_WAITING = 32


class ServedScan:
    """Looks ids up in the traffic files that can hold them, reading each byte once: a later call reads only the
    complete lines appended since the last (so polling for a late line costs what was written, not the day file)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.offsets: dict[Path, int] = {}

    def __call__(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        by_file: dict[Path, list[str]] = {}
        parts = list_parts(self.directory)  # once per look, not once per id
        for request_id in ids:
            for part in traffic_files_for(request_id, parts):
                by_file.setdefault(part, []).append(request_id)
        for part, wanted in by_file.items():
            start = self.offsets.get(part, 0)
            try:
                with open(part, "rb") as handle:
                    handle.seek(start)
                    raw = handle.read()
            except FileNotFoundError:  # rotated away since it was listed
                continue
            raw = raw[:raw.rfind(b"\n") + 1]  # complete lines only: a line being written is read whole next time
            self.offsets[part] = start + len(raw)
            for request_id in wanted:
                at = raw.find(f'"id": "{request_id}"'.encode())
                if at < 0 or request_id in found:
                    continue
                line_start, line_end = raw.rfind(b"\n", 0, at) + 1, raw.find(b"\n", at)
                try:
                    found[request_id] = json.loads(raw[line_start:line_end])
                except json.JSONDecodeError:
                    continue  # a line torn by a crash
        return found


def wait_deadline(missing: Sequence[str], now: datetime, in_flight_s: float) -> datetime | None:
    """Until when ids not in the log yet may be waited for: `in_flight_s` after the newest of them that a log
    writer could still hold (made at most `in_flight_s` ago, and not dated ahead of this clock by more than
    CLOCK_SKEW_S), and never more than `in_flight_s` from now; None when none could be in flight."""
    grace = timedelta(seconds=in_flight_s)
    plausible = [made for made in map(id_time, missing)
                 if made is not None and now - grace <= made <= now + timedelta(seconds=CLOCK_SKEW_S)]
    return min(max(plausible) + grace, now + grace) if plausible else None


async def await_served(ids: Sequence[str], directory: Path, in_flight_s: float = IN_FLIGHT_S,
                       slots: asyncio.Semaphore | None = None) -> dict[str, dict[str, Any]]:
    """The traffic record of each id (404 naming those never served, or no longer in the log).

    An id that may still be in a log writer's queue is waited for (see `wait_deadline`) on the event loop,
    holding one of `slots` (503 when none is free); each look reads only what the log gained since the last.
    """
    scan = ServedScan(directory)
    found = await asyncio.to_thread(scan, ids)
    deadline = wait_deadline([i for i in ids if i not in found], datetime.now(UTC), in_flight_s)
    if deadline is not None:
        if slots is not None and slots.locked():
            raise FeedbackError(503, f"{MAX_WAITING} feedback requests are already waiting for their answers to "
                                     "reach the traffic log; retry in a second", retry_after_s=1)
        async with slots or contextlib.nullcontext():
            while len(found) < len(ids) and datetime.now(UTC) < deadline:
                await asyncio.sleep(POLL_S)
                found |= await asyncio.to_thread(scan, [i for i in ids if i not in found])
    unknown = [request_id for request_id in ids if request_id not in found]
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise FeedbackError(404, f"unknown id: {shown} (not an id this service answered with, or no longer in "
                                 "its traffic log)", unknown_ids=unknown)
    return found


def find_served(ids: Sequence[str], directory: Path, in_flight_s: float = IN_FLIGHT_S) -> dict[str, dict[str, Any]]:
    """`await_served` for callers without an event loop (scripts, tests)."""
    return asyncio.run(await_served(ids, directory, in_flight_s))


def read_labels(handle: Any) -> dict[str, str]:
    """The latest label of every id in an open feedback log (a torn line is skipped)."""
    handle.seek(0)
    latest = {}
    for line in handle.read().splitlines():
        try:
            record = json.loads(line)
            latest[record["id"]] = record["label"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
            continue
    return latest


def append_durably(records: Sequence[dict[str, Any]], path: Path) -> dict[str, str]:
    """Append records under an exclusive lock, fsynced; return the label each id had before (if any)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            before = read_labels(handle)
            handle.seek(0, os.SEEK_END)
            lead = b""
            if handle.tell():
                handle.seek(-1, os.SEEK_END)
                lead = b"" if handle.read(1) == b"\n" else b"\n"  # a torn line stays its own line
            handle.write(lead + b"".join(json.dumps(record).encode() + b"\n" for record in records))
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    if created:  # the new file's directory entry must survive a crash too
        descriptor = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    return {record["id"]: before[record["id"]] for record in records if record["id"] in before}


def check_request(body: bytes, labels: Sequence[str], max_items: int) -> tuple[list[Item], bool]:
    """A request's items, all checked (shape, types, label set) before any lookup; and whether it was one object."""
    items, single = parse_items(body, max_items)
    check_labels(items, labels)
    return items, single


def log_file_for(identity: Identity, log_dir: Path | None = None) -> Path:
    """Where a label from `identity` goes: the trusted labels (a labeller) or the suggestions (anyone else)."""
    name = FEEDBACK_FILE if identity.role == "labeller" else SUGGESTIONS_FILE
    return (log_dir or feedback_dir()) / name


def store_feedback(items: Sequence[Item], single: bool, served: dict[str, dict[str, Any]],
                   identity: Identity = OPERATOR, log_dir: Path | None = None) -> dict[str, Any] | list[dict[str, Any]]:
    """Append checked labels with what was served and who sent them, durably, and say per id what happened."""
    now = datetime.now(UTC).isoformat()
    records = [{"id": item.id, "label": item.label, "labelled_at": now, "source": identity.name,
                "role": identity.role, "served_at": served[item.id].get("timestamp"),
                **{name: served[item.id][name] for name in SERVED_FIELDS if name in served[item.id]}}
               for item in items]
    previous = append_durably(records, log_file_for(identity, log_dir))
    if identity.role != "labeller":
        answers = [{"id": item.id, "label": item.label, "status": "suggested"} for item in items]
    else:
        answers = [{"id": item.id, "label": item.label,
                    **({"status": "replaced", "previous_label": previous[item.id]} if item.id in previous
                       else {"status": "recorded"})} for item in items]
    return answers[0] if single else answers


def record_feedback(body: bytes, labels: Sequence[str], max_items: int, traffic: Path | None = None,
                    log_dir: Path | None = None,
                    identity: Identity = OPERATOR) -> dict[str, Any] | list[dict[str, Any]]:
    """Check a request whole, find what was served for its ids, append its labels durably (no event loop)."""
    items, single = check_request(body, labels, max_items)
    served = find_served([item.id for item in items], traffic or traffic_dir())
    return store_feedback(items, single, served, identity, log_dir)


async def respond(send: Callable[..., Any], status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if isinstance(payload, dict) and "retry_after_s" in payload:
        headers.append((b"retry-after", str(payload["retry_after_s"]).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class FeedbackEndpoint:
    """The ASGI app mounted at /feedback. The service attaches its label set once its model is loaded.

    It sits behind the same RequestGuard as /classify (credentials, body limit,
    JSON content type), which reads the body within the limit and names the
    request's identity before this sees it.
    """

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self.labels: Callable[[], Sequence[str]] | None = None
        self.waiting = asyncio.Semaphore(MAX_WAITING)

    def attach(self, labels: Callable[[], Sequence[str]]) -> None:
        self.labels = labels

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            return
        if scope.get("method") != "POST":
            return await respond(send, 405, {"error": "use POST with {\"id\": ..., \"label\": ...}"})
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        if self.labels is None:
            return await respond(send, 503, {"error": "the model is still loading; retry"})
        try:
            items, single = check_request(b"".join(chunks), list(self.labels()), self.max_items)
            served = await await_served([item.id for item in items], traffic_dir(), slots=self.waiting)
            identity = scope.get(IDENTITY) or Identity("unknown", "client")  # the guard sets it; else untrusted
            answer = await asyncio.to_thread(store_feedback, items, single, served, identity)
        except FeedbackError as error:
            return await respond(send, error.status, {"error": error.message, **error.details})
        await respond(send, 200, answer)


class FeedbackRoute:
    """ASGI middleware that hands `POST /feedback` to the endpoint and everything else on.

    A Starlette mount would answer `/feedback` (no trailing slash) with a
    redirect, which clients do not follow for a POST. Added after the
    RequestGuard, so the guard's key and size checks run first.
    """

    def __init__(self, app: Any, endpoint: FeedbackEndpoint) -> None:
        self.app, self.endpoint = app, endpoint

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "http" and scope["path"].rstrip("/") == "/feedback":
            return await self.endpoint(scope, receive, send)
        return await self.app(scope, receive, send)
