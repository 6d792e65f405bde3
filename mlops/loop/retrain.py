"""A drift-triggered lifecycle run: retrain on new labels, or say plainly that there are none.

Drift alone is no reason to retrain: the same data gives the same model. What
a drift-triggered run needs is labels for the drifted traffic. So it first
turns the labels posted to `/feedback` since the last collection into a new
batch, then compares the feedback batches on disk with those the last
ingested data held (the data the current champion was judged on). New
batches: the lifecycle runs as usual (DVC sees the batches directory change,
so ingest and everything after it re-run; the gate judges the candidate on
the recent set too; an accepted model is packaged and promoted). None: the
run ends, not failed, with "drift, no new labels since the champion's data:
N texts queued for labelling at <path>" in its record and summary; the
queue is the one monitoring wrote when it found the drift.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from mlops.core.batch_files import batched_labels, list_batches, read_batch
from mlops.core.environment import feedback_dir
from mlops.core.feedback_log import FEEDBACK_FILE, read_feedback
from mlops.core.labelling_queue import QUEUE_CSV
from mlops.core.redact import write_redacted
from mlops.core.settings import Settings, load_settings

LOOP_FILE = "loop.json"  # in a drift-triggered run's record


def ingested_batches(project: Path) -> set[str]:
    """The feedback batches the last ingested data held."""
    path = project / "data" / "ingested.parquet"
    if not path.is_file():
        return set()
    frame = pd.read_parquet(path, columns=None)
    if "batch" not in frame or "subset" not in frame:
        return set()
    return set(frame.loc[frame["subset"] == "feedback", "batch"].astype(str))


def new_trusted_labels(project: Path, settings: Settings | None = None) -> dict[str, Any]:
    """How many trusted labels the champion's data lacks: the `new_labels` trigger's count
    (mlops/orchestration/triggers.py).

    The champion's data is the last ingested data (`data/ingested.parquet`, whose
    feedback rows name their batch), as for a drift-triggered run (`prepare`
    below). Counted: the rows of the feedback batches it did not hold, and the
    labellers' labels posted to /feedback that no batch (nor a held one) holds
    yet, with their text (a label of a hashed text cannot train a model, and
    collecting skips it). Clients' suggestions are never counted; batches held
    for review are not data until approved. Labels a retraining the gate
    rejected already ingested start no second one.
    """

    project = Path(project)
    settings = settings or load_settings(project / "params.yaml")
    batches_dir = project / settings.feedback.batches_dir
    ingested = ingested_batches(project)
    pending = [path for path in list_batches(batches_dir) if path.name not in ingested]
    in_batches = sum(len(read_batch(path)) for path in pending)
    done = batched_labels(batches_dir) | batched_labels(project / settings.feedback.held_dir)
    posted = sum(1 for r in read_feedback(feedback_dir(project) / FEEDBACK_FILE)
                 if r.get("role") == "labeller" and done.get(r["id"]) != r["label"]
                 and isinstance(r.get("text"), str) and r["text"].strip())
    return {"count": in_batches + posted, "in_batches": in_batches, "posted": posted,
            "batches": [path.name for path in pending], "champion_batches": len(ingested)}


def queue_of(project: Path, settings: Settings, summaries: list[str]) -> tuple[int, str]:
    """The labelling queue of the drift that started the run (from its monitoring summary), else the queue dir's."""
    for summary in reversed(summaries):
        path = Path(summary)
        if path.is_file():
            queue = json.loads(path.read_text(encoding="utf-8")).get("labelling_queue")
            if queue:
                return int(queue["rows"]), str(queue["path"])

    path = (project / settings.feedback.queue_dir / QUEUE_CSV).resolve()
    return (len(pd.read_csv(path)) if path.is_file() else 0), str(path)


def prepare(project: Path, summaries: list[str] | None = None, reason: str = "drift") -> dict[str, Any]:
    """Collect posted labels into a batch and decide: `retrain` (new labelled batches) or `no_new_labels`;
    `reason` (what started the run: drift, a live accuracy breach, new labels, the schedule) opens the message."""
    import os

    from mlops.loop.batches import collect_served

    project = Path(project).resolve()
    settings = load_settings(project / "params.yaml")
    batches_dir = project / settings.feedback.batches_dir
    batches_dir.mkdir(parents=True, exist_ok=True)
    log = feedback_dir(project) / FEEDBACK_FILE
    here = Path.cwd()
    try:
        os.chdir(project)  # batches_dir and the label set resolve against the project
        outcome = collect_served(settings, log)
    finally:
        os.chdir(here)
    new = sorted({path.name for path in list_batches(batches_dir)} - ingested_batches(project))
    result: dict[str, Any] = {"collected": 0 if outcome.held else outcome.rows,
                              "collected_batch": str(outcome.batch) if outcome.batch else None,
                              "held_batch": str(outcome.held) if outcome.held else None,
                              "held_reasons": list(outcome.reasons),
                              "skipped_without_text": outcome.skipped_without_text,
                              "untrusted": outcome.untrusted, "new_batches": new}
    if new:
        result |= {"status": "retrain",
                   "message": f"{reason}, {len(new)} new labelled batch(es) since the champion's data "
                              f"({', '.join(new)}): retraining"}
    else:
        queued, path = queue_of(project, settings, summaries or [])
        held = (f"; {outcome.rows} new labels were HELD for review ({outcome.held.stem}: `mlops feedback held`)"
                if outcome.held else "")
        result |= {"status": "no_new_labels", "queued": queued, "queue": path,
                   "message": f"{reason}, no new labels since the champion's data: {queued} texts queued for "
                              f"labelling at {path}{held}"}
    return result


def write_loop_record(folder: Path, result: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_redacted(folder / LOOP_FILE, json.dumps(result, indent=2) + "\n")
