"""Screening a batch of trusted labels before it becomes data: poisoning shows as contradicted confidence.

A labeller's key or an operator's file is trusted, but a stolen key, a careless
export or a deliberate attack would otherwise train the next model and, through
the recent set, judge it. Two signals hold a batch for a person's review
instead of collecting it (`mlops feedback held`, `approve`, `reject`):

- **Contradicted confidence.** Where the champion was confident, it is
  rarely wrong. "Confident" is measured against the champion itself: at least
  as sure as the `feedback.screen.confident_quantile` quantile of its answers
  on its own reference (the scored validation split that travels with it), a
  threshold that fits a model whose probabilities never reach 0.9 as well as
  one that is sure of everything. On those reference answers its error is
  measured too. A batch whose labels contradict its confident answers far
  more often than that (the Wilson lower bound of the contradiction rate
  above the larger of `min_contradiction` and `error_multiple` times that
  error) is flipping what the model knows. An honest batch from a real
  shift, where the champion is wrong on up to ~10% of texts (or far more,
  mostly where it is unsure), contradicts fewer of its confident answers.
- **One source's share.** In a batch labelled by several sources, one source
  holding more than `max_source_share` of it is one person (or one key)
  deciding most of the next model's new data.

Fewer than `min_confident_rows` confident answers: no contradiction verdict
(too little evidence either way), which the evidence says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mlops.core.settings import ScreenSettings
from mlops.core.stats import wilson_interval

EXAMPLES = 10  # contradicting rows named in the evidence


@dataclass(frozen=True)
class Screening:
    """The verdict on one batch: held or not, why, and the figures a reviewer needs."""

    held: bool
    reasons: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)


def source_shares(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per source: rows, share of the batch and agreement with the model that answered (None without answers)."""
    shares = {}
    sources = frame["source"].fillna("unknown").astype(str) if "source" in frame else pd.Series(
        ["unknown"] * len(frame), index=frame.index)
    for source, rows in frame.groupby(sources):
        predicted = rows["prediction"].notna() if "prediction" in rows else pd.Series(False, index=rows.index)
        agreement = float((rows.loc[predicted, "label"] == rows.loc[predicted, "prediction"]).mean()) \
            if predicted.any() else None
        shares[str(source)] = {"rows": len(rows), "share": round(len(rows) / len(frame), 4),
                               "agreement": None if agreement is None else round(agreement, 4)}
    return shares


@dataclass(frozen=True)
class Yardstick:
    """What the champion's own answers say: the confidence that counts as confident, and its error there."""

    confident_at: float
    error: float | None
    basis: str


def yardstick(reference: pd.DataFrame | None, settings: ScreenSettings, test_error: float | None) -> Yardstick:
    """The champion's yardstick from its scored reference (label, prediction, confidence); without one, the fixed
    `confident` threshold and its test error."""
    if settings.confident is not None or reference is None or reference.empty or "confidence" not in reference:
        return Yardstick(settings.confident if settings.confident is not None else 0.9, test_error,
                         "fixed threshold, test error" if settings.confident is not None else
                         "no reference: threshold 0.9, test error")
    confident_at = float(reference["confidence"].astype(float).quantile(settings.confident_quantile))
    sure = reference[reference["confidence"].astype(float) >= confident_at]
    error = float((sure["label"].astype(str) != sure["prediction"].astype(str)).mean()) if len(sure) else test_error
    return Yardstick(confident_at, error, f"the {settings.confident_quantile:.0%} quantile of the champion's "
                                          f"confidence on its {len(reference)} reference rows, and its error there")


def contradiction_check(frame: pd.DataFrame, settings: ScreenSettings,
                        champion: Yardstick) -> tuple[str | None, dict[str, Any]]:
    """The reason to hold the batch for contradicted confidence (None: no reason), and its evidence."""
    if "prediction" not in frame or "confidence" not in frame:
        return None, {"contradiction": "no model answers for these texts: not checked"}
    answered = frame[frame["prediction"].notna() & frame["confidence"].notna()]
    confident = answered[answered["confidence"].astype(float) >= champion.confident_at]
    contradicting = confident[confident["label"] != confident["prediction"]]
    limit = max(settings.min_contradiction, settings.error_multiple * (champion.error or 0.0))
    low, high = wilson_interval(len(contradicting), len(confident), settings.confidence_level)
    evidence: dict[str, Any] = {
        "answered_rows": len(answered), "confident_rows": len(confident), "contradicting_rows": len(contradicting),
        "contradiction_rate": round(len(contradicting) / len(confident), 4) if len(confident) else None,
        "contradiction_interval": [round(low, 4), round(high, 4)], "limit": round(limit, 4),
        "confident_at": round(champion.confident_at, 4),
        "champion_error": None if champion.error is None else round(champion.error, 4),
        "yardstick": champion.basis,
        "examples": [{"id": row.id, "label": row.label, "prediction": row.prediction,
                      "confidence": round(float(row.confidence), 4)}
                     for row in contradicting.head(EXAMPLES).itertuples()],
    }
    if len(confident) < settings.min_confident_rows:
        evidence["contradiction"] = (f"{len(confident)} confident answers, fewer than "
                                     f"{settings.min_confident_rows}: not enough to judge")
        return None, evidence
    if low <= limit:
        return None, evidence
    return (f"labels contradict {len(contradicting)} of the model's {len(confident)} confident answers "
            f"({len(contradicting) / len(confident):.0%}; {settings.confidence_level:.0%} interval from {low:.0%}), "
            f"more than the {limit:.0%} an honest batch reaches"), evidence


def screen(frame: pd.DataFrame, settings: ScreenSettings, champion: Yardstick) -> Screening:
    """Screen a batch of labels (`label`, and where known `id`, `source`, `prediction`, `confidence`)."""
    reasons = []
    contradiction, evidence = contradiction_check(frame, settings, champion)
    if contradiction:
        reasons.append(contradiction)
    shares = source_shares(frame)
    evidence["sources"] = shares
    if len(shares) > 1:
        top, figures = max(shares.items(), key=lambda item: item[1]["rows"])
        if figures["share"] > settings.max_source_share:
            reasons.append(f"one source ({top}) gave {figures['share']:.0%} of the batch's labels, more than "
                           f"feedback.screen.max_source_share ({settings.max_source_share:.0%})")
    evidence["rows"] = len(frame)
    return Screening(bool(reasons), reasons, evidence)
