"""Embedding drift: a domain classifier's ROC AUC, the same score as Evidently's legacy method."""

from __future__ import annotations

import numpy as np

from mlops.ml.drift import embedding_drift


def embeddings(seed: int, rows: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, 32)) + shift


def test_same_distribution_scores_near_chance():
    assert 0.35 < embedding_drift(embeddings(0, 400), embeddings(1, 400)) < 0.65


def test_shifted_embeddings_are_separable():
    assert embedding_drift(embeddings(0, 400), embeddings(1, 400, shift=1.0)) > 0.95


def test_matches_evidently_legacy_model_drift_method():
    """The method and seeds of evidently.legacy's ModelDriftMethod, so calibrated noise floors carry over."""
    import pandas as pd
    from evidently.legacy.metrics.data_drift.embedding_drift_methods import ModelDriftMethod

    reference, current = embeddings(2, 300), embeddings(3, 200, shift=0.15)
    legacy, _, _ = ModelDriftMethod(pca_components=20)(pd.DataFrame(current), pd.DataFrame(reference))
    assert embedding_drift(reference, current) == float(legacy)
