"""Small I/O helpers whose point is atomicity: a stage killed half-way never
leaves a truncated file where the next stage (or DVC) would trust it."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.core.errors import MlopsError

if TYPE_CHECKING:
    import pandas as pd


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; move it into place only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; reports are for people to read
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(data: Any, path: Path) -> None:
    """Write `data` as indented JSON atomically: a reader never sees half a file."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")


def read_json(path: Path) -> Any:
    """Read a JSON input, naming the missing or broken file instead of a bare traceback."""
    path = Path(path)
    if not path.is_file():
        raise MlopsError(f"missing input {path}: run the stage that writes it first")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError: a hand-edited or foreign file
        raise MlopsError(f"{path}: not valid JSON: {error}") from None


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write a frame as Parquet atomically (the stages' table format: typed, compact, DVC-hashable)."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def read_table(path: Path) -> pd.DataFrame:
    """Read a Parquet input, naming the missing file and the stage that writes it."""
    path = Path(path)
    if not path.is_file():
        raise MlopsError(f"missing input {path}: run the stage that writes it first")
    import pandas as pd  # here, not at the top: every `mlops` command imports this module, few read a table

    return pd.read_parquet(path)


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file's bytes, read in 1 MiB blocks (md5 is what DVC records for a file)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
