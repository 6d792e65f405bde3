"""What validation measures during training: accuracy and macro-F1 (early stopping and the best checkpoint
follow macro-F1, which a majority class cannot inflate)."""

from __future__ import annotations

from typing import Any

import numpy as np


def classification_metrics(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-F1 of predicted label ids against the true ones."""
    # sklearn is imported here: its metrics pull in scipy, which only a validation pass needs
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(labels, predictions)),
            "macro_f1": float(f1_score(labels, predictions, average="macro", zero_division=0))}


def compute_metrics(prediction: Any) -> dict[str, float]:
    """The Trainer's `compute_metrics`: its logits reduced to label ids, then `classification_metrics`."""
    return classification_metrics(prediction.label_ids, np.argmax(prediction.predictions, axis=-1))
