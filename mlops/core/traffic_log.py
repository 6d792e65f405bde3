"""The served-traffic log as its readers see it: its files, its ids, its newest records.

The service writes the log (mlops/serving/traffic.py, and the shadow's parts
in mlops/serving/shadow_log.py); monitoring, live quality, the shadow report
and feedback only read it. What they read is here, below every layer that
writes or reads: the file names of the served parts (`traffic-<day>-<part>.jsonl`)
and of the shadow's (`shadow-<day>-<part>.jsonl`), when an answer's id was made,
and the records of a window, a part torn by a killed writer read all the same.
"""

from __future__ import annotations

import io
import json
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from mlops.core.errors import MlopsError

PART = re.compile(r"^traffic-(\d{8})-(\d{4})\.jsonl$")
SHADOW_PART = re.compile(r"^shadow-(\d{8})-(\d{4})\.jsonl$")
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")

logger = logging.getLogger("mlops.serving.traffic")  # the name operators' log filters know the torn-line warning by


def id_time(request_id: str) -> datetime | None:
    """When an id was made (UTC), or None for a string that is not one of our ids."""
    if not ULID.match(request_id) or request_id[0] > "7":  # a 26-character ULID holds 130 bits; the top 2 are 0
        return None
    value = 0
    for char in request_id:
        value = value * 32 + CROCKFORD.index(char)
    return datetime.fromtimestamp((value >> 80) / 1000, UTC)


def list_parts(directory: Path) -> list[Path]:
    """The log's files, oldest first (day, then part number)."""
    return sorted(p for p in Path(directory).glob("traffic-*.jsonl") if PART.match(p.name))


def list_shadow_parts(directory: Path) -> list[Path]:
    """The shadow's files in a traffic log directory, oldest first (day, then part number)."""
    return sorted(p for p in Path(directory).glob("shadow-*.jsonl") if SHADOW_PART.match(p.name))


def read_part(file: Path) -> tuple[pd.DataFrame, int]:
    """One log file's records and how many of its lines were torn (not a whole JSON object) and skipped.

    A writer killed mid-append leaves half a line; until the part rotates
    out, monitoring must still read the rest. A file with no whole record at
    all is not a torn log but something else, and is named.
    """
    try:
        return pd.read_json(file, lines=True, dtype=False), 0
    except ValueError as error:  # also UnicodeDecodeError: a character cut in two
        failure = error
    good, torn = [], 0
    for raw in file.read_bytes().splitlines():
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
            record = json.loads(text)
        except ValueError:
            record = None
        if isinstance(record, dict):
            good.append(text)
        else:
            torn += 1
    if not good:
        raise MlopsError(f"traffic log {file}: not JSON lines: {failure}")
    return pd.read_json(io.StringIO("\n".join(good)), lines=True, dtype=False), torn


def read_traffic(path: Path, window_rows: int, window_hours: float | None = None) -> pd.DataFrame:
    """The newest `window_rows` records (of the last `window_hours`, when given) of a log file or directory.

    Torn lines are skipped with one warning per file ("N torn lines skipped in
    <file>"); the frame's `attrs["torn_lines"]` holds their total."""
    path = Path(path)
    files = list_parts(path) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise MlopsError(f"no traffic log at {path}")
    frames, rows, torn = [], 0, 0
    for file in reversed(files):  # newest first, until the window is full
        if not file.stat().st_size:
            continue
        frame, skipped = read_part(file)
        if skipped:
            logger.warning("%d torn lines skipped in %s", skipped, file)
            torn += skipped
        frames.append(frame)
        rows += len(frame)
        if rows >= window_rows:
            break
    if not frames:
        raise MlopsError(f"traffic log at {path} is empty")
    window = pd.concat(reversed(frames), ignore_index=True)
    if window_hours is not None:
        if "timestamp" not in window.columns:
            raise MlopsError(f"traffic log at {path} has no timestamp column; a window in hours needs one")
        since = pd.Timestamp(datetime.now(UTC) - timedelta(hours=window_hours))
        window = window[pd.to_datetime(window["timestamp"], utc=True, format="ISO8601") >= since]
    window = window.tail(window_rows).reset_index(drop=True)
    window.attrs["torn_lines"] = torn
    return window
