"""Promotion's decisions without a server: what is promoted, what is refused, and what the decision says."""

import json

import pytest

from mlops.core import registry
from mlops.core.errors import MlopsError
from mlops.core.settings import parse_settings
from mlops.serving import promotion


@pytest.fixture
def settings(repo_params):
    return parse_settings(repo_params)


@pytest.fixture
def store(monkeypatch, bentoml_home):
    monkeypatch.setattr(registry, "bento_exists", lambda tag: tag in {"b:1", "b:2"})
    registry.promote({"model": "m:1", "bento": "b:1", "digest": "a"})


def validation(passed: bool) -> dict:
    checks = [{"check": "ready", "passed": True, "detail": "/readyz 200 after 3 s"}]
    if not passed:
        checks.append({"check": "one_text", "passed": False, "detail": "status 500: boom"})
    return {"passed": passed, "failed_check": None if passed else "one_text", "checks": checks,
            "served_p95_ms": 12.0 if passed else None}


def test_a_candidate_that_fails_a_check_is_not_promoted_and_the_decision_names_it(settings, store, tmp_path,
                                                                                  monkeypatch):
    monkeypatch.setattr(promotion, "infra_validate", lambda entry, settings, scored: validation(False))
    out = tmp_path / "promotion.json"
    with pytest.raises(MlopsError, match=r"m:2 NOT promoted: infra validation failed at `one_text`: status 500"):
        promotion.promote_entry({"model": "m:2", "bento": "b:2"}, settings, None, out, by="hand")
    assert registry.champion()["model"] == "m:1"
    decision = json.loads(out.read_text())
    assert decision["promoted"] is False and decision["infra_validation"]["failed_check"] == "one_text"


def test_a_candidate_that_passes_is_promoted_with_its_served_latency(settings, store, tmp_path, monkeypatch):
    monkeypatch.setattr(promotion, "infra_validate", lambda entry, settings, scored: validation(True))
    out = tmp_path / "promotion.json"
    result = promotion.promote_entry({"model": "m:2", "bento": "b:2"}, settings, None, out, by="pipeline")
    champion = registry.champion()
    assert result["promoted"] and champion["model"] == "m:2" and champion["promoted_by"] == "pipeline"
    assert champion["served_p95_ms"] == 12.0 and registry.read_registry()["history"][-1]["model"] == "m:1"
    again = promotion.promote_entry({"model": "m:2", "bento": "b:2"}, settings, None, out, by="pipeline")
    assert not again["promoted"] and "already the champion" in again["reason"]


def test_promote_after_a_rejected_gate_promotes_nothing(settings, store, tmp_path, monkeypatch):
    monkeypatch.setattr(promotion, "infra_validate", lambda *_: pytest.fail("nothing to validate"))
    package = tmp_path / "package.json"
    package.write_text(json.dumps({"status": "rejected", "reasons": ["min_accuracy: observed 0.1 vs 0.8"]}))
    result = promotion.promote_candidate(settings, package, None, tmp_path / "promotion.json")
    assert not result["promoted"] and "min_accuracy" in result["reason"]
    assert registry.champion()["model"] == "m:1"
    with pytest.raises(MlopsError, match="no package result"):
        promotion.promote_candidate(settings, tmp_path / "missing.json", None, tmp_path / "promotion.json")


def test_make_run_after_a_rollback_does_not_undo_it(settings, store, tmp_path, monkeypatch):
    monkeypatch.setattr(promotion, "infra_validate", lambda entry, settings, scored: validation(True))
    package = tmp_path / "package.json"
    package.write_text(json.dumps({"status": "candidate", "model": "m:2", "bento": "b:2"}))
    assert promotion.promote_candidate(settings, package, None, tmp_path / "promotion.json")["promoted"]
    registry.rollback()
    again = promotion.promote_candidate(settings, package, None, tmp_path / "promotion.json")
    assert not again["promoted"] and "was rolled back" in again["reason"] and registry.champion()["model"] == "m:1"
    by_hand = promotion.promote_entry({"model": "m:2", "bento": "b:2"}, settings, None, tmp_path / "p.json", "hand")
    assert by_hand["promoted"] and not registry.retired_by_rollback("m:2")


