"""Champion and challenger aliases over the BentoML model store.

BentoML stores immutable, versioned models and Bentos; it has no notion of
which one is in production. The registry adds that: a JSON document in the
BentoML home naming the champion (model and Bento tags, metrics, lineage), the
challenger (the candidate the last `package` stored: model and built Bento,
waiting for `mlops promote`), the champions before it and, while one runs, the
canary (a candidate serving a share of requests, mlops/serving/canary.py),
plus an append-only event log. The document is replaced atomically (temp file, fsync, rename, fsync
of the folder), and promotion writes it only after the Bento exists, so a
process killed at any point leaves the previous champion in place and servable.

Every change is a read-modify-write under an exclusive `flock` on a lock file
beside the document, reading it again inside the lock: a `package` recording
its candidate while someone rolls back cannot write back the champion it read
before the rollback. Event-log appends take their own lock (always inside the
registry's when both are held, so the log's order is the registry's) and are
fsynced; a line torn by a crash mid-append is skipped by its readers and the
next append starts on a new line.

In a git repository, registrations, promotions and rollbacks are mirrored as
GTO tags too (mlops.core.gto_registry), for `gto show` and the tools that read
it: inside the registry's lock, after the event, so the tags' order is the
registry's. A GTO failure is one warning line; this document stays the truth.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops.core import gto_registry
from mlops.core.errors import MlopsError
from mlops.core.io import file_digest, read_json

EMPTY: dict[str, Any] = {"champion": None, "challenger": None, "history": [], "canary": None}


# A stored model's monitoring reference (its scored validation rows), beside its weights.
REFERENCE_FILE = "monitoring_reference.parquet"
# `mlops promote`'s decision in a project (promotion is a step after the pipeline, not a dvc.yaml stage).
PROMOTION_RECORD = "reports/promotion.json"


def bentoml_home() -> Path:
    """BentoML's store, where the registry file lives beside the models it names."""
    return Path(os.environ.get("BENTOML_HOME", Path.home() / "bentoml"))


def registry_path() -> Path:
    """The registry file: champion, challenger and history."""
    return bentoml_home() / "registry.json"


def events_path() -> Path:
    """The append-only log of registry events (promotions, rollbacks), for audit."""
    return bentoml_home() / "registry-events.jsonl"


logger = logging.getLogger("mlops.core.registry")


