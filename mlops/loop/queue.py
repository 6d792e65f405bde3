"""The labelling queue: the texts of a window that most need a label.

Least confident first (where the model is least sure, a label teaches it
most), one entry per distinct text, none that already has a label, at most
`feedback.queue_size`. Written as a CSV (`id`, `text`, `prediction`,
`confidence` and an empty `label` column to fill in, which `mlops feedback
import` reads back) and as a Label Studio import file (a JSON list of tasks
whose `data` holds the text and its id).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from mlops.core.io import atomic_path
from mlops.core.settings import Settings

QUEUE_CSV, QUEUE_LABEL_STUDIO = "queue.csv", "queue.labelstudio.json"


def build_queue(window: pd.DataFrame, labelled_ids: set[str], labelled_texts: set[str], size: int) -> pd.DataFrame:
    """The rows to label, least confident first, de-duplicated, without those already labelled."""
    if "text" not in window.columns or window.empty:  # a hashed traffic log: nothing a person could label
        return pd.DataFrame(columns=["id", "text", "prediction", "confidence", "label"])
    frame = window.assign(id=window["id"].fillna("").astype(str) if "id" in window else "",
                          prediction=window["prediction"].astype(str) if "prediction" in window else "",
                          confidence=window["confidence"].astype(float) if "confidence" in window else 0.0)
    frame = frame[frame["text"].astype(str).str.strip() != ""]
    key = frame["text"].astype(str).str.strip().str.casefold()
    frame = frame[~frame["id"].isin(labelled_ids) & ~key.isin(labelled_texts)]
    frame = frame.assign(_key=key).sort_values("confidence", kind="stable").drop_duplicates("_key")
    return frame.head(size)[["id", "text", "prediction", "confidence"]].assign(label="").reset_index(drop=True)


def already_labelled(settings: Settings) -> tuple[set[str], set[str]]:
    """Ids and (case-folded) texts that have a label already: in a batch or in the feedback log."""
    from mlops.core.batch_files import read_batches
    from mlops.serving.feedback import FEEDBACK_FILE, feedback_dir, read_feedback

    batches = read_batches(Path(settings.feedback.batches_dir))
    posted = read_feedback(feedback_dir() / FEEDBACK_FILE)
    ids = set(batches["id"]) | {r["id"] for r in posted}
    texts = set(batches["text"].astype(str).str.strip().str.casefold()) | {
        str(r["text"]).strip().casefold() for r in posted if r.get("text")}
    return ids - {""}, texts


def write_queue(settings: Settings, window: pd.DataFrame, out_dir: Path | None = None) -> tuple[Path, int]:
    """Write the queue of `window` as CSV and Label Studio JSON under `out_dir`; (CSV path, entries)."""
    out_dir = Path(out_dir or settings.feedback.queue_dir)
    queue = build_queue(window, *already_labelled(settings), settings.feedback.queue_size)
    with atomic_path(out_dir / QUEUE_CSV) as tmp:
        queue.to_csv(tmp, index=False, encoding="utf-8")
    tasks = [{"data": {"text": row.text, "id": row.id, "prediction": row.prediction,
                       "confidence": round(float(row.confidence), 4)}} for row in queue.itertuples()]
    with atomic_path(out_dir / QUEUE_LABEL_STUDIO) as tmp:
        tmp.write_text(json.dumps(tasks, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return out_dir / QUEUE_CSV, len(queue)
