"""The feedback logs' format, shared by the service that writes them and the loop that reads them.

`feedback.jsonl` holds labellers' labels (trusted), `suggestions.jsonl`
clients' (suggestions): one JSON object per line, appended under a lock and
fsynced by the service (mlops/serving/feedback.py). A crash mid-write leaves
a torn last line, which readers skip; the latest record of an id wins.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FEEDBACK_FILE = "feedback.jsonl"        # labellers' labels: trusted
SUGGESTIONS_FILE = "suggestions.jsonl"  # clients' labels: suggestions for a labeller to confirm


def read_feedback(path: Path) -> list[dict[str, Any]]:
    """Every intact record of a feedback log, the latest per id, in the order they were first labelled."""
    if not Path(path).is_file():
        return []
    latest: dict[str, dict[str, Any]] = {}
    for line in Path(path).read_bytes().splitlines():
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(record, dict) and "id" in record and "label" in record:
            latest[record["id"]] = record
    return list(latest.values())