def test_served_labels_must_equal_the_same_variant_offline_but_for_int8_near_ties(monkeypatch):
    # given offline probabilities of the served variant: a clear row, and a near tie (top two 0.02 apart)
    proba = __import__("numpy").array([[0.9, 0.05, 0.05], [0.49, 0.47, 0.04]])
    labels = ["a", "b", "c"]

    def serving(answers):
        monkeypatch.setattr(promotion, "served_labels", lambda base, key, texts, chunk: answers)

    # when the server answers as offline, then it passes
    serving(["a", "a"])
    assert promotion.check_agreement("", "", ["x", "y"], proba, labels, 0.0, 8) == "2 of 2 rows equal"
    # when an int8 server flips the near tie, then it passes within the int8 margin, and says so
    serving(["a", "b"])
    assert "1 near ties" in promotion.check_agreement("", "", ["x", "y"], proba, labels, promotion.INT8_MARGIN, 8)
    # but not for a float variant (margin 0), nor when a clear row differs
    with pytest.raises(promotion.CheckFailed, match="differ from the offline model on 1 of 2 rows"):
        promotion.check_agreement("", "", ["x", "y"], proba, labels, 0.0, 8)
    serving(["b", "a"])
    with pytest.raises(promotion.CheckFailed, match="first: row 0"):
        promotion.check_agreement("", "", ["x", "y"], proba, labels, promotion.INT8_MARGIN, 8)


def test_offline_answers_are_those_of_the_variant_that_serves(tiny_classifier_dir, tiny_student_dir, tmp_path,
                                                               monkeypatch):
    import shutil

    from mlops.ml.model import Classifier

    # given a stored model carrying its distilled student
    stored = tmp_path / "stored"
    shutil.copytree(tiny_classifier_dir, stored)
    shutil.copytree(tiny_student_dir, stored / "student_fp32")
    monkeypatch.setattr(registry, "model_path", lambda tag: stored)
    texts = ["where is my parcel", "refund my card twice", "the app crashes on login"]
    # then the student variant's offline answers are the student's, the candidate's those of fp32
    for variant, directory in (("student_fp32", tiny_student_dir), ("fp32", tiny_classifier_dir)):
        proba, labels = promotion.offline_answers("m:1", texts, variant)
        expected = Classifier.load(directory, device="cpu")
        assert labels == expected.labels and abs(proba - expected.predict_proba(texts)).max() < 1e-5


def shadow_answers(directory, candidate, agreeing, disagreeing):
    """What the service's shadow writes: `candidate`'s answers beside the champion m:1's."""
    from mlops.serving.shadow_log import ShadowLog

    records = [{"shadow_of": f"id-{i}", "prediction": "a" if i < agreeing else "b", "confidence": 0.9,
                "model_version": candidate, "champion_prediction": "a", "champion_version": "m:1"}
               for i in range(agreeing + disagreeing)]
    ShadowLog(directory).write(ShadowLog(directory).lines([""] * len(records), records, 3.0))


def test_promote_requires_the_shadow_evidence_it_is_asked_for(repo_params, store, tmp_path, monkeypatch):
    """Given promote.require_shadow (4 answers, 75% agreement), when `mlops promote` finds no shadow answers of
    the candidate, or too few, or too little agreement, then it is refused as an outcome (rejected, the reason
    and the next step in the decision) and nothing is validated; with the evidence, it is promoted."""
    repo_params["promote"]["require_shadow"] = {"min_answers": 4, "min_agreement": 0.75}
    settings = parse_settings(repo_params)
    traffic = tmp_path / "traffic"
    monkeypatch.setenv("MLOPS_TRAFFIC_DIR", str(traffic))
    monkeypatch.setenv("MLOPS_FEEDBACK_DIR", str(tmp_path / "feedback"))
    monkeypatch.setattr(promotion, "infra_validate", lambda *_: validation(True))
    package, out = tmp_path / "package.json", tmp_path / "promotion.json"
    package.write_text(json.dumps({"status": "candidate", "model": "m:2", "bento": "b:2"}))

    refused = promotion.promote_candidate(settings, package, None, out)
    assert refused["rejected"] and not refused["promoted"] and refused["rejected_by"] == "promote.require_shadow"
    assert "the shadow has none for m:2" in refused["reason"] and "mlops promote" in refused["next_step"]
    assert json.loads(out.read_text())["rejected"] and registry.champion()["model"] == "m:1"

    shadow_answers(traffic, "m:2", agreeing=2, disagreeing=1)
    assert "scored 3 answers with m:2" in promotion.promote_candidate(settings, package, None, out)["reason"]
    shadow_answers(traffic, "m:2", agreeing=0, disagreeing=2)  # 2 of 5 agree
    assert "agreed with the champion on 0.4 of 5" in promotion.promote_candidate(settings, package, None,
                                                                                 out)["reason"]
    shadow_answers(traffic, "m:2", agreeing=10, disagreeing=0)  # 12 of 15 agree: 0.8
    assert promotion.promote_candidate(settings, package, None, out)["promoted"]
    assert registry.champion()["model"] == "m:2"
