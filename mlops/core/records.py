"""The records stages write and other code reads, each with one reader and one writer.

The evaluation metrics are two files so that `dvc exp show` stays readable: the headline figures in
`metrics/evaluate.json` and everything else (per class, per slice, confusion matrix, behaviour cases, variants) in
its detail file beside it. Readers get the whole document back from `read_metrics`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlops.core.io import read_json, write_json

HEADLINE = ("rows", "accuracy", "macro_f1", "ece", "size_mb", "latency")  # one column each in `dvc exp show`



def detail_path(metrics_path: Path) -> Path:
    """metrics/evaluate.json -> metrics/evaluate_detail.json: where the per-class and per-slice figures go."""
    path = Path(metrics_path)
    return path.with_name(f"{path.stem}_detail{path.suffix}")



def write_metrics(metrics: dict[str, Any], metrics_path: Path) -> None:
    """Split the metrics in two files so `dvc exp show` stays readable: the headline figures in `metrics_path`,
    everything else (per class, per slice, confusion matrix, behaviour cases, variants) in its detail file."""
    write_json({key: metrics[key] for key in HEADLINE if key in metrics}, metrics_path)
    write_json({key: value for key, value in metrics.items() if key not in HEADLINE}, detail_path(metrics_path))



def read_metrics(metrics_path: Path, missing_ok: bool = False) -> dict[str, Any]:
    """The whole metrics document again: the headline file merged with its detail file (when there is one).

    missing_ok: no metrics yet (evaluate has not run) reads as {} rather than an error, for reports that say so."""
    if missing_ok and not Path(metrics_path).is_file():
        return {}
    metrics = read_json(metrics_path)
    detail = detail_path(metrics_path)
    return {**metrics, **read_json(detail)} if detail.is_file() else metrics
