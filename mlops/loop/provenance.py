"""Who gave the labels: a table per source, for `mlops feedback sources`.

A source is the credential a label was posted with (its name in the keys
file, or the role's own variable), or `import:<file>` for an operator's
import. Agreement with the model is the share of its labels that match the
answer the text got: a source far below the others is worth a look, one at
100% adds little the model did not know.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlops.core.batch_files import list_batches, read_batch
from mlops.core.feedback_log import FEEDBACK_FILE, SUGGESTIONS_FILE, read_feedback
from mlops.core.settings import Settings

COLUMNS = ["source", "role", "labels", "share", "agreement", "first", "last"]


def posted_records(directory: Path) -> pd.DataFrame:
    """The latest record per id of the labellers' log and of the clients' suggestions."""

    rows = [{"source": r.get("source") or "unknown (before sources were recorded)", "role": r.get("role") or "?",
             "agrees": (r["label"] == r["prediction"]) if r.get("prediction") is not None else None,
             "at": r.get("labelled_at")}
            for name in (FEEDBACK_FILE, SUGGESTIONS_FILE) for r in read_feedback(Path(directory) / name)]
    return pd.DataFrame(rows, columns=["source", "role", "agrees", "at"])


def imported_records(settings: Settings) -> pd.DataFrame:
    """One row per label of every imported batch (their file names say so; the model's answer is not kept)."""
    frames = [pd.DataFrame({"source": f"import:{path.name}", "role": "operator", "agrees": None, "at": None},
                           index=range(len(read_batch(path))))
              for path in list_batches(Path(settings.feedback.batches_dir)) if "-import-" in path.name]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["source", "role", "agrees", "at"])


def source_table(settings: Settings, feedback_dir: Path) -> pd.DataFrame:
    """Per source: role, labels, share of all, agreement with the model (where known), first and last label."""
    records = pd.concat([frame for frame in (posted_records(feedback_dir), imported_records(settings))
                         if not frame.empty] or [pd.DataFrame(columns=["source", "role", "agrees", "at"])],
                        ignore_index=True)
    if records.empty:
        return pd.DataFrame(columns=COLUMNS)
    table = []
    for (source, role), rows in records.groupby(["source", "role"], sort=True):
        known = rows["agrees"].dropna()
        times = rows["at"].dropna().astype(str)
        table.append({"source": source, "role": role, "labels": len(rows),
                      "share": f"{len(rows) / len(records):.1%}",
                      "agreement": f"{known.astype(bool).mean():.1%}" if len(known) else "-",
                      "first": times.min() if len(times) else "-", "last": times.max() if len(times) else "-"})
    return pd.DataFrame(table, columns=COLUMNS).sort_values("labels", ascending=False, kind="stable")
