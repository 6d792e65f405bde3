"""Stage `optimize`: the variants of optimize.variants, each in its own directory, listed in variants.json."""

from __future__ import annotations

import json
import shutil

import pytest

from mlops.core.errors import MlopsError
from mlops.core.settings import parse_settings


def with_variants(repo_params, variants):
    repo_params["optimize"] = {"variants": variants}
    return parse_settings(repo_params)


@pytest.mark.slow  # exports and quantises ONNX variants
def test_builds_every_listed_variant_and_lists_them_with_sizes(repo_params, tiny_classifier_dir, tmp_path, capsys):
    from mlops.ml.variants import read_variants
    from mlops.stages.optimize import OptimizeIO, run

    out = tmp_path / "optimized"
    (out / "stale").mkdir(parents=True)  # left by an earlier run with other params: removed
    run(with_variants(repo_params, ["onnx_int8", "torch_int8", "onnx_fp32"]),
        OptimizeIO.build(model=tiny_classifier_dir, out_dir=out))
    listed = json.loads((out / "variants.json").read_text())
    assert [v["name"] for v in listed["variants"]] == ["onnx_int8", "torch_int8", "onnx_fp32"]
    assert read_variants(out) == listed["variants"]
    assert sorted(p.name for p in out.iterdir()) == ["onnx_fp32", "onnx_int8", "variants.json"]
    sizes = {v["name"]: v["size_mb"] for v in listed["variants"]}
    assert all(size > 0 for size in sizes.values()) and listed["fp32_size_mb"] > 0
    assert "onnx_int8" in capsys.readouterr().out


def test_int8_alone_quantises_a_throw_away_export(repo_params, tiny_classifier_dir, tmp_path):
    from mlops.ml.variants import load_variant
    from mlops.stages.optimize import OptimizeIO, run

    run(with_variants(repo_params, ["onnx_int8"]), OptimizeIO.build(model=tiny_classifier_dir, out_dir=tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["onnx_int8", "variants.json"]
    assert load_variant(tiny_classifier_dir, "onnx_int8", tmp_path).predict_proba(["hello"]).shape == (1, 3)


def test_no_variants_writes_an_empty_list(repo_params, tiny_classifier_dir, tmp_path):
    from mlops.ml.variants import read_variants
    from mlops.stages.optimize import OptimizeIO, run

    run(with_variants(repo_params, []), OptimizeIO.build(model=tiny_classifier_dir, out_dir=tmp_path / "out"))
    assert read_variants(tmp_path / "out") == [] and read_variants(tmp_path / "missing") == []


@pytest.mark.parametrize(("variants", "message"), [
    (["onnx_fp16"], "optimize.variants.0: Input should be 'torch_int8', 'onnx_fp32' or 'onnx_int8'"),
    (["onnx_int8", "onnx_int8"], "optimize.variants: Value error, listed more than once: onnx_int8"),
    ("onnx_int8", "optimize.variants: Input should be a valid tuple"),
])
def test_bad_params_fail_naming_the_key(repo_params, variants, message):
    repo_params["optimize"] = {"variants": variants}
    with pytest.raises(MlopsError, match=message.replace(".", r"\.").replace("(", r"\(")):
        parse_settings(repo_params)
    repo_params["optimize"] = {"variants": [], "speed": "max"}
    with pytest.raises(MlopsError, match=r"optimize\.speed: unknown key"):
        parse_settings(repo_params)


def test_export_failure_is_one_line_naming_the_variant(repo_params, tiny_classifier_dir, tmp_path, monkeypatch):
    from mlops.ml import variant_build
    from mlops.stages import optimize

    def broken(*args, **kwargs):
        raise RuntimeError("Exporting the operator 'aten::weird' to ONNX opset version 17 is not supported.\nmore")

    monkeypatch.setattr(variant_build, "export_onnx", broken)
    with pytest.raises(MlopsError) as caught:
        optimize.run(with_variants(repo_params, ["onnx_fp32"]),
                     optimize.OptimizeIO.build(model=tiny_classifier_dir, out_dir=tmp_path))
    assert str(caught.value) == ("optimize: variant onnx_fp32 failed: RuntimeError: Exporting the operator "
                                 "'aten::weird' to ONNX opset version 17 is not supported.")
    with pytest.raises(MlopsError, match="optimize: no safetensors model in"):
        optimize.run(with_variants(repo_params, ["onnx_fp32"]),
                     optimize.OptimizeIO.build(model=tmp_path, out_dir=tmp_path / "out"))


@pytest.mark.slow  # exports and quantises ONNX variants
def test_a_distilled_student_becomes_variants_of_its_own_scored_like_the_others(repo_params, tiny_classifier_dir,
                                                                                tiny_student_dir, tmp_path):
    import pandas as pd

    from mlops.ml.model import Classifier
    from mlops.ml.scoring import score
    from mlops.ml.variants import load_variant, read_variants
    from mlops.stages.evaluate import variant_metrics
    from mlops.stages.optimize import OptimizeIO, run

    # given a candidate and its student (with the distill stage's marker beside the weights)
    student = tmp_path / "student"
    shutil.copytree(tiny_student_dir, student)
    (student / "distill.json").write_text("{}")
    # when optimize converts both
    out = tmp_path / "optimized"
    run(with_variants(repo_params, ["onnx_int8"]), OptimizeIO.build(model=tiny_classifier_dir, out_dir=out,
                                                                   student=student))
    # then the student is listed as its weights and its own onnx_int8, each in a directory of its own
    assert [v["name"] for v in read_variants(out)] == ["onnx_int8", "student_fp32", "student_onnx_int8"]
    assert sorted(p.name for p in out.iterdir()) == ["onnx_int8", "student_fp32", "student_onnx_int8",
                                                     "variants.json"]
    assert not (out / "student_fp32" / "distill.json").exists()
    assert json.loads((out / "student_fp32" / "config.json").read_text())["num_hidden_layers"] == 1
    # and evaluate scores every one of them against the candidate's fp32, size and speed included
    fp32 = Classifier.load(tiny_classifier_dir, device="cpu")
    test = score(fp32, pd.DataFrame({"text": ["where is my parcel", "refund my card", "the app crashes"] * 4,
                                     "label": ["delivery", "billing", "technical"] * 4}))
    measured, _ = variant_metrics(fp32, tiny_classifier_dir, out, test, {"accuracy": 0.5, "macro_f1": 0.5,
                                                                         "size_mb": 1.0})
    assert list(measured) == ["fp32", "onnx_int8", "student_fp32", "student_onnx_int8"]
    assert all({"accuracy", "accuracy_drop_points", "texts_per_s", "size_mb"} <= set(v) for v in measured.values())
    assert load_variant(tiny_classifier_dir, "student_torch_int8", out).precision == "int8"


def test_a_distill_output_without_a_model_adds_no_variant(repo_params, tiny_classifier_dir, tmp_path):
    from mlops.ml.variants import read_variants
    from mlops.stages.optimize import OptimizeIO, run

    (tmp_path / "student").mkdir()
    (tmp_path / "student" / "distill.json").write_text('{"enabled": false}')  # distill.enabled off
    run(with_variants(repo_params, []), OptimizeIO.build(model=tiny_classifier_dir, out_dir=tmp_path / "out",
                                                        student=tmp_path / "student"))
    assert read_variants(tmp_path / "out") == []
