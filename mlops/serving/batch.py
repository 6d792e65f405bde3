"""Batch scoring: `mlops predict --input FILE --output FILE [--model TAG]`.

The API answers at most `serve.max_texts` texts a request; a file of
thousands is scored here, in-process, by the same model the service would
load (the registry's champion, or a given version), in chunks with a
progress bar. Each output row carries the API's fields (label, score,
probabilities, model_version) next to the input's own columns (an input
column that clashes with one of them is kept as `input_<name>`). The whole
input is read and checked before the model loads, and the output is written
through a temporary file moved into place at the end: bad input gets one
line naming the problem, and never a half-written output. Not a dvc stage:
it reads a file the pipeline does not own and writes where the user says.
"""

from __future__ import annotations

import os

# libgomp's default busy-wait makes torch threads spin against any other busy process: on a shared 2-core
# machine scoring collapses (stack facts: 55 -> 2 texts/s). Set before torch is first imported, as the service does.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mlops.core import registry
from mlops.core.errors import MlopsError  # noqa: E402
from mlops.core.io import atomic_path  # noqa: E402
from mlops.core.raw_tables import read_raw  # noqa: E402
from mlops.core.settings import Settings, SourceSettings  # noqa: E402
from mlops.ml.model import set_cpu_threads
from mlops.ml.variants import load_served

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
API_FIELDS = ("label", "score", "probabilities", "model_version")


@dataclass(frozen=True)
class ServedModel:
    """A model directory and the version name the API would report for it."""

    path: Path
    version: str


def file_format(path: Path, role: str) -> str:
    """csv, tsv, jsonl or parquet, from the file name; a one-line error for anything else."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise MlopsError(f"{role} {path}: unsupported format {Path(path).suffix or '(no suffix)'!r}; "
                         f"use one of {', '.join(sorted(FORMATS))}")
    return fmt


def resolve_model(tag: str | None) -> ServedModel:
    """`tag` from the BentoML store (or a model directory); none: the registry's champion, as the service does."""

    if tag and Path(tag).is_dir():
        return ServedModel(Path(tag), str(Path(tag)))
    if not tag:
        current = registry.champion()
        if current is None:
            raise MlopsError("no champion yet and no --model given: run the lifecycle (make run) first")
        tag = current["model"]
    import bentoml

    try:
        model = bentoml.models.get(tag)
    except (bentoml.exceptions.NotFound, ValueError):
        raise MlopsError(f"model {tag} is not in the BentoML store at {registry.bentoml_home()}") from None
    return ServedModel(Path(model.path), str(model.tag))


def read_input(path: Path, text_columns: tuple[str, ...], columns: tuple[str, ...] | None) -> pd.DataFrame:
    """The input table, as ingest reads files; `columns` names a headerless CSV/TSV's columns."""
    fmt = file_format(path, "input")
    source = SourceSettings(path=str(path), format=fmt, header=columns is None, columns=columns,
                            text=text_columns)
    frame = read_raw(source)
    missing = [column for column in text_columns if column not in frame.columns]
    if missing:
        # the count, not the names: errors of a triggered run reach its alerts
        raise MlopsError(f"input {path}: no text column {missing[0]!r} among its {len(frame.columns)} column(s) "
                         f"(--text names the column to score)")
    if frame.empty:
        raise MlopsError(f"input {path}: no rows to score")
    return frame


def texts_of(frame: pd.DataFrame, text_columns: tuple[str, ...], path: Path) -> list[str]:
    """One text per row (several text columns joined by a space, as ingest joins them); empty ones refused."""
    parts = frame[list(text_columns)].astype("string").fillna("")
    joined = parts.iloc[:, 0] if len(text_columns) == 1 else parts.apply(lambda row: " ".join(row), axis=1)
    blank = np.flatnonzero(joined.str.strip().fillna("").eq("").to_numpy())
    if len(blank):
        rows = ", ".join(str(int(i)) for i in blank[:5])
        raise MlopsError(f"input {path}: {len(blank)} row(s) with no text (first rows, from 0: {rows})")
    return joined.tolist()


def score_texts(model: ServedModel, texts: list[str], settings: Settings, chunk_size: int,
                progress: bool = True) -> list[dict[str, Any]]:
    """The API's answer for every text, scored `chunk_size` texts at a time with a progress bar."""
    from tqdm.auto import tqdm


    set_cpu_threads()  # every core: a file, unlike a request, has the machine to itself
    classifier = load_served(model.path, settings.serve.precision)
    labels = classifier.labels
    answers: list[dict[str, Any]] = []
    with tqdm(total=len(texts), unit="text", desc="predict", disable=not progress) as bar:
        for start in range(0, len(texts), chunk_size):
            chunk = texts[start:start + chunk_size]
            proba = classifier.predict_proba(chunk, settings.serve.micro_batch, settings.serve.max_batch_tokens)
            answers += [{"label": labels[int(row.argmax())], "score": float(row.max()),
                         "probabilities": {label: float(p) for label, p in zip(labels, row, strict=True)},
                         "model_version": model.version} for row in proba]
            bar.update(len(chunk))
    return answers


def output_table(frame: pd.DataFrame, answers: list[dict[str, Any]], fmt: str) -> pd.DataFrame:
    """The input's columns, then the API's fields; probabilities as JSON text in CSV/TSV."""
    kept = frame.rename(columns={c: f"input_{c}" for c in frame.columns if c in API_FIELDS}).reset_index(drop=True)
    predicted = pd.DataFrame(answers)
    if fmt in ("csv", "tsv"):
        predicted["probabilities"] = [json.dumps(p, sort_keys=True) for p in predicted["probabilities"]]
    return pd.concat([kept, predicted], axis=1)


def write_output(table: pd.DataFrame, path: Path, fmt: str) -> None:
    """All or nothing: a temporary sibling, moved into place once complete."""
    with atomic_path(path) as tmp:
        if fmt == "parquet":
            table.to_parquet(tmp, index=False)
        elif fmt == "jsonl":
            table.to_json(tmp, orient="records", lines=True, force_ascii=False)
        else:
            table.to_csv(tmp, sep="\t" if fmt == "tsv" else ",", index=False)


def run(settings: Settings, input_path: Path, output_path: Path, tag: str | None = None,
        text_columns: tuple[str, ...] = ("text",), columns: tuple[str, ...] | None = None,
        chunk_size: int = 512, progress: bool = True) -> dict[str, Any]:
    """Score `input_path` into `output_path`; returns rows, seconds, texts/s and the model version."""
    if chunk_size < 1:
        raise MlopsError(f"--chunk-size must be at least 1, not {chunk_size}")
    out_fmt = file_format(output_path, "output")
    if Path(output_path).resolve() == Path(input_path).resolve():
        raise MlopsError(f"output {output_path} is the input file: give another path")
    frame = read_input(Path(input_path), text_columns, columns)
    texts = texts_of(frame, text_columns, Path(input_path))
    model = resolve_model(tag)
    started = time.perf_counter()
    answers = score_texts(model, texts, settings, chunk_size, progress)
    seconds = time.perf_counter() - started
    write_output(output_table(frame, answers, out_fmt), Path(output_path), out_fmt)
    result = {"rows": len(texts), "seconds": round(seconds, 2), "texts_per_second": round(len(texts) / seconds, 1),
              "model_version": model.version, "output": str(output_path)}
    print(f"predict: {result['rows']} rows scored by {model.version} in {result['seconds']} s "
          f"({result['texts_per_second']} texts/s) -> {output_path}")
    return result
