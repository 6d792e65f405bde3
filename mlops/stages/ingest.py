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

import csv
from pathlib import Path

import pandas as pd

from mlops.core.errors import MlopsError
from mlops.core.io import write_table
from mlops.core.settings import Settings, SourceSettings

COLUMNS = ["text", "label", "subset", "batch"]
BATCH_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
REMOTE_PREFIXES = ("http://", "https://", "s3://", "gs://", "az://")


def detect_format(path: str, declared: str) -> str:
    if declared != "auto":
        return declared
    name = path.lower().split("?")[0]
    for suffix, fmt in ((".parquet", "parquet"), (".jsonl", "jsonl"), (".json", "jsonl"), (".tsv", "tsv"),
                        (".csv", "csv"), (".txt", "tsv")):
        if name.endswith(suffix):
            return fmt
    raise MlopsError(f"data source {path}: cannot tell its format from the name; set `format`")


def read_hub_dataset(name: str) -> pd.DataFrame:
    """Load `hf:<name>[:split]` with the `datasets` library (needs network)."""
    try:
        import datasets  # type: ignore[import-not-found]
    except ImportError:
        raise MlopsError("hub datasets need the `datasets` package: pip install 'mlops[remote]'") from None
    dataset_name, _, split = name.partition(":")
    return datasets.load_dataset(dataset_name, split=split or "train").to_pandas()


def read_raw(source: SourceSettings) -> pd.DataFrame:
    """Read a source as it is, columns named; raise MlopsError on anything unreadable."""
    path = source.path
    if path.startswith("hf:"):
        return read_hub_dataset(path[3:])
    if not path.startswith(REMOTE_PREFIXES) and not Path(path).is_file():
        raise MlopsError(f"data file not found: {path}")
    fmt = detect_format(path, source.format)
    try:
        if fmt in ("csv", "tsv"):
            frame = pd.read_csv(
                path,
                sep="\t" if fmt == "tsv" else ",",
                header=0 if source.header else None,
                names=list(source.columns) if source.columns else None,
                dtype=str,
                keep_default_na=False,
                quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL,
                encoding="utf-8",
            )
        elif fmt == "jsonl":
            frame = pd.read_json(path, lines=True, dtype=False)
        else:
            frame = pd.read_parquet(path)
    except MlopsError:
        raise
    except (UnicodeDecodeError, ValueError, pd.errors.ParserError, OSError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise MlopsError(f"data file {path}: cannot read it as {fmt}: {message}") from None
    if source.columns and source.header:
        frame = frame.rename(columns=dict(zip(frame.columns, source.columns, strict=False)))
    frame.columns = [str(column) for column in frame.columns]
    return frame


def map_columns(frame: pd.DataFrame, source: SourceSettings, subset: str) -> pd.DataFrame:
    """Project a raw table onto the lifecycle schema, naming any missing column."""
    wanted = [*source.text, source.label]
    missing = [column for column in wanted if column not in frame.columns]
    if missing:
        role = "text" if missing[0] in source.text else "label"
        # the count, not the names: the file may be anything a trigger pointed at, and errors reach alerts
        raise MlopsError(
            f"data file {source.path}: no {role} column {missing[0]!r} among its {len(frame.columns)} column(s) "
            f"(data.*.text and data.*.label name the columns to use)"
        )
    text = frame[list(source.text)].astype("string").fillna("")
    joined = text.iloc[:, 0] if len(source.text) == 1 else text.apply(lambda row: " ".join(row), axis=1)
    labels = frame[source.label].astype("string")
    if source.label_names:
        mapped = labels.map(source.label_names)
        unmapped = sorted(set(labels[mapped.isna() & labels.notna()]))
        if unmapped:
            raise MlopsError(
                f"data file {source.path}: label(s) {unmapped[:5]} are not in data.*.label_names"
            )
        labels = mapped.astype("string")
    return pd.DataFrame({"text": joined.astype("string"), "label": labels, "subset": subset})


def read_source(source: SourceSettings, subset: str) -> pd.DataFrame:
    """A source file, or every batch file of a source directory (name order), in the lifecycle schema."""
    path = source.path
    if path.startswith(("hf:", *REMOTE_PREFIXES)) or not Path(path).is_dir():
        return map_columns(read_raw(source), source, subset).assign(batch=Path(path.split("?")[0]).name)
    files = sorted(p for p in Path(path).iterdir() if p.is_file() and p.suffix.lower() in BATCH_SUFFIXES)
    if not files:
        raise MlopsError(f"data directory {path}: no batch files ({', '.join(BATCH_SUFFIXES)})")
    frames = []
    for file in files:
        spec = source.model_copy(update={"path": str(file)})
        frames.append(map_columns(read_raw(spec), spec, subset).assign(batch=file.name))
    return pd.concat(frames, ignore_index=True)


def read_feedback_batches(directory: Path) -> pd.DataFrame:
    """The labelled feedback batches, as `subset: feedback` rows."""
    from mlops.core.batch_files import read_batches

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


def run(settings: Settings, out: Path) -> pd.DataFrame:
    frame = ingest(settings)
    write_table(frame, out)
    counts = frame["subset"].value_counts().to_dict()
    batches = frame.loc[frame["subset"] == "feedback", "batch"].nunique()
    print(f"ingest: {len(frame)} rows ({counts}; {batches} feedback batches) -> {out}")
    return frame
