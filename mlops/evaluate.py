"""Stage `evaluate`: how good is the candidate, on examples it never saw.

Besides the headline metrics it writes the scored validation and test splits
(every prediction with its probabilities): the gate pairs champion and
challenger on the same test rows, and monitoring uses the scored validation
split as its reference for what the model's outputs normally look like.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops.io import atomic_path, read_table, write_json, write_table
from mlops.model import Classifier, set_cpu_threads
from mlops.settings import Settings


def score(classifier: Classifier, frame: pd.DataFrame) -> pd.DataFrame:
    """Add `prediction`, `confidence` and one `proba_<label>` column per class."""
    proba = classifier.predict_proba(frame["text"].tolist())
    scored = frame.copy()
    scored["prediction"] = [classifier.labels[i] for i in proba.argmax(axis=1)]
    scored["confidence"] = proba.max(axis=1)
    for index, label in enumerate(classifier.labels):
        scored[f"proba_{label}"] = proba[:, index]
    return scored


def compute_metrics(scored: pd.DataFrame, labels: list[str]) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    truth, predicted = scored["label"].astype(str), scored["prediction"].astype(str)
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0
    )
    return {
        "rows": len(scored),
        "accuracy": round(float(accuracy_score(truth, predicted)), 4),
        "macro_f1": round(float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)), 4),
        "per_class": {
            label: {"precision": round(float(p), 4), "recall": round(float(r), 4), "f1": round(float(f), 4),
                    "support": int(s)}
            for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        },
        "labels": labels,
        "confusion_matrix": confusion_matrix(truth, predicted, labels=labels).tolist(),
    }


def plot_confusion(matrix: list[list[int]], labels: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.array(matrix)
    size = max(4.0, 0.9 * len(labels) + 2)
    figure, axis = plt.subplots(figsize=(size, size * 0.85))
    axis.imshow(values, cmap="Blues")
    axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    axis.set_xlabel("predicted")
    axis.set_ylabel("actual")
    for (row, column), value in np.ndenumerate(values):
        colour = "white" if value > values.max() / 2 else "black"
        axis.text(column, row, str(value), ha="center", va="center", color=colour)
    axis.set_title("Confusion matrix (test split)")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


def run(settings: Settings, model_dir: Path, split_dir: Path, scored_dir: Path, metrics_path: Path,
        plots_dir: Path) -> dict[str, Any]:
    set_cpu_threads()
    classifier = Classifier.load(model_dir)
    for name in ("validation", "test"):
        scored = score(classifier, read_table(split_dir / f"{name}.parquet"))
        write_table(scored, scored_dir / f"{name}.parquet")
    metrics = compute_metrics(scored, classifier.labels)
    write_json(metrics, metrics_path)
    confusion = pd.DataFrame({"actual": scored["label"].astype(str), "predicted": scored["prediction"]})
    with atomic_path(plots_dir / "confusion.csv") as tmp:
        confusion.to_csv(tmp, index=False)
    plot_confusion(metrics["confusion_matrix"], classifier.labels, plots_dir / "confusion_matrix.png")
    print(f"evaluate: test accuracy {metrics['accuracy']}, macro-F1 {metrics['macro_f1']} on {metrics['rows']} rows "
          f"-> {metrics_path}")
    return metrics
