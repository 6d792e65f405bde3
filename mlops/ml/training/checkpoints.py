"""Where a run keeps its checkpoints, and which of them a restarted run may resume from.

A run checkpoints every `train.eval_steps` steps. Killed, it resumes from the newest complete checkpoint when
started again with the same data and settings (its run key), and ends where an uninterrupted run would have;
with anything else changed it starts clean.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops.core.settings import Settings

RUN_KEY = "run-key.json"
SELECTION = "selection.json"  # in the checkpoints folder: a finished selection run, which a refit resumes after


def run_key(settings: Settings, split_dir: Path, start: str = "base", extra: dict[str, Any] | None = None) -> str:
    """What a checkpoint must match to be resumed: the data, the starting weights and every setting that shapes
    training (`extra`: a caller's own, such as distillation's)."""
    digest = hashlib.sha256(json.dumps({"seed": settings.seed, "model": settings.model.model_dump(),
                                        "train": settings.train.model_dump(), "start": start,
                                        **({"extra": extra} if extra else {})},
                                       sort_keys=True).encode())
    for name in ("train", "validation"):
        digest.update((split_dir / f"{name}.parquet").read_bytes())
    return digest.hexdigest()


def resumable_checkpoint(checkpoints: Path, key: str) -> str | None:
    """The newest checkpoint of an interrupted run with the same key; otherwise start clean.

    Not transformers' get_last_checkpoint: after kill -9 the newest folder may be half-written (no trainer_state.json).
    """
    marker = checkpoints / RUN_KEY
    if marker.is_file() and json.loads(marker.read_text()).get("key") == key:
        done = sorted(checkpoints.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        complete = [p for p in done if (p / "trainer_state.json").is_file()]
        if complete:
            return str(complete[-1])
    shutil.rmtree(checkpoints, ignore_errors=True)
    checkpoints.mkdir(parents=True)
    marker.write_text(json.dumps({"key": key}))
    return None


def checkpoints_of(out: Path) -> Path:
    """Where a run writing `out` keeps its checkpoints: beside it, hidden."""
    return out.parent / f".{out.name}-checkpoints"


def refit_checkpoints_of(out: Path) -> Path:
    """Where the refit of a run writing `out` keeps its checkpoints."""
    return out.parent / f".{out.name}-refit-checkpoints"
