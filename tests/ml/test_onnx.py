"""ONNX variants of a fine-tuned model (mlops/ml/onnx_export.py, onnx_classifier.py, variants.py), on a tiny BERT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlops.core.errors import MlopsError
from tests.conftest import TINY_LABELS as LABELS

TEXTS = ["my invoice is wrong", "where is my parcel", "the app crashes on start", "refund please",
         "a much longer message about a delivery that never arrived at the address I gave you last week", "hi",
         "cannot log in after the update, the password reset link does not work either"] * 3


@pytest.fixture(scope="module")
def exported(tiny_classifier_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from mlops.ml.onnx_export import export_onnx, fuse_transformer_graph, quantize_onnx_int8

    root = tmp_path_factory.mktemp("variants")
    fp32 = export_onnx(tiny_classifier_dir, root / "onnx_fp32")
    fusion = fuse_transformer_graph(fp32, tiny_classifier_dir)
    quantize_onnx_int8(fp32, root / "onnx_int8")
    return {"root": root, "fusion": fusion}


@pytest.mark.slow  # exports an ONNX variant
def test_export_writes_a_self_contained_variant_directory(exported):
    names = {p.name for p in (exported["root"] / "onnx_fp32").iterdir()}
    assert {"model.onnx", "label_map.json", "config.json", "tokenizer.json"} <= names
    assert (exported["root"] / "onnx_int8" / "model.onnx").stat().st_size < (
        exported["root"] / "onnx_fp32" / "model.onnx").stat().st_size
    assert "fused" in exported["fusion"]


def test_onnx_fp32_matches_torch_probabilities_and_embeddings(tiny_classifier_dir, exported):
    from mlops.ml.variants import load_variant

    torch_proba, torch_emb = load_variant(tiny_classifier_dir, "fp32").predict(TEXTS, batch_size=4)
    onnx = load_variant(tiny_classifier_dir, "onnx_fp32", exported["root"])
    proba, emb = onnx.predict(TEXTS, batch_size=4)
    assert onnx.labels == LABELS and onnx.max_length == 48
    np.testing.assert_allclose(proba, torch_proba, atol=1e-4)
    np.testing.assert_allclose(emb, torch_emb, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(onnx.predict_proba(TEXTS[:2]), torch_proba[:2], atol=1e-4)


def test_onnx_int8_agrees_with_fp32_on_most_labels(tiny_classifier_dir, exported):
    from mlops.ml.variants import load_variant

    fp32 = load_variant(tiny_classifier_dir, "fp32").predict_proba(TEXTS).argmax(axis=1)
    proba, emb = load_variant(tiny_classifier_dir, "onnx_int8", exported["root"]).predict(TEXTS)
    assert proba.shape == (len(TEXTS), len(LABELS)) and emb.shape[0] == len(TEXTS)
    assert (proba.argmax(axis=1) == fp32).mean() >= 0.7


def test_unknown_variant_and_missing_files_are_one_line_errors(tiny_classifier_dir, tmp_path):
    from mlops.ml.variants import load_variant

    with pytest.raises(MlopsError, match="unknown model variant 'onnx_fp16'"):
        load_variant(tiny_classifier_dir, "onnx_fp16")
    with pytest.raises(MlopsError, match="onnx_int8: no model.onnx"):
        load_variant(tiny_classifier_dir, "onnx_int8", tmp_path)


def test_empty_batch_gives_empty_arrays(tiny_classifier_dir, exported):
    from mlops.ml.variants import load_variant

    proba, emb = load_variant(tiny_classifier_dir, "onnx_fp32", exported["root"]).predict([])
    assert proba.shape == (0, len(LABELS)) and emb.shape == (0, 0)
