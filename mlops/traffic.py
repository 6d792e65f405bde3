"""The served-traffic log that monitoring reads.

One JSON line per classified text, appended to a file per UTC day, so that a
monitoring window is a cheap read of the newest files and old days can be
rotated away without touching the current one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mlops.errors import MlopsError


class TrafficLog:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def append(self, texts: Sequence[str], results: Sequence[dict[str, Any]], latency_ms: float) -> None:
        now = datetime.now(UTC)
        lines = "".join(
            json.dumps({"timestamp": now.isoformat(), "text": text, "prediction": result["label"],
                        "confidence": result["score"], "model_version": result["model_version"],
                        "latency_ms": round(latency_ms, 2)}) + "\n"
            for text, result in zip(texts, results, strict=True)
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / f"traffic-{now:%Y%m%d}.jsonl", "a", encoding="utf-8") as handle:
            handle.write(lines)


def read_traffic(path: Path, max_rows: int) -> pd.DataFrame:
    """The newest `max_rows` records of a traffic log file or directory of them."""
    path = Path(path)
    files = sorted(path.glob("traffic-*.jsonl")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise MlopsError(f"no traffic log at {path}")
    frames = [pd.read_json(f, lines=True, dtype=False) for f in files if f.stat().st_size]
    if not frames:
        raise MlopsError(f"traffic log at {path} is empty")
    return pd.concat(frames, ignore_index=True).tail(max_rows).reset_index(drop=True)
