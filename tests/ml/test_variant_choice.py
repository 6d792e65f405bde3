"""The gate's per-variant verdicts and the variant that serves (mlops/ml/variant_choice.py)."""

from __future__ import annotations

import pytest

from mlops.core.settings import parse_settings
from mlops.ml.variant_choice import forced_variant_checks, judge_variants, variants_card

METRICS = {"accuracy": 0.9, "size_mb": 87.0, "variants": {
    "fp32": {"accuracy": 0.9, "accuracy_drop_points": 0.0, "texts_per_s": 100.0, "size_mb": 87.0},
    "onnx_fp32": {"accuracy": 0.9, "accuracy_drop_points": 0.0, "texts_per_s": 200.0, "size_mb": 87.5},
    "onnx_int8": {"accuracy": 0.88, "accuracy_drop_points": 2.0, "texts_per_s": 400.0, "size_mb": 22.0},
    "torch_int8": {"accuracy": 0.895, "accuracy_drop_points": 0.5, "texts_per_s": 150.0, "size_mb": 30.0},
}}


def settings_with(repo_params, precision="auto", drop=1.0, student_drop=1.5):
    repo_params["serve"]["precision"] = precision
    repo_params["gate"]["max_variant_accuracy_drop_points"] = drop
    repo_params["gate"]["max_student_accuracy_drop_points"] = student_drop
    return parse_settings(repo_params)


def test_auto_serves_the_fastest_accepted_variant_and_refuses_without_failing(repo_params):
    judged = judge_variants(METRICS, settings_with(repo_params))
    assert judged["serve_variant"] == "onnx_fp32"  # onnx_int8 is faster but loses 2 points > 1
    assert {name: v["accepted"] for name, v in judged["variants"].items()} == {
        "fp32": True, "onnx_fp32": True, "onnx_int8": False, "torch_int8": True}
    assert forced_variant_checks(judged) == []
    assert judge_variants(METRICS, settings_with(repo_params, drop=2.0))["serve_variant"] == "onnx_int8"


def test_a_student_has_its_own_drop_limit_and_a_conversion_keeps_the_tighter_one(repo_params):
    # given a student 1.2 points down (fastest) and an int8 conversion of the candidate 1.2 points down
    metrics = {**METRICS, "variants": {
        "fp32": METRICS["variants"]["fp32"],
        "onnx_int8": {"accuracy": 0.888, "accuracy_drop_points": 1.2, "texts_per_s": 400.0, "size_mb": 22.0},
        "student_onnx_int8": {"accuracy": 0.888, "accuracy_drop_points": 1.2, "texts_per_s": 800.0,
                              "size_mb": 12.0}}}
    # when judged with 1.0 point for conversions and 1.5 for a student
    judged = judge_variants(metrics, settings_with(repo_params, drop=1.0, student_drop=1.5))
    # then the student is accepted and serves, the conversion is refused, each naming its param
    assert judged["serve_variant"] == "student_onnx_int8"
    assert judged["variants"]["student_onnx_int8"]["accepted"] and not judged["variants"]["onnx_int8"]["accepted"]
    assert "gate.max_student_accuracy_drop_points" in judged["variants"]["student_onnx_int8"]["reason"]
    assert "gate.max_variant_accuracy_drop_points" in judged["variants"]["onnx_int8"]["reason"]
    # and a student past its own limit is refused
    judged = judge_variants(metrics, settings_with(repo_params, drop=1.0, student_drop=1.0))
    assert judged["serve_variant"] == "fp32" and not judged["variants"]["student_onnx_int8"]["accepted"]
    assert "1.5" not in variants_card(judged) and "max_student_accuracy_drop_points" in variants_card(judged)


def test_forcing_a_refused_or_unbuilt_variant_fails_naming_it(repo_params):
    [refused] = forced_variant_checks(judge_variants(METRICS, settings_with(repo_params, "onnx_int8")))
    assert refused["check"] == "serve_variant onnx_int8" and not refused["passed"]
    assert "forces onnx_int8, which the gate refused" in refused["rule"] and refused["observed"] == 2.0
    without_torch = {**METRICS, "variants": {k: v for k, v in METRICS["variants"].items() if k != "torch_int8"}}
    [missing] = forced_variant_checks(judge_variants(without_torch, settings_with(repo_params, "torch_int8")))
    assert "torch_int8, which optimize.variants did not build" in missing["rule"]
    forced = judge_variants(METRICS, settings_with(repo_params, "fp32"))
    assert forced["serve_variant"] == "fp32" and forced_variant_checks(forced) == []


def test_metrics_without_variants_serve_fp32(repo_params):
    judged = judge_variants({"accuracy": 0.9, "size_mb": 80.0}, settings_with(repo_params))
    assert judged["serve_variant"] == "fp32" and list(judged["variants"]) == ["fp32"]


def test_card_lists_every_variant_with_its_verdict(repo_params):
    card = variants_card(judge_variants(METRICS, settings_with(repo_params)))
    assert "Serves **onnx_fp32**" in card
    assert "| onnx_int8 | 22.0 | 400.0 |  | 0.88 | 2.0 |  | REFUSED |" in card
    assert card.count("| accepted |") == 3


@pytest.mark.parametrize("value", ["int8", "fp16"])
def test_serve_precision_names_the_allowed_variants(repo_params, value):
    from mlops.core.errors import MlopsError

    with pytest.raises(MlopsError, match="serve.precision: Input should be 'auto', 'fp32', 'torch_int8'"):
        settings_with(repo_params, value)


STUDENT_METRICS = {**METRICS, "variants": {
    **METRICS["variants"],
    "student_fp32": {"accuracy": 0.89, "accuracy_drop_points": 1.0, "texts_per_s": 190.0, "size_mb": 50.0},
    "student_onnx_int8": {"accuracy": 0.87, "accuracy_drop_points": 3.0, "texts_per_s": 800.0, "size_mb": 12.0},
}}


def test_a_student_past_the_drop_threshold_is_refused_and_not_served_however_fast(repo_params):
    # given a student variant 3 points below fp32, the fastest of all, with a 1.5-point student threshold
    judged = judge_variants(STUDENT_METRICS, settings_with(repo_params))
    # then the gate refuses it and serves the fastest accepted variant instead
    assert judged["variants"]["student_onnx_int8"]["accepted"] is False
    assert judged["variants"]["student_fp32"]["accepted"] is True  # at the threshold: accepted, but slower
    assert judged["serve_variant"] == "onnx_fp32"
    # and forcing it fails the gate naming it
    [refused] = forced_variant_checks(judge_variants(STUDENT_METRICS, settings_with(repo_params, "student_onnx_int8")))
    assert refused["check"] == "serve_variant student_onnx_int8" and not refused["passed"]
    # and the card shows every variant, the student's included, with size, texts/s, accuracy and drop
    card = variants_card(judged)
    assert "| student_onnx_int8 | 12.0 | 800.0 |  | 0.87 | 3.0 |  | REFUSED |" in card
    assert "| student_fp32 | 50.0 | 190.0 |  | 0.89 | 1.0 |  | accepted |" in card


def test_a_student_within_the_threshold_and_fastest_is_served(repo_params):
    judged = judge_variants(STUDENT_METRICS, settings_with(repo_params, student_drop=3.0))
    assert judged["serve_variant"] == "student_onnx_int8"
