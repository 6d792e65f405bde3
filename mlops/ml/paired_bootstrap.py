"""The paired bootstrap behind every champion comparison, and how many rows a difference needs.

Champion and challenger label the same rows; resampling the rows jointly keeps the pairing, so the interval is that
of the difference itself, narrower than two separate intervals would suggest. The rows-needed estimates turn an
interval into a labelling budget: how many more rows the observed difference needs to clear a bound.
"""

from __future__ import annotations

from math import ceil
from statistics import NormalDist
from typing import Any

import numpy as np

from mlops.ml.progress import progress


def macro_f1_batch(truth: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Macro-F1 of each row of (resamples, n) label-id arrays, vectorised."""
    scores = np.zeros(truth.shape[0])
    for c in range(classes):
        is_true, is_pred = truth == c, predicted == c
        tp = (is_true & is_pred).sum(axis=1)
        denominator = is_true.sum(axis=1) + is_pred.sum(axis=1)
        scores += np.divide(2 * tp, denominator, out=np.zeros(len(tp)), where=denominator > 0)
    return scores / classes



def paired_bootstrap(truth: np.ndarray, champion: np.ndarray, challenger: np.ndarray, classes: int,
                     samples: int, confidence: float, seed: int) -> dict[str, Any]:
    """Confidence interval of macro-F1(challenger) - macro-F1(champion), resampling test rows jointly."""
    rng = np.random.default_rng(seed)
    n = len(truth)
    differences = []
    for start in progress(range(0, samples, 250), "bootstrap", unit="x250"):  # chunks keep memory flat
        index = rng.integers(0, n, size=(min(250, samples - start), n))
        differences.append(macro_f1_batch(truth[index], challenger[index], classes)
                           - macro_f1_batch(truth[index], champion[index], classes))
    diffs = np.concatenate(differences)
    alpha = 1 - confidence
    point = float(macro_f1_batch(truth[None], challenger[None], classes)[0]
                  - macro_f1_batch(truth[None], champion[None], classes)[0])
    return {"difference": round(point, 4), "ci_low": round(float(np.quantile(diffs, alpha / 2)), 4),
            "ci_high": round(float(np.quantile(diffs, 1 - alpha / 2)), 4), "confidence": confidence,
            "samples": samples, "p_not_better": round(float((diffs <= 0).mean()), 4),
            "p_gain": round(float((diffs > 0).mean()), 4)}



def rows_needed(rows: int, difference: float, ci_low: float, bound: float = 0.0) -> int | None:
    """Rows at which the interval's lower bound would clear `bound`, were the difference to stay as observed.

    The lower half-width (difference - lower bound) is z standard errors, and a standard error shrinks as
    1/sqrt(rows): at n rows the lower bound is difference - half_width * sqrt(rows / n), above `bound` once
    n > rows * (half_width / (difference - bound))**2. None when the observed difference itself does not clear
    `bound`: no number of rows shows what was not observed."""
    margin = difference - bound
    if margin <= 0:
        return None
    return max(1, ceil(rows * (max(difference - ci_low, 0.0) / margin) ** 2))



def rows_for_gain_probability(rows: int, difference: float, ci_low: float, confidence: float,
                              probability: float) -> int | None:
    """Rows at which the bootstrap's probability of a gain would reach `probability`, the difference as observed.

    The standard error is the lower half-width over the interval's z; the probability of a gain is about
    Phi(difference / standard error), which grows with sqrt(rows)."""
    if difference <= 0:
        return None
    z_gain = NormalDist().inv_cdf(probability) if probability > 0 else -1.0
    if z_gain <= 0:
        return 1
    error = max(difference - ci_low, 0.0) / NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    return max(1, ceil(rows * (z_gain * error / difference) ** 2))
