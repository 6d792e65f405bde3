"""Tables read as the lifecycle's sources are: CSV, TSV, JSONL or Parquet, a URL or a hub dataset.

The ingest stage, the validate and monitor stages (any data file given to
them) and batch scoring all read a file through these functions, so one file
reads the same everywhere: its format told by its suffix or declared, its
columns named by the source's settings, then projected onto the lifecycle's
`text`, `label` and `subset` columns. A reading problem is one MlopsError
that names the file and the column.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from mlops.core.errors import MlopsError
from mlops.core.sections.data import SourceSettings

if TYPE_CHECKING:
    from mlops.core.settings import Settings

BATCH_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
REMOTE_PREFIXES = ("http://", "https://", "s3://", "gs://", "az://")


def detect_format(path: str, declared: str) -> str:
    """A source's format: the declared one, else told by the file name's suffix (a query string ignored)."""
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
        import datasets  # an optional extra (mlops[remote]), imported only for a hub source
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


def read_with_header(path: Path) -> pd.DataFrame:
    """A data file with a header row, in any format ingest reads (told by its suffix), read the way ingest does."""
    return read_raw(SourceSettings(path=str(path)))


def read_as_dataset(settings: Settings, data: Path) -> pd.DataFrame:
    """A dataset file in the lifecycle's schema: Parquet in that schema as it is; any other file mapped through
    data.source."""
    if not Path(data).is_file():
        raise MlopsError(f"data file not found: {data}")
    source = settings.data.source.model_copy(update={"path": str(data), "format": "auto"})
    if detect_format(str(data), "auto") == "parquet":
        frame = pd.read_parquet(data)
        if {"text", "label"} & set(frame.columns):  # ingest's schema: let the suite name what is missing
            return frame if "subset" in frame else frame.assign(subset="main")
        source = source.model_copy(update={"header": True, "columns": None})
    return map_columns(read_raw(source), source, "main")
