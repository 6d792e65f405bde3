"""Batches held for review: written beside the data, never in it, until a person decides.

A held batch is the CSV it would have been (same name, same columns) in
`feedback.held_dir`, with a JSON record beside it: why it was held, the
screening's evidence, and later the decision. `ingest` reads only
`feedback.batches_dir`, so a held batch changes no data and no DVC hash: the
lifecycle runs on without it. `approve` moves the CSV into the batches
directory (and `dvc add`s it); `reject` keeps it here, marked rejected. Either
way its ids count as handled: the same labels are not collected again.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mlops.core.batch_files import BATCH, write_batch
from mlops.core.errors import MlopsError
from mlops.core.io import atomic_path
from mlops.core.settings import Settings
from mlops.loop.screening import Screening

STATUSES = ("held", "approved", "rejected")


def record_path(csv_path: Path) -> Path:
    return csv_path.with_suffix(".json")


def write_record(path: Path, record: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")


def hold(frame: pd.DataFrame, directory: Path, kind: str, screening: Screening, origin: str) -> Path:
    """Write `frame` as a held batch with its reasons and evidence; the CSV's path."""
    path = write_batch(frame, Path(directory), kind)
    write_record(record_path(path), {"name": path.stem, "status": "held", "rows": len(frame), "origin": origin,
                                     "held_at": datetime.now(UTC).isoformat(), "reasons": screening.reasons,
                                     "evidence": screening.evidence})
    return path


def read_records(directory: Path) -> list[dict[str, Any]]:
    """Every held batch's record, oldest first (a record that does not parse is reported, not skipped)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    records = []
    for path in sorted(directory.glob("batch-*.json")):
        try:
            records.append(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError:
            records.append({"name": path.stem, "status": "unreadable", "reasons": [f"{path.name} is not JSON"]})
    return records


def held_csv(settings: Settings, name: str) -> Path:
    """The CSV of the held batch `name` (with or without .csv), confined to the held directory."""
    stem = re.sub(r"\.csv$", "", name.strip())
    if not BATCH.match(f"{stem}.csv"):
        raise MlopsError(f"{name!r} is not a batch name (see `mlops feedback held`)")
    path = Path(settings.feedback.held_dir) / f"{stem}.csv"
    if not record_path(path).is_file():
        raise MlopsError(f"no held batch {stem} in {settings.feedback.held_dir} (see `mlops feedback held`)")
    return path


def decide(settings: Settings, name: str, status: str, by: str, note: str = "") -> dict[str, Any]:
    """Approve or reject the held batch `name`; its updated record. A batch is decided once."""
    path = held_csv(settings, name)
    record = json.loads(record_path(path).read_text(encoding="utf-8"))
    if record.get("status") != "held":
        raise MlopsError(f"batch {path.stem} was already {record.get('status')} "
                         f"({record.get('decided_by', 'unknown')}, {record.get('decided_at', 'unknown time')})")
    record |= {"status": status, "decided_by": by, "decided_at": datetime.now(UTC).isoformat(), "note": note}
    if status == "approved":
        target = Path(settings.feedback.batches_dir) / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)  # same filesystem: the batch appears whole or not at all
        record["batch"] = str(target)
    write_record(record_path(path), record)
    return record
