"""Stage `ingest`: bring labelled text from its source into one tidy table.

Whatever the source looks like (headerless CSV, JSONL, Parquet, a URL or a
hub dataset), the rest of the lifecycle sees the same schema: `text`, `label`
(a class name, as a string) and `subset` (`main`, or `test` for rows of a
held-out test source; `feedback` for labelled feedback) and `batch` (the file
a row came from). Reading problems surface here, once, with the file and
column named.

Data grows in two ways. `data.source.path` may be a directory of batch files
(CSV, TSV, JSONL or Parquet, read in name order with the source's column
mapping): a new export dropped in is new data. And every batch of labelled
feedback in `feedback.batches_dir` (`mlops feedback import`/`collect`) joins
as `subset: feedback`, its labels already class names; `split` holds a share
of each out as the recent test set. Both directories are dependencies of
this stage in dvc.yaml, so a new batch re-runs the lifecycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from mlops.core.batch_files import read_batches
from mlops.core.io import write_table
from mlops.core.raw_tables import read_source
from mlops.core.stage_io import StageIO

if TYPE_CHECKING:
    from mlops.core.settings import Settings

COLUMNS = ["text", "label", "subset", "batch"]


def read_feedback_batches(directory: Path) -> pd.DataFrame:
    """The labelled feedback batches, as `subset: feedback` rows."""

    rows = read_batches(directory)
    return pd.DataFrame({"text": rows["text"].astype("string"), "label": rows["label"].astype("string"),
                         "subset": "feedback", "batch": rows["batch"].astype("string")})


def ingest(settings: Settings) -> pd.DataFrame:
    data = settings.data
    frames = [read_source(data.source, "main")]
    if data.test_source is not None:
        frames.append(read_source(data.test_source, "test"))
    feedback = read_feedback_batches(Path(settings.feedback.batches_dir))
    if len(feedback):
        frames.append(feedback)
    return pd.concat(frames, ignore_index=True)[COLUMNS]


class IngestIO(StageIO):
    """The one table the stage writes."""

    stage = "ingest"
    out: Path


def run(settings: Settings, io: IngestIO) -> pd.DataFrame:
    frame = ingest(settings)
    write_table(frame, io.out)
    counts = frame["subset"].value_counts().to_dict()
    batches = frame.loc[frame["subset"] == "feedback", "batch"].nunique()
    print(f"ingest: {len(frame)} rows ({counts}; {batches} feedback batches) -> {io.out}")
    return frame
