"""The paired bootstrap of a macro-F1 difference: a real improvement shown, noise not; macro-F1 as scikit-learn."""

import numpy as np
import pytest

from mlops.ml import paired_bootstrap as gate


def test_paired_bootstrap_sees_a_real_improvement_and_ignores_noise():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, 2000)
    champion = np.where(rng.random(2000) < 0.8, truth, rng.integers(0, 4, 2000))
    better = np.where(rng.random(2000) < 0.5, truth, champion)  # fixes half of the champion's errors
    noisy = champion.copy()  # as many new errors as fixed ones: the same quality, other mistakes
    right, wrong = np.flatnonzero(champion == truth), np.flatnonzero(champion != truth)
    broken, fixed = rng.choice(right, 15, replace=False), rng.choice(wrong, 15, replace=False)
    noisy[broken], noisy[fixed] = (truth[broken] + 1) % 4, truth[fixed]
    improved = gate.paired_bootstrap(truth, champion, better, 4, 1000, 0.95, seed=1)
    assert improved["ci_low"] > 0 and improved["p_not_better"] < 0.05
    same = gate.paired_bootstrap(truth, champion, noisy, 4, 1000, 0.95, seed=1)
    assert same["ci_low"] < 0 < same["ci_high"]


def test_macro_f1_matches_sklearn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(3)
    truth, predicted = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    expected = f1_score(truth, predicted, labels=range(5), average="macro", zero_division=0)
    assert gate.macro_f1_batch(truth[None], predicted[None], 5)[0] == pytest.approx(expected)
