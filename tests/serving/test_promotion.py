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


def test_a_served_student_is_checked_against_the_students_own_weights(tiny_classifier_dir, tiny_student_dir,
                                                                      tmp_path, monkeypatch):
    import shutil

    from mlops.ml.model import Classifier
    from mlops.ml.variants import reference_variant

    # given a stored model carrying its distilled student
    stored = tmp_path / "stored"
    shutil.copytree(tiny_classifier_dir, stored)
    shutil.copytree(tiny_student_dir, stored / "student_fp32")
    monkeypatch.setattr(registry, "model_path", lambda tag: stored)
    texts = ["where is my parcel", "refund my card twice", "the app crashes on login"]
    # then a student variant's reference is the student's fp32, and its offline labels are the student's
    assert [reference_variant(v) for v in ("student_onnx_int8", "student_fp32", "onnx_int8")] == [
        "student_fp32", "student_fp32", "fp32"]
    student = Classifier.load(tiny_student_dir, device="cpu")
    expected = [student.labels[i] for i in student.predict_proba(texts).argmax(axis=1)]
    assert promotion.offline_labels("m:1", texts, "student_fp32") == expected