def read_registry() -> dict[str, Any]:
    """The registry as stored, with every key present (an empty registry before the first promotion)."""
    path = registry_path()
    return {**EMPTY, **read_json(path)} if path.is_file() else dict(EMPTY)


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive `flock` on `path`'s lock file (`<name>.lock`, beside it) for the block.

    The lock belongs to the open file, so it is released when the holder
    exits, even by SIGKILL: a dead writer never blocks the next one.
    """
    lock = path.with_name(path.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_durably(data: Any, path: Path) -> None:
    """Replace `path` with `data` as JSON so that a crash or power loss leaves the old or the new document whole:
    temp file in the same folder, flush and fsync, rename, fsync of the folder (which makes the rename last)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(data, indent=2, default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


@contextmanager
def updating() -> Iterator[dict[str, Any]]:
    """The registry, read under its lock, to change in place; written back durably when the block succeeds
    (an exception leaves it as it was)."""
    path = registry_path()
    with exclusive(path):
        registry = read_registry()
        yield registry
        write_durably(registry, path)


def champion() -> dict[str, Any] | None:
    """The registry's champion entry (model tag, variant, when and why promoted); None before the first."""
    entry: dict[str, Any] | None = read_registry()["champion"]
    return entry


def now() -> str:
    """The current UTC time to the second, as every registry record writes it."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def log_event(event: str, **details: Any) -> None:
    """Append one event, locked and fsynced; after a line torn by a crash, on a new line of its own."""
    path = events_path()
    line = (json.dumps({"at": now(), "event": event, **details}) + "\n").encode()
    with exclusive(path), open(path, "a+b") as handle:
        if handle.seek(0, os.SEEK_END) > 0:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                line = b"\n" + line
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def read_events() -> list[dict[str, Any]]:
    """The event log, oldest first; a line that is not a whole JSON object (torn by a crash mid-append) is
    skipped with one warning, so a reader such as `mlops promote` keeps working."""
    path = events_path()
    if not path.is_file():
        return []
    events, torn = [], 0
    for raw in path.read_bytes().splitlines():
        if not raw.strip():
            continue
        try:
            event = json.loads(raw.decode("utf-8"))
        except ValueError:  # JSONDecodeError, UnicodeDecodeError (a character cut in two)
            event = None
        if isinstance(event, dict):
            events.append(event)
        else:
            torn += 1
    if torn:
        logger.warning("%d torn lines skipped in %s", torn, path)
    return events


def model_digest(model_dir: Path) -> str:
    """Content hash of the weights, to recognise a model that is already registered."""
    return file_digest(Path(model_dir) / "model.safetensors", "sha256")


def register_model(name: str, model_dir: Path, metadata: dict[str, Any]) -> str:
    """Copy a model directory into the BentoML store, with its lineage; make it the challenger."""
    import bentoml

    with bentoml.models.create(name, labels={"framework": "transformers"}, metadata=metadata) as model:
        for item in Path(model_dir).iterdir():
            if item.is_file():
                shutil.copy2(item, Path(model.path) / item.name)
            elif item.is_dir():  # a serving variant's files (package stores the one the gate chose)
                shutil.copytree(item, Path(model.path) / item.name)
    tag = str(model.tag)
    with updating() as registry:
        registry["challenger"] = {"model": tag, "registered_at": now()}
        log_event("registered", model=tag)
        gto_registry.record_registration(tag, metadata.get("digest"), bentoml_home())
    return tag


def set_candidate(entry: dict[str, Any]) -> None:
    """Record a stored model and its built Bento as the challenger; the champion does not change."""
    with updating() as registry:
        registry["challenger"] = {**entry, "registered_at": now()}
        log_event("candidate", model=entry["model"], bento=entry.get("bento"))


def find_stored(name: str, digest: str, build: str, variant: str = "fp32") -> dict[str, Any] | None:
    """A model already stored with these weights and serving variant, and its Bento if one was built from the
    same sources.

    A run that re-runs `package` on a model it has seen (params restored after
    an Airflow run, a reverted experiment) reuses them instead of storing a copy.
    """
    import bentoml

    try:
        models = [m for m in bentoml.models.list(name) if m.info.metadata.get("digest") == digest
                  and m.info.metadata.get("serve_variant", "fp32") == variant]
    except bentoml.exceptions.NotFound:  # nothing stored under this name yet
        return None
    if not models:
        return None
    model = str(max(models, key=lambda m: m.info.creation_time).tag)
    registry = read_registry()
    known = [e for e in [registry["champion"], registry["challenger"], *registry["history"]] if e]
    bento = next((e["bento"] for e in known if e.get("model") == model and e.get("build") == build
                  and bento_exists(e.get("bento"))), None)
    return {"model": model, "bento": bento}


def model_path(tag: str) -> Path:
    """The folder of a stored BentoML model; a clear error when the tag is not in the store."""
    import bentoml

    try:
        return Path(bentoml.models.get(tag).path)
    except bentoml.exceptions.NotFound:
        raise MlopsError(f"model {tag} is not in the BentoML store at {bentoml_home()}") from None


def bento_exists(tag: str | None) -> bool:
    """Whether a Bento with this tag is in the store (False for no tag)."""
    import bentoml

    if not tag:
        return False
    try:
        bentoml.bentos.get(tag)
        return True
    except bentoml.exceptions.NotFound:
        return False


def promote(entry: dict[str, Any]) -> dict[str, Any]:
    """Make `entry` (model and Bento that exist) the champion; the previous one joins the history."""
    if not bento_exists(entry.get("bento")):
        raise MlopsError(f"cannot promote {entry.get('model')}: its Bento {entry.get('bento')} is not in the store")
    entry = {**entry, "promoted_at": now()}
    with updating() as registry:
        history = registry["history"] + ([registry["champion"]] if registry["champion"] else [])
        challenger = registry["challenger"]
        if challenger and challenger.get("model") == entry["model"]:
            challenger = None
        canary = registry.get("canary")
        registry.update(champion=entry, challenger=challenger, history=history, canary=None)
        if canary:  # promoted in full, or replaced by another promotion: the canary's share goes to the champion
            log_event("canary_ended", model=canary["model"], canary_id=canary["id"],
                      outcome="promoted" if canary["model"] == entry["model"] else "superseded")
        log_event("promoted", model=entry["model"], bento=entry["bento"])
        gto_registry.record_champion(entry["model"], entry.get("digest"), bentoml_home())
        if canary:
            gto_registry.record_canary(canary["model"], None, bentoml_home(), active=False)
    return entry


def start_canary(entry: dict[str, Any], share: float, timeout_s: float) -> dict[str, Any]:
    """Name `entry` (model and Bento that exist) the canary: served to `share` of requests beside the champion,
    until `end_canary`, a promotion, a rollback or `expires_at` (services stop routing to it by then)."""
    import secrets
    from datetime import timedelta

    if not bento_exists(entry.get("bento")):
        raise MlopsError(f"cannot start a canary of {entry.get('model')}: its Bento {entry.get('bento')} is not in "
                         "the store")
    started = datetime.now(UTC)
    with updating() as registry:
        if not registry["champion"]:
            raise MlopsError("a canary needs a champion to compare with: promote a first model directly")
        if registry["champion"]["model"] == entry["model"]:
            raise MlopsError(f"{entry['model']} is already the champion")
        if registry.get("canary"):
            raise MlopsError(f"a canary of {registry['canary']['model']} is running; `mlops registry rollback` "
                             "ends it")
        record = {**entry, "id": secrets.token_hex(6), "share": share, "champion": registry["champion"]["model"],
                  "started_at": started.isoformat(timespec="seconds"),
                  "expires_at": (started + timedelta(seconds=timeout_s)).isoformat(timespec="seconds")}
        registry["canary"] = record
        log_event("canary_started", model=entry["model"], canary_id=record["id"], share=share,
                  champion=record["champion"])
        gto_registry.record_canary(entry["model"], entry.get("digest"), bentoml_home(), active=True)
    return record


def end_canary(canary_id: str | None, outcome: str, reason: str) -> dict[str, Any] | None:
    """End the running canary (any, with `canary_id` None) without changing the champion; the ended canary, or
    None when it had already ended."""
    with updating() as registry:
        canary: dict[str, Any] | None = registry.get("canary")
        if not canary or (canary_id is not None and canary["id"] != canary_id):
            return None
        registry["canary"] = None
        log_event("canary_ended", model=canary["model"], canary_id=canary["id"], outcome=outcome, reason=reason)
        gto_registry.record_canary(canary["model"], None, bentoml_home(), active=False)
    return canary


def canary() -> dict[str, Any] | None:
    """The canary in progress (candidate, share, start), which every serving worker routes by; None without one."""
    entry: dict[str, Any] | None = read_registry().get("canary")
    return entry


def rollback() -> dict[str, Any]:
    """Restore the previous champion; the current one is retired (kept in the store and the event log). While a
    canary runs, end it instead: the champion did not change, so there is nothing else to undo."""
    ended = end_canary(None, "rolled_back", "ended by `mlops registry rollback`")
    if ended:
        return {**(champion() or {}), "canary_ended": ended["model"]}
    with updating() as registry:
        if not registry["history"]:
            raise MlopsError("nothing to roll back to: the registry has no previous champion")
        previous, retired = registry["history"][-1], registry["champion"]
        if not bento_exists(previous.get("bento")):
            raise MlopsError(f"cannot roll back to {previous['model']}: its Bento {previous.get('bento')} is gone")
        restored = {**previous, "promoted_at": now(), "restored_from_rollback": True}
        registry.update(champion=restored, history=registry["history"][:-1])
        log_event("rolled_back", model=restored["model"], bento=restored["bento"],
                  retired=retired["model"] if retired else None)
        gto_registry.record_champion(restored["model"], restored.get("digest"), bentoml_home())
    return restored


def retired_by_rollback(model: str) -> bool:
    """Whether the last promotion or rollback that concerned `model` rolled it back (the event log says)."""
    retired = False
    for event in read_events():
        if event.get("event") == "promoted" and event.get("model") == model:
            retired = False
        elif event.get("event") == "rolled_back" and event.get("retired") == model:
            retired = True
    return retired


def list_models(name: str) -> list[dict[str, Any]]:
    """Every stored version of `name`, newest first, with its alias and headline metrics."""
    import bentoml

    registry = read_registry()
    aliases: dict[str, str] = {}
    for index, entry in enumerate(reversed(registry["history"])):
        aliases.setdefault(entry["model"], f"previous-{index + 1}")
    if registry["challenger"]:
        aliases[registry["challenger"]["model"]] = "challenger"
    if registry["champion"]:
        aliases[registry["champion"]["model"]] = "champion"
    rows = []
    for model in sorted(bentoml.models.list(name), key=lambda m: m.info.creation_time, reverse=True):
        metadata: dict[str, Any] = dict(model.info.metadata)
        rows.append({"model": str(model.tag), "alias": aliases.get(str(model.tag), ""),
                     "created": model.info.creation_time.isoformat(timespec="seconds"),
                     "accuracy": metadata.get("metrics", {}).get("accuracy"),
                     "macro_f1": metadata.get("metrics", {}).get("macro_f1"),
                     "gate": metadata.get("gate", "")})
    return rows
