"""The labelling queue: the texts that most need a labeller's eye.

First, what clients suggested through `/feedback` (an end user said the
answer was wrong: a labeller confirms or corrects it before it is data); then
the least confident texts of the window (where the model is least sure, a
label teaches it most). One entry per distinct text, none that already has a
trusted label, at most `feedback.queue_size`. Written as a CSV (`id`, `text`,
`prediction`, `confidence`, `suggested_label` and an empty `label` column to
fill in, which `mlops feedback import` reads back) and as a Label Studio
import file whose tasks carry the suggestion, else the model's answer, as a
pre-annotation (`predictions`), with the labelling config they fit
(`queue.labelstudio.xml`). Cells that a spreadsheet would run as a formula
(`=`, `+`, `-`, `@`, tab, carriage return first) are written with a leading
`'`, which the import takes off again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops.core.batch_files import batched_labels, read_batches
from mlops.core.environment import feedback_dir
from mlops.core.feedback_log import FEEDBACK_FILE, SUGGESTIONS_FILE, read_feedback
from mlops.core.io import atomic_path
from mlops.core.labels import declared_labels

if TYPE_CHECKING:
    from mlops.core.settings import Settings

QUEUE_CSV, QUEUE_LABEL_STUDIO, QUEUE_LABEL_CONFIG = "queue.csv", "queue.labelstudio.json", "queue.labelstudio.xml"
QUEUE_COLUMNS = ["id", "text", "prediction", "confidence", "suggested_label", "label"]
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
ESCAPE = "'"


def escape_cell(value: object) -> object:
    """A text cell a spreadsheet will show as text, never run: a leading `'` before a formula's first character
    (and before a leading `'`, so that unescaping is exact)."""
    if isinstance(value, str) and value.startswith((*FORMULA_LEADS, ESCAPE)):
        return ESCAPE + value
    return value


def unescape_cell(value: object) -> object:
    """`escape_cell` undone."""
    if isinstance(value, str) and value.startswith(ESCAPE) and value[1:].startswith((*FORMULA_LEADS, ESCAPE)):
        return value[1:]
    return value


def is_queue_file(frame: pd.DataFrame) -> bool:
    """Whether a labelled file is this queue filled in (its cells then carry `escape_cell`'s marks)."""
    return set(QUEUE_COLUMNS) <= set(frame.columns)


def build_queue(window: pd.DataFrame, labelled_ids: set[str], labelled_texts: set[str], size: int,
                suggestions: pd.DataFrame | None = None) -> pd.DataFrame:
    """The rows to label: suggestions first (newest first), then the least confident; de-duplicated, without those
    already labelled."""
    parts = []
    if suggestions is not None and not suggestions.empty:
        parts.append(suggestions.assign(_order=0))
    if "text" in window.columns and not window.empty:  # a hashed traffic log: nothing a person could label
        parts.append(window.assign(
            id=window["id"].fillna("").astype(str) if "id" in window else "",
            prediction=window["prediction"].astype(str) if "prediction" in window else "",
            confidence=window["confidence"].astype(float) if "confidence" in window else 0.0,
            suggested_label="", _order=1))
    if not parts:
        return pd.DataFrame(columns=QUEUE_COLUMNS)
    frame = pd.concat(parts, ignore_index=True)
    frame = frame[frame["text"].astype(str).str.strip() != ""]
    key = frame["text"].astype(str).str.strip().str.casefold()
    frame = frame[~frame["id"].isin(labelled_ids) & ~key.isin(labelled_texts)]
    frame = frame.assign(_key=key).sort_values(["_order", "confidence"], kind="stable").drop_duplicates("_key")
    return frame.head(size)[QUEUE_COLUMNS[:-1]].assign(label="").reset_index(drop=True)


def already_labelled(settings: Settings) -> tuple[set[str], set[str]]:
    """Ids and (case-folded) texts that have a trusted label already: in a batch, held for review, or posted by a
    labeller."""
    batches = read_batches(Path(settings.feedback.batches_dir))
    posted = read_feedback(feedback_dir() / FEEDBACK_FILE)
    ids = set(batches["id"]) | {r["id"] for r in posted} | set(batched_labels(Path(settings.feedback.held_dir)))
    texts = set(batches["text"].astype(str).str.strip().str.casefold()) | {
        str(r["text"]).strip().casefold() for r in posted if r.get("text")}
    return ids - {""}, texts


def read_suggestions() -> pd.DataFrame:
    """Clients' suggestions that carry their text: newest first, one per id."""
    rows = [{"id": r["id"], "text": r["text"], "prediction": str(r.get("prediction") or ""),
             "confidence": float(r.get("confidence") or 0.0), "suggested_label": r["label"],
             "at": str(r.get("labelled_at") or "")}
            for r in read_feedback(feedback_dir() / SUGGESTIONS_FILE) if isinstance(r.get("text"), str)]
    frame = pd.DataFrame(rows, columns=["id", "text", "prediction", "confidence", "suggested_label", "at"])
    return frame.sort_values("at", ascending=False, kind="stable").drop(columns="at")


def label_studio_tasks(queue: pd.DataFrame, versions: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Label Studio tasks: the text and its id, and a pre-annotation (the suggestion, else the model's answer,
    its `model_version` the served model's tag from `versions`, id -> tag, where the traffic names it)."""
    versions = versions or {}
    tasks = []
    for row in queue.itertuples():
        task: dict[str, Any] = {"data": {"text": row.text, "id": row.id, "prediction": row.prediction,
                         "confidence": round(float(row.confidence), 4), "suggested_label": row.suggested_label}}
        choice = row.suggested_label or row.prediction
        if choice:
            task["predictions"] = [{"model_version": "suggestion" if row.suggested_label
                                    else versions.get(str(row.id)) or "model",
                                    "score": round(float(row.confidence), 4),
                                    "result": [{"from_name": "label", "to_name": "text", "type": "choices",
                                                "value": {"choices": [choice]}}]}]
        tasks.append(task)
    return tasks


def label_config(labels: list[str]) -> str:
    """The Label Studio labelling config the tasks' pre-annotations fit (`label` choices over `text`)."""
    from xml.sax.saxutils import quoteattr

    choices = "\n".join(f"    <Choice value={quoteattr(label)}/>" for label in labels)
    return (f'<View>\n  <Text name="text" value="$text"/>\n  <Choices name="label" toName="text" choice="single">\n'
            f"{choices}\n  </Choices>\n</View>\n")


def write_queue(settings: Settings, window: pd.DataFrame, out_dir: Path | None = None) -> tuple[Path, int]:
    """Write the queue of `window` (and clients' suggestions) as CSV and Label Studio files; (CSV path, entries)."""
    out_dir = Path(out_dir or settings.feedback.queue_dir)
    queue = build_queue(window, *already_labelled(settings), settings.feedback.queue_size, read_suggestions())
    with atomic_path(out_dir / QUEUE_CSV) as tmp:
        queue.assign(confidence=queue["confidence"].astype(float).round(6),
                     **{column: queue[column].map(escape_cell) for column in ("id", "text", "prediction",
                                                                            "suggested_label")}
                     ).to_csv(tmp, index=False, encoding="utf-8")
    with atomic_path(out_dir / QUEUE_LABEL_STUDIO) as tmp:
        versions = dict(zip(window["id"].astype(str), window["model_version"].astype(str), strict=True)) \
            if {"id", "model_version"} <= set(window.columns) else {}
        tmp.write_text(json.dumps(label_studio_tasks(queue, versions), ensure_ascii=False, indent=1) + "\n",
                       encoding="utf-8")
    labels = declared_labels(settings) or sorted({*queue["prediction"], *queue["suggested_label"]} - {""})
    with atomic_path(out_dir / QUEUE_LABEL_CONFIG) as tmp:
        tmp.write_text(label_config(labels), encoding="utf-8")
    return out_dir / QUEUE_CSV, len(queue)
