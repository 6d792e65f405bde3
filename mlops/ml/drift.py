"""Drift statistics that Evidently's current API does not offer: the embedding drift of served texts.

Embedding drift is a domain classifier: can a linear model tell reference
embeddings from current ones? Its ROC AUC on a held-out half is the score
(0.5: indistinguishable, 1.0: fully separable). The method and its fixed seeds
are those of Evidently's legacy `ModelDriftMethod` (PCA fitted on the
reference, SGD logistic regression, a shuffled 50/50 split), so scores and the
noise floors calibrated on them carry over; written with scikit-learn because
the new Evidently API has no embedding metric.
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

PCA_COMPONENTS = 20


def embedding_drift(reference: np.ndarray, current: np.ndarray, components: int = PCA_COMPONENTS) -> float:
    """ROC AUC of a classifier separating reference (1) from current (0) embeddings, on a held-out half."""
    components = min(components, reference.shape[1], len(reference), len(current))
    pca = PCA(n_components=components, random_state=0)
    features = np.vstack([pca.fit_transform(reference), pca.transform(current)])
    target = np.concatenate([np.ones(len(reference), dtype=int), np.zeros(len(current), dtype=int)])
    x_train, x_test, y_train, y_test = train_test_split(features, target, test_size=0.5, random_state=42,
                                                        shuffle=True)
    classifier = SGDClassifier(loss="log_loss", random_state=42).fit(x_train, y_train)
    return float(roc_auc_score(y_test, classifier.predict_proba(x_test)[:, 1]))
