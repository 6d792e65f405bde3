"""Feedback batch files: how they are named, written and read.

A batch is a CSV of `id`, `text`, `label` in `feedback.batches_dir`, named by
the time it was made and never rewritten. `ingest` reads them with the
primary source; the loop (mlops/loop/) writes them. Both sides share this
one definition, so ingest depends on nothing of the loop's.
"""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from mlops.core.io import atomic_path

BATCH = re.compile(r"^batch-\d{8}T\d{6}\d*Z-[A-Za-z0-9_.-]+\.csv$")
BATCH_COLUMNS = ["id", "text", "label"]


def list_batches(directory: Path) -> list[Path]:
    """The batch files of a directory, oldest first (their names start with the time they were made)."""
    directory = Path(directory)
    return sorted(p for p in directory.glob("batch-*.csv") if BATCH.match(p.name)) if directory.is_dir() else []


def read_batch(path: Path) -> pd.DataFrame:
    """Read a batch as text columns only: ids and labels like 007 or NA must stay what the labeller wrote."""
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")


def write_batch(frame: pd.DataFrame, directory: Path, kind: str) -> Path:
    """Write `frame` (id, text, label) as a new batch file, atomically; its path."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = Path(directory) / f"batch-{stamp}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', kind)}.csv"
    with atomic_path(path) as tmp:
        frame[BATCH_COLUMNS].to_csv(tmp, index=False, quoting=csv.QUOTE_MINIMAL, encoding="utf-8")
    return path


def read_batches(directory: Path) -> pd.DataFrame:
    """Every batch's rows with the batch's file name; a relabelled id keeps only its latest label."""
    frames = [read_batch(path).assign(batch=path.name) for path in list_batches(directory)]
    if not frames:
        return pd.DataFrame(columns=[*BATCH_COLUMNS, "batch"], dtype="string")
    rows = pd.concat(frames, ignore_index=True)
    with_id = rows[rows["id"] != ""].drop_duplicates("id", keep="last")
    return pd.concat([with_id, rows[rows["id"] == ""]]).sort_index().reset_index(drop=True)


def batched_labels(directory: Path) -> dict[str, str]:
    """The latest label of every id in the batch files of a directory (the data's, or the held ones')."""
    latest: dict[str, str] = {}
    for path in list_batches(directory):
        frame = read_batch(path)
        latest.update(zip(frame["id"], frame["label"], strict=True))
    return latest
