"""Stage `optimize`: the variants of optimize.variants, each in its own directory, listed in variants.json."""

from __future__ import annotations

import json

import pytest

from mlops.core.errors import MlopsError
from mlops.core.settings import parse_settings


def with_variants(repo_params, variants):
    repo_params["optimize"] = {"variants": variants}
    return parse_settings(repo_params)


def test_builds_every_listed_variant_and_lists_them_with_sizes(repo_params, tiny_classifier_dir, tmp_path, capsys):
    from mlops.ml.variants import read_variants
    from mlops.stages.optimize import run

    out = tmp_path / "optimized"
    (out / "stale").mkdir(parents=True)  # left by an earlier run with other params: removed
    run(with_variants(repo_params, ["onnx_int8", "torch_int8", "onnx_fp32"]), tiny_classifier_dir, out)
    listed = json.loads((out / "variants.json").read_text())
    assert [v["name"] for v in listed["variants"]] == ["onnx_int8", "torch_int8", "onnx_fp32"]
    assert read_variants(out) == listed["variants"]
    assert sorted(p.name for p in out.iterdir()) == ["onnx_fp32", "onnx_int8", "variants.json"]
    sizes = {v["name"]: v["size_mb"] for v in listed["variants"]}
    assert all(size > 0 for size in sizes.values()) and listed["fp32_size_mb"] > 0
    assert "onnx_int8" in capsys.readouterr().out


def test_int8_alone_quantises_a_throw_away_export(repo_params, tiny_classifier_dir, tmp_path):
    from mlops.ml.variants import load_variant
    from mlops.stages.optimize import run

    run(with_variants(repo_params, ["onnx_int8"]), tiny_classifier_dir, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["onnx_int8", "variants.json"]
    assert load_variant(tiny_classifier_dir, "onnx_int8", tmp_path).predict_proba(["hello"]).shape == (1, 3)


def test_no_variants_writes_an_empty_list(repo_params, tiny_classifier_dir, tmp_path):
    from mlops.ml.variants import read_variants
    from mlops.stages.optimize import run

    run(with_variants(repo_params, []), tiny_classifier_dir, tmp_path / "out")
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
    from mlops.stages import optimize

    def broken(*args, **kwargs):
        raise RuntimeError("Exporting the operator 'aten::weird' to ONNX opset version 17 is not supported.\nmore")

    monkeypatch.setattr(optimize, "export_onnx", broken)
    with pytest.raises(MlopsError) as caught:
        optimize.run(with_variants(repo_params, ["onnx_fp32"]), tiny_classifier_dir, tmp_path)
    assert str(caught.value) == ("optimize: variant onnx_fp32 failed: RuntimeError: Exporting the operator "
                                 "'aten::weird' to ONNX opset version 17 is not supported.")
    with pytest.raises(MlopsError, match="optimize: no safetensors model in"):
        optimize.run(with_variants(repo_params, ["onnx_fp32"]), tmp_path, tmp_path / "out")
