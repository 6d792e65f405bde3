"""Screening trusted labels: an honest batch from a real shift passes, one that flips confident answers is held."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops.core.settings import ScreenSettings
from mlops.core.stats import wilson_interval
from mlops.loop.screening import Yardstick, screen, yardstick

LABELS = ["world", "sports", "business", "sci_tech"]


def batch(rows: int, confident_share: float, wrong_confident: float, wrong_unsure: float, seed: int = 0,
          sources: list[str] | None = None) -> pd.DataFrame:
    """`rows` labels with the champion's answers: a share of confident answers, each kind wrong at its rate."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(LABELS, rows)
    confident = rng.random(rows) < confident_share
    wrong = np.where(confident, rng.random(rows) < wrong_confident, rng.random(rows) < wrong_unsure)
    other = [(LABELS.index(t) + 1 + rng.integers(3)) % 4 for t in truth]
    prediction = np.where(wrong, [LABELS[i] for i in other], truth)
    return pd.DataFrame({"id": [f"id{i}" for i in range(rows)], "label": truth, "prediction": prediction,
                         "confidence": np.where(confident, rng.uniform(0.9, 1.0, rows), rng.uniform(0.3, 0.9, rows)),
                         "source": (sources or ["labeller"]) * (rows // len(sources or ["labeller"]))})


@pytest.mark.parametrize("seed", range(5))
def test_an_honest_batch_from_a_real_shift_is_not_held(seed):
    """Given 400 labels on which the champion is wrong on ~8% (its confident answers on ~4%, as on a real shift)
    and a champion with 9% test error, when screened, then the batch passes."""
    frame = batch(400, confident_share=0.7, wrong_confident=0.04, wrong_unsure=0.14, seed=seed)
    assert 0.04 < (frame["label"] != frame["prediction"]).mean() < 0.12
    verdict = screen(frame, ScreenSettings(), champion=Yardstick(0.9, 0.09, "test"))
    assert not verdict.held, verdict.reasons


def test_even_a_harsh_honest_shift_passes_with_the_defaults():
    """The champion wrong on 10% of its confident answers (a shift far from its data) stays below the limit."""
    verdict = screen(batch(400, 0.6, 0.10, 0.25, seed=7), ScreenSettings(), champion=Yardstick(0.9, 0.05, "test"))
    assert not verdict.held, verdict.reasons


def test_labels_that_flip_confident_answers_are_held_with_the_evidence():
    """Given 100 labels that each contradict a confident answer of the champion, then the batch is held and the
    evidence counts them."""
    frame = batch(100, confident_share=1.0, wrong_confident=1.0, wrong_unsure=1.0)
    verdict = screen(frame, ScreenSettings(), champion=Yardstick(0.9, 0.05, "test"))
    assert verdict.held and "contradict 100 of the model's 100 confident answers" in verdict.reasons[0]
    assert verdict.evidence["contradicting_rows"] == 100 and len(verdict.evidence["examples"]) == 10


def test_a_poisoned_third_hidden_among_honest_labels_is_held():
    honest = batch(300, 0.7, 0.03, 0.15, seed=1)
    flipped = batch(100, 1.0, 1.0, 1.0, seed=2).assign(id=lambda f: "p" + f["id"])
    verdict = screen(pd.concat([honest, flipped], ignore_index=True), ScreenSettings(),
                     champion=Yardstick(0.9, 0.08, "test"))
    assert verdict.held


def test_too_few_confident_answers_give_no_contradiction_verdict():
    frame = batch(60, confident_share=0.0, wrong_confident=0.0, wrong_unsure=1.0)
    verdict = screen(frame, ScreenSettings(), champion=Yardstick(0.9, 0.05, "test"))
    assert not verdict.held and "not enough to judge" in verdict.evidence["contradiction"]


def test_labels_without_model_answers_are_not_judged_on_contradiction():
    verdict = screen(pd.DataFrame({"id": ["a"], "label": ["world"]}), ScreenSettings(),
                     champion=Yardstick(0.9, None, "test"))
    assert not verdict.held and "not checked" in verdict.evidence["contradiction"]


def test_the_limit_grows_with_the_champions_measured_error():
    """A weak champion (30% test error) is contradicted more by honest labels: the limit follows it."""
    frame = batch(400, 0.7, 0.35, 0.4, seed=3)
    assert screen(frame, ScreenSettings(), champion=Yardstick(0.9, 0.05, "test")).held
    assert not screen(frame, ScreenSettings(), champion=Yardstick(0.9, 0.30, "test")).held


def test_one_source_dominating_a_multi_source_batch_is_held():
    frame = batch(100, 0.0, 0.0, 0.0).assign(source=["mallory"] * 90 + ["alice"] * 10)
    verdict = screen(frame, ScreenSettings(), champion=Yardstick(0.9, 0.05, "test"))
    assert verdict.held and "mallory" in verdict.reasons[0]
    assert verdict.evidence["sources"]["mallory"] == {"rows": 90, "share": 0.9, "agreement": 1.0}
    one_labeller = frame.assign(source="alice")
    assert not screen(one_labeller, ScreenSettings(), champion=Yardstick(0.9, 0.05, "test")).held


def test_wilson_interval_matches_known_values():
    low, high = wilson_interval(81, 263, 0.95)  # Wilson (1927) worked example, as in Newcombe (1998)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert wilson_interval(0, 0) == (0.0, 1.0) and wilson_interval(0, 10)[0] == 0.0
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_confidence_is_measured_against_the_champion_itself():
    """Given a champion whose probabilities never reach 0.9 (a small model over five classes: 0.78 to 0.87 on its
    own validation rows, 3.5% wrong), then "confident" is its own lower quartile, and flipped confident answers
    are held while an honest shifted batch (wrong on 29%, mostly where it is unsure) is not."""
    rng = np.random.default_rng(4)
    reference = pd.DataFrame({"label": "world", "confidence": rng.uniform(0.78, 0.87, 600)})
    reference["prediction"] = np.where(rng.random(600) < 0.035, "sports", "world")
    champion = yardstick(reference, ScreenSettings(), test_error=0.03)
    assert 0.8 < champion.confident_at < 0.81 and champion.error < 0.06 and "reference" in champion.basis
    flips = batch(100, 1.0, 1.0, 1.0).assign(confidence=rng.uniform(0.82, 0.86, 100))
    assert screen(flips, ScreenSettings(), champion).held
    sure, unsure = batch(92, 1.0, 0.066, 0.0, seed=5), batch(308, 0.0, 0.0, 0.36, seed=6)
    shifted = pd.concat([sure.assign(confidence=rng.uniform(0.81, 0.86, 92)),
                         unsure.assign(id="u" + unsure["id"], confidence=rng.uniform(0.3, 0.8, 308))],
                        ignore_index=True)
    assert 0.25 < (shifted["label"] != shifted["prediction"]).mean() < 0.35
    assert not screen(shifted, ScreenSettings(), champion).held
    assert yardstick(None, ScreenSettings(), 0.05) == Yardstick(0.9, 0.05, "no reference: threshold 0.9, test error")
    fixed = yardstick(reference, ScreenSettings(confident=0.7), 0.05)
    assert (fixed.confident_at, fixed.error) == (0.7, 0.05)
