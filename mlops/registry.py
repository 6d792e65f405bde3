"""Champion bookkeeping over the BentoML model store.

BentoML stores immutable, versioned models; it has no notion of which one is
in production. The registry adds that: a small JSON document in the BentoML
home naming the champion (its model and Bento tags, metrics and lineage) and
the champions before it. It is replaced atomically (write, fsync, rename), so
a crash mid-promotion leaves the previous champion in place.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops.errors import MlopsError
from mlops.io import read_json, write_json


def bentoml_home() -> Path:
    return Path(os.environ.get("BENTOML_HOME", Path.home() / "bentoml"))


def registry_path() -> Path:
    return bentoml_home() / "registry.json"


def read_registry() -> dict[str, Any]:
    path = registry_path()
    return read_json(path) if path.is_file() else {"champion": None, "history": []}


def champion() -> dict[str, Any] | None:
    return read_registry()["champion"]


def model_digest(model_dir: Path) -> str:
    """Content hash of the weights, to recognise a model that is already registered."""
    digest = hashlib.sha256()
    with open(Path(model_dir) / "model.safetensors", "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def register_model(name: str, model_dir: Path, metadata: dict[str, Any]) -> str:
    """Copy a model directory into the BentoML store; return its tag."""
    import bentoml

    with bentoml.models.create(name, labels={"framework": "transformers"}, metadata=metadata) as model:
        for item in Path(model_dir).iterdir():
            if item.is_file():
                shutil.copy2(item, Path(model.path) / item.name)
    return str(model.tag)


def model_path(tag: str) -> Path:
    import bentoml

    try:
        return Path(bentoml.models.get(tag).path)
    except bentoml.exceptions.NotFound:
        raise MlopsError(f"model {tag} is not in the BentoML store at {bentoml_home()}") from None


def promote(entry: dict[str, Any]) -> dict[str, Any]:
    """Make `entry` the champion; the previous one moves to the history."""
    registry = read_registry()
    entry = {**entry, "promoted_at": datetime.now(UTC).isoformat(timespec="seconds")}
    history = registry["history"]
    if registry["champion"] is not None:
        history = [*history, registry["champion"]]
    write_json({"champion": entry, "history": history}, registry_path())
    return entry
