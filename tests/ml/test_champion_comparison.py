"""The candidate against the champion on synthetic answers: the promote_if rules, the two margins, the rows a
difference needs, what a rejection says to do next and how each failed check reads."""

import numpy as np
import pytest

from mlops.ml import champion_comparison as gate
from mlops.ml import gate_report
from mlops.ml.paired_bootstrap import paired_bootstrap, rows_needed

LABELS = ["a", "b", "c"]


def synthetic(fixed: int, broken: int, rows: int = 400, seed: int = 0):
    """Truth and the champion's and challenger's label ids: the challenger fixes `fixed` of the champion's errors
    and breaks `broken` of its right answers."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, rows)
    champion = np.where(rng.random(rows) < 0.85, truth, (truth + 1) % 3)
    challenger = champion.copy()
    right, wrong = np.flatnonzero(champion == truth), np.flatnonzero(champion != truth)
    fixes, breaks = rng.choice(wrong, fixed, replace=False), rng.choice(right, broken, replace=False)
    challenger[fixes], challenger[breaks] = truth[fixes], (truth[breaks] + 2) % 3
    return truth, champion, challenger


def scored_frames(monkeypatch, fixed: int, broken: int, rows: int = 400):
    """A scored frame (the challenger's predictions) whose champion answers are `synthetic`'s, as `score` gives."""
    import pandas as pd

    truth, champion, challenger = synthetic(fixed, broken, rows)
    texts = [f"text {i}" for i in range(rows)]
    frame = pd.DataFrame({"text": texts, "label": [LABELS[i] for i in truth],
                          "prediction": [LABELS[i] for i in challenger]})
    answers = dict(zip(texts, (LABELS[i] for i in champion), strict=True))
    monkeypatch.setattr(gate.Classifier, "load", staticmethod(lambda *args, **kwargs: None))
    monkeypatch.setattr(gate, "score", lambda _, scored: scored.assign(prediction=scored["text"].map(answers)))
    return frame


def judged(settings, frame, recent=None, **gate_values):
    """The gate's comparison checks with `frame` as the test split and `recent` as the recent set."""
    settings = settings.model_copy(update={
        "gate": settings.gate.model_copy(update=gate_values),
        "feedback": settings.feedback.model_copy(update={"min_recent_rows": 100, "recent_share": 0.5})})
    checks, comparison = gate.compare_with_champion(None, "text-classifier:champ", frame, LABELS, settings, recent)
    return {c["check"]: c["passed"] for c in checks}, comparison, settings


@pytest.fixture
def settings(repo_params):
    from mlops.core.settings import parse_settings

    return parse_settings(repo_params)


def test_a_clear_gain_passes_every_rule(settings, monkeypatch):
    frame = scored_frames(monkeypatch, fixed=40, broken=2)
    for rule, check_name in (("better", "better_than_champion_on_recent"), ("non_inferior", "gain_on_recent"),
                             ("expected_gain", "gain_probability_on_recent")):
        passed, comparison, _ = judged(settings, frame, recent=frame, promote_if=rule)
        assert passed[check_name] and all(passed.values()), (rule, passed)
    assert comparison["recent"]["ci_low"] > 0 and comparison["judged_on"] == "recent"


def test_a_gain_inside_the_noise_is_not_better_but_is_non_inferior_and_a_probable_gain(settings, monkeypatch):
    frame = scored_frames(monkeypatch, fixed=14, broken=8)  # +0.016 macro-F1, lower bound -0.008 on 400 rows
    passed, comparison, _ = judged(settings, frame, recent=frame, promote_if="better")
    recent = comparison["recent"]
    assert recent["difference"] > 0 > recent["ci_low"] > -0.01
    assert passed == {"no_regression_vs_champion": True, "better_than_champion_on_recent": False}
    passed, _, _ = judged(settings, frame, recent=frame, promote_if="non_inferior")
    assert passed == {"no_regression_vs_champion": True, "non_inferior_on_recent": True, "gain_on_recent": True}
    assert 0.8 < recent["p_gain"] < 0.99
    passed, _, _ = judged(settings, frame, recent=frame, promote_if="expected_gain", min_gain_probability=0.8)
    assert passed["gain_probability_on_recent"] and all(passed.values())
    passed, _, _ = judged(settings, frame, recent=frame, promote_if="expected_gain", min_gain_probability=0.99)
    assert not passed["gain_probability_on_recent"] and passed["non_inferior_on_recent"]


def test_non_inferior_needs_a_better_point_estimate(settings, monkeypatch):
    frame = scored_frames(monkeypatch, fixed=8, broken=10)  # within the margin, but worse as measured
    passed, comparison, _ = judged(settings, frame, recent=frame, promote_if="non_inferior", max_regression=0.05)
    assert comparison["recent"]["difference"] < 0 and comparison["recent"]["ci_low"] > -0.05
    assert passed == {"no_regression_vs_champion": True, "non_inferior_on_recent": True, "gain_on_recent": False}
    assert comparison["recent"]["evidence"]["by_rule"]["rows_needed"] is None  # no rows show a gain not observed
    # without a recent set, the rule is judged on the test split: the point estimate there
    passed, comparison, _ = judged(settings, frame, promote_if="non_inferior", max_regression=0.05)
    assert passed == {"no_regression_vs_champion": True, "gain_vs_champion": False}
    assert comparison["judged_on"] == "test"


def test_the_recent_set_has_a_margin_of_its_own_and_the_test_split_keeps_the_strict_one(settings, monkeypatch):
    # given a real gain on 200 recent rows whose interval reaches below -max_regression (0.01) but not below
    # -max_regression_on_recent (0.05), as a few hundred labels give
    frame = scored_frames(monkeypatch, fixed=10, broken=6, rows=200)
    # when the gate judges it with the project's default margins
    assert (settings.gate.max_regression, settings.gate.max_regression_on_recent) == (0.01, 0.05)
    passed, comparison, _ = judged(settings, frame, recent=frame, promote_if="non_inferior")
    recent = comparison["recent"]
    # then the recent set's non-inferiority holds with its own margin, and says which one it used
    assert recent["difference"] > 0 and -0.05 < recent["ci_low"] < -0.01
    assert passed["non_inferior_on_recent"] and passed["gain_on_recent"]
    assert recent["margin"] == 0.05 and recent["verdict"] == "non_inferior"
    # while the same rows as the test split fail the strict margin: forgetting is judged there
    assert comparison["margin"] == 0.01 and comparison["verdict"] == "worse"
    assert not passed["no_regression_vs_champion"]
    # and a stricter recent margin refuses it, naming the setting
    failed, comparison = failed_checks(settings, frame, recent=frame, promote_if="non_inferior",
                                       max_regression_on_recent=0.01, max_regression=1.0)
    assert set(failed) == {"non_inferior_on_recent"}
    assert "max_regression_on_recent" in failed["non_inferior_on_recent"]["rule"]


def test_rows_needed_follows_the_square_root_law():
    # the lower half-width 0.03 must shrink to the gain 0.02: (0.03 / 0.02)**2 = 2.25 times the rows
    assert rows_needed(200, 0.02, -0.01) == 450
    assert rows_needed(200, 0.02, -0.01, bound=-0.01) == 200  # non-inferiority holds already at 200 rows
    assert rows_needed(200, -0.004, -0.03) is None and rows_needed(200, 0.0, -0.02) is None


def test_the_rows_needed_is_where_the_bootstrap_lower_bound_clears_zero(settings):
    truth, champion, challenger = synthetic(14, 8)
    stats = paired_bootstrap(truth, champion, challenger, 3, 2000, 0.95, seed=1) | {"rows": len(truth)}
    needed = rows_needed(len(truth), stats["difference"], stats["ci_low"])
    assert 2 * len(truth) < needed < 3 * len(truth)  # about 916 rows
    for copies in (2, 3, 4):  # the same rows, more of them: the same difference, a narrower interval
        index = np.tile(np.arange(len(truth)), copies)
        more = paired_bootstrap(truth[index], champion[index], challenger[index], 3, 2000, 0.95, seed=2)
        predicted = stats["difference"] - (stats["difference"] - stats["ci_low"]) / np.sqrt(copies)
        assert more["ci_low"] == pytest.approx(predicted, abs=0.002)
        assert (more["ci_low"] > 0) == (copies * len(truth) > needed)


def test_a_rejection_for_want_of_evidence_says_how_many_more_texts_to_label(settings, monkeypatch, tmp_path):
    import math

    import pandas as pd

    monkeypatch.chdir(tmp_path)  # feedback.queue_dir resolves here
    frame = scored_frames(monkeypatch, fixed=14, broken=8)
    checks, comparison, judged_settings = judged(settings, frame, recent=frame, promote_if="better")
    evidence = comparison["recent"]["evidence"]
    significant = evidence["significant"]
    assert significant == evidence["by_rule"] and significant["rows_needed"] > 400
    assert significant["more_rows"] == significant["rows_needed"] - 400
    assert significant["more_labels"] == math.ceil(significant["more_rows"] / 0.5)  # half of each batch is recent
    queue = tmp_path / "reports/labelling/queue.csv"
    queue.parent.mkdir(parents=True)
    pd.DataFrame({"id": ["1", "2", "3"], "text": ["x", "y", "z"]}).to_csv(queue, index=False)
    failed = [{"check": name} for name, ok in checks.items() if not ok]
    step = gate.next_step(failed, comparison, judged_settings)
    assert step.startswith(f"label about {significant['more_labels']} more texts (the queue has 3: "
                           "reports/labelling/queue.csv) and run again")
    full = judged_settings.model_copy(update={"feedback": judged_settings.feedback.model_copy(
        update={"queue_size": 3})})  # the queue is as long as it may be: a longer one would hold more
    assert "queue.csv; a larger feedback.queue_size (now 3) queues more)" in gate.next_step(failed, comparison, full)
    assert "set gate.promote_if: non_inferior in params.yaml and make run" in step
    assert "not good enough (min_accuracy)" in gate.next_step([{"check": "min_accuracy"}], comparison,
                                                              judged_settings)
    assert gate.next_step([], comparison, judged_settings) is None


def failed_checks(settings, frame, recent=None, **gate_values):
    """The failed comparison checks, by name, and the comparison, as the gate's decision holds them."""
    _, _, settings = judged(settings, frame, recent=None, **gate_values)  # the same settings judged() uses
    checks, comparison = gate.compare_with_champion(None, "text-classifier:champ", frame, LABELS, settings, recent)
    return {c["check"]: c for c in checks if not c["passed"]}, comparison


def test_a_failed_comparison_says_what_was_compared_on_which_set(settings, monkeypatch):
    # given a gain inside the noise on a recent set of 400 rows, judged with promote_if: better
    frame = scored_frames(monkeypatch, fixed=14, broken=8)
    failed, comparison = failed_checks(settings, frame, recent=frame, promote_if="better")
    recent = comparison["recent"]
    # when the gate writes the reason of the failed check
    text = gate_report.reason(failed["better_than_champion_on_recent"], comparison, {"rows": 400})
    # then it names the metric, candidate against the champion, the set and its rows, the interval, the need
    assert text == (f"better_than_champion_on_recent: macro-F1 difference candidate \u2212 champion "
                    f"text-classifier:champ on the 400 recent rows: +{recent['difference']:g} (95% CI "
                    f"\u2212{-recent['ci_low']:g} to +{recent['ci_high']:g}; macro-F1 {recent['challenger_macro_f1']} "
                    f"vs {recent['champion_macro_f1']}), needs lower bound > 0")


def test_a_failed_check_on_the_test_split_says_so(settings, monkeypatch):
    # given a challenger worse as measured, no recent set: the rule is judged on the test split
    frame = scored_frames(monkeypatch, fixed=8, broken=10)
    failed, comparison = failed_checks(settings, frame, promote_if="non_inferior", max_regression=0.05)
    text = gate_report.reason(failed["gain_vs_champion"], comparison, {"rows": 400})
    assert text.startswith("gain_vs_champion: macro-F1 difference candidate \u2212 champion text-classifier:champ "
                           f"on the 400 test rows: \u2212{-comparison['difference']:g} (95% CI ")
    assert text.endswith("needs the difference > 0")
    # and a probability of a gain names the resamples it was counted over
    failed, comparison = failed_checks(settings, frame, recent=frame, promote_if="expected_gain",
                                       min_gain_probability=0.99)
    text = gate_report.reason(failed["gain_probability_on_recent"], comparison, {"rows": 400})
    assert text.startswith(f"gain_probability_on_recent: share of {settings.gate.bootstrap_samples} paired bootstrap "
                           "resamples of the 400 recent rows in which the candidate's macro-F1 beats champion "
                           "text-classifier:champ's: ")
    assert text.endswith("needs >= 0.99")
