"""Scoring a labelled frame: every prediction with its confidence, per-class probabilities and embedding.

Evaluate writes scored splits with it; the gate scores the champion on the same rows with it, so both sides of a
paired comparison are scored the same way.
"""

from __future__ import annotations

import pandas as pd

from mlops.ml.model import Classifier
from mlops.ml.progress import predict_with_progress


def score(classifier: Classifier, frame: pd.DataFrame) -> pd.DataFrame:
    """Add `prediction`, `confidence`, one `proba_<label>` column per class and the `embedding`."""
    proba, embeddings = predict_with_progress(classifier, frame["text"].tolist(), "score")
    scored = frame.copy()
    scored["prediction"] = [classifier.labels[i] for i in proba.argmax(axis=1)]
    scored["confidence"] = proba.max(axis=1)
    for index, label in enumerate(classifier.labels):
        scored[f"proba_{label}"] = proba[:, index]
    scored["embedding"] = list(embeddings)
    return scored
