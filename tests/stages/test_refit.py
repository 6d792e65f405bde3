"""The refit stage's decisions: when a refit is due, which model its checks let package store, and its record."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops.core.errors import MlopsError
from mlops.core.records import GateDecision
from mlops.core.settings import parse_settings
from mlops.stages import refit
from mlops.stages.package import packaged_model

ACCEPTED = GateDecision(accepted=True, basis="absolute thresholds and a paired bootstrap against the champion",
                        reasons=["all checks passed"], serve_variant="onnx_int8", candidate_digest="judged")


@pytest.fixture
def settings(repo_params):
    repo_params["refit_feedback"] = {"enabled": True, "max_test_drop_points": 0.5, "min_agreement": 0.9}
    return parse_settings(repo_params)


def test_a_refit_is_due_only_for_an_accepted_candidate_continued_on_held_out_feedback(settings, repo_params):
    # given an accepted candidate that continued from the champion, with recent rows held out from it
    assert refit.skip_reason(settings, ACCEPTED, "text-classifier:abc", 60) is None
    # then a rejection, a first training, no held-out rows, the switch off or a student serving refit nothing
    rejected = ACCEPTED.model_copy(update={"accepted": False})
    assert "rejected" in refit.skip_reason(settings, rejected, "text-classifier:abc", 60)
    assert "base model" in refit.skip_reason(settings, ACCEPTED, "base", 60)
    assert "saw every label" in refit.skip_reason(settings, ACCEPTED, "text-classifier:abc", 0)
    student = ACCEPTED.model_copy(update={"serve_variant": "student_onnx_int8"})
    assert "distilled student" in refit.skip_reason(settings, student, "text-classifier:abc", 60)
    repo_params["refit_feedback"]["enabled"] = False
    assert "enabled is false" in refit.skip_reason(parse_settings(repo_params), ACCEPTED, "text-classifier:abc", 60)


def test_the_refit_is_packaged_when_both_checks_pass(settings):
    # given 100 test rows (judged right on 90, the refit on 90) and 20 recent rows, 5 answers of 120 differing
    truth = np.zeros(120, dtype=int)
    judged = truth.copy()
    judged[:10] = 1
    refitted = judged.copy()
    refitted[10:12], refitted[:2] = 1, 0  # two test rows lost, two won: same accuracy
    refitted[100] = 1  # and one recent row
    checks, figures = refit.sanity_checks(settings, truth, judged, refitted, test_rows=100)
    assert [c["passed"] for c in checks] == [True, True]
    assert figures["judged_test_accuracy"] == figures["refit_test_accuracy"] == 0.9
    assert figures["agreement"] == round(115 / 120, 4) and figures["recent_rows"] == 20
    assert figures["refit_recent_accuracy_seen"] == 0.95  # reported as a fit, not used as evidence
    packaged, why = refit.packaged_choice(checks)
    assert packaged == "refit" and "every feedback row" in why


def test_a_refit_that_loses_test_accuracy_or_disagrees_leaves_the_judged_candidate(settings):
    truth = np.zeros(200, dtype=int)
    judged = truth.copy()
    # given a refit one point worse on the 200 test rows: over max_test_drop_points (0.5)
    worse = judged.copy()
    worse[:2] = 1
    checks, figures = refit.sanity_checks(settings, truth, judged, worse, test_rows=200)
    assert figures["test_drop_points"] == 1.0 and [c["passed"] for c in checks] == [False, True]
    packaged, why = refit.packaged_choice(checks)
    assert packaged == "candidate" and "refit_test_accuracy_drop_points (observed 1.0 vs 0.5)" in why
    # given a refit as accurate but disagreeing on 30 of 200 rows (85% < 90%)
    judged_errors = judged.copy()
    judged_errors[:15] = 1
    other = truth.copy()
    other[15:30] = 1
    checks, figures = refit.sanity_checks(settings, truth, judged_errors, other, test_rows=200)
    assert figures["test_drop_points"] == 0.0 and figures["agreement"] == 0.85
    packaged, why = refit.packaged_choice(checks)
    assert packaged == "candidate" and "refit_agreement_with_judged" in why and "drop" not in why


def test_refit_rows_add_the_recent_rows_as_weighted_feedback():
    train = pd.DataFrame({"text": ["a", "b", "c"], "label": ["x", "y", "x"], "origin": ["main", "main", "feedback"]})
    recent = pd.DataFrame({"text": ["d"], "label": ["y"], "batch": ["batch-1"]})
    rows = refit.refit_rows(train, recent, oversample=2)
    assert rows["text"].tolist() == ["a", "b", "c", "d", "d"]
    assert rows["origin"].tolist() == ["main", "main", "feedback", "feedback", "feedback"]


def write_inputs(root, decision, started_from):
    (root / "split").mkdir(parents=True)
    pd.DataFrame({"text": ["t"], "label": ["x"], "batch": ["b"]}).to_parquet(root / "split" / "recent.parquet")
    decision.write(root / "decision.json")
    (root / "train.json").write_text(json.dumps({"started_from": started_from}))
    (root / "card.md").write_text("# Model card\n")


@pytest.mark.parametrize(("accepted", "started_from", "packaged", "why"), [
    (False, "text-classifier:abc", None, "rejected"),
    (True, "base", "candidate", "base model"),
])
def test_without_a_refit_the_stage_trains_nothing_and_records_why(settings, tmp_path, accepted, started_from,
                                                                  packaged, why):
    # given a rejected candidate, or a first training (no champion to have continued from)
    write_inputs(tmp_path, ACCEPTED.model_copy(update={"accepted": accepted}), started_from)
    out = tmp_path / "refit"
    (out / "model").mkdir(parents=True)  # left by an earlier run
    # when the stage runs
    record = refit.run(settings, refit.RefitIO.build(
        decision=tmp_path / "decision.json", train_metrics=tmp_path / "train.json", model=tmp_path / "candidate",
        split_dir=tmp_path / "split", optimized_dir=tmp_path / "optimized", out_dir=out,
        record=tmp_path / "refit.json", card=tmp_path / "card.md", card_out=tmp_path / "card-out.md"))
    # then nothing is trained, the record says which model package stores and why, in both places
    assert not record["refit"] and record["packaged"] == packaged and why in record["why"]
    assert record["checks"] == [] and "model_dir" not in record
    assert [p.name for p in out.iterdir()] == [refit.RECORD_FILE]
    assert json.loads((tmp_path / "refit.json").read_text()) == json.loads((out / refit.RECORD_FILE).read_text())
    card = (tmp_path / "card-out.md").read_text()
    assert card.startswith("# Model card\n") and "## Refit on every label" in card and why in card
    # and package stores the judged candidate (or, rejected, nothing: the decision says so first)
    assert packaged_model(ACCEPTED, tmp_path / "candidate", tmp_path / "optimized", record) == (
        tmp_path / "candidate", tmp_path / "optimized", "judged", {})


def test_package_stores_the_refit_its_record_names(tmp_path):
    record = {"refit": True, "packaged": "refit", "model_dir": "models/refit/model",
              "optimized_dir": "models/refit/optimized", "digest": "refitted"}
    chosen = packaged_model(ACCEPTED, tmp_path / "candidate", tmp_path / "optimized", record)
    assert chosen == (Path("models/refit/model"), Path("models/refit/optimized"), "refitted",
                      {"refit_of": "judged"})
    # a refit whose checks failed leaves the judged candidate
    assert packaged_model(ACCEPTED, tmp_path / "c", None, {**record, "packaged": "candidate"})[2] == "judged"
    with pytest.raises(MlopsError, match="names no digest"):
        packaged_model(ACCEPTED, tmp_path / "c", None, {**record, "digest": None})


def test_the_card_says_what_was_packaged_and_what_the_gate_judged():
    record = {"refit": True, "packaged": "refit", "why": "every feedback row, the recent set included, went in",
              "training": {"started_from": "text-classifier:abc", "feedback_rows": 120, "recent_rows": 60,
                           "replay_rows": 500, "epochs": 3, "lr": 3e-5},
              "figures": {"judged_test_accuracy": 0.9, "refit_test_accuracy": 0.905, "test_drop_points": -0.5,
                          "agreement": 0.97, "test_rows": 90, "recent_rows": 60},
              "checks": [{"check": "refit_agreement_with_judged", "observed": 0.97, "threshold": 0.9,
                          "passed": True}]}
    card = refit.card_section(record)
    assert "120 feedback rows (60 of them the recent set" in card and "Packaged: **refit**" in card
    assert "judged the candidate, not the refit" in card
    assert "| refit_agreement_with_judged | 0.97 | 0.9 | pass |" in card
