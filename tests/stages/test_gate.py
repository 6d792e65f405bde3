"""Model-behaviour tests of the gate: thresholds, the paired comparison with the champion, the model card."""

import shutil

import pytest

from mlops.core import registry
from mlops.core.records import GateDecision, read_metrics
from mlops.ml import gate_report
from mlops.stages import gate
from tests.helpers import train_and_evaluate


@pytest.fixture
def metrics(trained):
    _, root, _ = trained
    return read_metrics(root / "metrics.json")  # the headline file and its detail, as the gate reads them


def lenient(settings, **gate_overrides):
    # a tiny model answers in milliseconds, where a busy machine's noise alone can pass any latency ratio: tests
    # of other checks leave latency out; the latency test sets its own ratio
    values = {"min_accuracy": 0.0, "min_macro_f1": 0.0, "max_latency_ratio": 1e6, **gate_overrides}
    return settings.model_copy(update={"gate": settings.gate.model_copy(update=values)})


def as_champion(monkeypatch, model_dir, digest="champion-digest"):
    monkeypatch.setattr(registry, "champion", lambda: {"model": "text-classifier:champ", "digest": digest})
    monkeypatch.setattr(registry, "model_path", lambda tag: model_dir)


def test_first_run_passes_on_absolute_thresholds_and_says_so(trained, metrics, bentoml_home):
    settings, root, _ = trained
    decision = gate.decide(settings, metrics, root / "model", root / "scored" / "test.parquet")
    assert decision["accepted"] and decision["champion"] is None and decision["comparison"] is None
    assert decision["basis"].startswith("first run: no champion yet, absolute thresholds alone")
    assert [c["check"] for c in decision["checks"]] == ["min_accuracy", "min_macro_f1", "min_class_recall",
                                                       "max_latency_p95_ms", "max_model_mb",
                                                       "min_behaviour_pass_rate"]


def test_absolute_thresholds_reject_with_reasons(trained, metrics, bentoml_home):
    settings, root, _ = trained
    strict = settings.model_copy(update={"gate": settings.gate.model_copy(update={
        "min_accuracy": 1.0, "min_class_recall": 1.0, "max_model_mb": 0.01})})
    decision = gate.decide(strict, metrics, root / "model", root / "scored" / "test.parquet")
    assert not decision["accepted"]
    failed = {reason.split(":")[0] for reason in decision["reasons"]}
    assert "max_model_mb" in failed
    assert ("min_accuracy" in failed) == (metrics["accuracy"] < 1.0)
    lowest_recall = min(v["recall"] for v in metrics["per_class"].values())
    assert ("min_class_recall" in failed) == (lowest_recall < 1.0)
    assert (f"max_model_mb: the candidate's size on disk (MB): {metrics['size_mb']}, needs <= 0.01"
            in decision["reasons"])
    if "min_accuracy" in failed:
        assert (f"min_accuracy: the candidate's accuracy on the {metrics['rows']} test rows: "
                f"{round(metrics['accuracy'], 4)}, needs >= 1.0") in decision["reasons"]


def test_shuffled_label_challenger_is_rejected_against_a_good_champion(trained, tmp_path, monkeypatch,
                                                                        bentoml_home):
    settings, root, _ = trained
    bad = train_and_evaluate(tmp_path, settings, shuffle_labels=True)
    as_champion(monkeypatch, root / "model")
    decision = gate.decide(lenient(settings), bad, tmp_path / "model", tmp_path / "scored" / "test.parquet",
                           optimized_dir=tmp_path / "optimized")
    assert not decision["accepted"]
    comparison = decision["comparison"]
    assert comparison["verdict"] == "worse" and comparison["ci_high"] < 0
    assert comparison["challenger_macro_f1"] < comparison["champion_macro_f1"]
    assert any(reason.startswith("no_regression_vs_champion") for reason in decision["reasons"])


def test_challenger_equal_within_noise_is_not_reported_better(trained, metrics, tmp_path, monkeypatch,
                                                               bentoml_home):
    from safetensors.torch import load_file, save_file

    settings, root, _ = trained
    twin = tmp_path / "twin"
    shutil.copytree(root / "model", twin)  # the same model, weights nudged far below any decision boundary
    weights = load_file(twin / "model.safetensors")
    save_file({k: v + 1e-7 if v.is_floating_point() else v for k, v in weights.items()}, twin / "model.safetensors",
              metadata={"format": "pt"})
    as_champion(monkeypatch, root / "model")
    decision = gate.decide(lenient(settings, promote_if="better"), metrics, twin, root / "scored" / "test.parquet",
                           optimized_dir=root / "optimized")
    comparison = decision["comparison"]
    assert comparison["verdict"] != "better" and comparison["ci_low"] <= 0 <= comparison["ci_high"]
    assert not decision["accepted"]  # promote_if: better, and it is not
    assert [c["check"] for c in decision["checks"] if not c["passed"]] == ["better_than_champion"]
    # non_inferior: not worse, but not better as measured either (a twin): nothing to gain by swapping
    non_inferior = gate.decide(lenient(settings, promote_if="non_inferior"), metrics, twin,
                               root / "scored" / "test.parquet", optimized_dir=root / "optimized")
    assert non_inferior["comparison"]["verdict"] == "non_inferior"
    assert [c["check"] for c in non_inferior["checks"] if not c["passed"]] == ["gain_vs_champion"]
    accept_any = gate.decide(lenient(settings, promote_if="expected_gain", min_gain_probability=0.0), metrics, twin,
                             root / "scored" / "test.parquet", optimized_dir=root / "optimized")
    assert accept_any["accepted"], accept_any["reasons"]


def test_champion_itself_is_not_compared_with_itself(trained, metrics, monkeypatch, bentoml_home):
    settings, root, _ = trained
    as_champion(monkeypatch, root / "model", digest=registry.model_digest(root / "model"))
    decision = gate.decide(settings, metrics, root / "model", root / "scored" / "test.parquet")
    assert decision["accepted"] and "already the champion" in decision["basis"]


def test_champion_with_other_labels_is_not_comparable(trained, metrics, monkeypatch, bentoml_home):
    settings, root, _ = trained
    as_champion(monkeypatch, root / "model")
    decision = gate.decide(settings, {**metrics, "labels": ["World", "Sports"]}, root / "model",
                           root / "scored" / "test.parquet")
    assert decision["accepted"] and "not comparable, absolute thresholds alone" in decision["basis"]


def test_run_writes_decision_and_model_card(trained, tmp_path, bentoml_home):
    settings, root, _ = trained
    decision = gate.run(settings, gate.GateIO(metrics=root / "metrics.json", model=root / "model",
                                              scored_test=root / "scored" / "test.parquet",
                                              train=root / "split" / "train.parquet", out=tmp_path / "decision.json",
                                              card=tmp_path / "card.md"))
    assert GateDecision.read(tmp_path / "decision.json") == decision
    card = (tmp_path / "card.md").read_text()
    for section in ("## Intended use", "## Limits", "## Lineage", "## Metrics", "## Gate checks"):
        assert section in card
    assert gate.file_md5(root / "split" / "train.parquet") in card
    assert decision.lineage["params"]["train"]["epochs"] == settings.train.epochs


def cpu_hogs(count: int) -> list:
    """`count` busy-looping processes, one per core: the other job on the machine."""
    import subprocess
    import sys

    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def test_latency_verdict_is_the_same_with_a_cpu_hog_beside_it(trained, metrics, tmp_path, monkeypatch,
                                                              bentoml_home):
    """The latency check compares candidate and champion measured side by side, so a busy machine slows both."""
    import os

    from mlops.ml.model import Classifier
    from mlops.stages.evaluate import measure_latency
    from mlops.stages.package import stage_variant

    settings, root, _ = trained
    twin = tmp_path / "twin"
    shutil.copytree(root / "model", twin)  # same architecture: as fast as the champion
    texts = __import__("pandas").read_parquet(root / "scored" / "test.parquet")["text"].head(50).tolist()
    relaxed = lenient(settings, promote_if="expected_gain", min_gain_probability=0.0, max_regression=1.0,
                      max_latency_p95_ms=None, max_latency_ratio=1.5)  # any model as good: latency decides
    # the champion serves the variant the candidate would (stored inside it, as package does): as fast
    serve_variant = gate.judge_variants(metrics, relaxed)["serve_variant"]
    champion = tmp_path / "champion"
    shutil.copytree(root / "model", champion)
    stage_variant(serve_variant, root / "optimized", champion)
    as_champion(monkeypatch, champion)
    # the candidate would have to be 3.3 times as fast: it is not
    demanding = lenient(settings, promote_if="expected_gain", min_gain_probability=0.0, max_regression=1.0,
                        max_latency_p95_ms=None, max_latency_ratio=0.3)
    relaxed = relaxed.model_copy(update={"evaluate": settings.evaluate.model_copy(update={"latency_samples": 100})})
    demanding = demanding.model_copy(update={"evaluate": relaxed.evaluate})
    classifier = Classifier.load(twin, device="cpu")

    def verdicts() -> dict:
        out = {}
        for name, config in (("relaxed", relaxed), ("demanding", demanding)):
            decision = gate.decide(config, metrics, twin, root / "scored" / "test.parquet",
                                   optimized_dir=root / "optimized")
            latency = decision["comparison"]["latency"]
            out[name] = (decision["accepted"], latency)
        out["absolute_p95_ms"] = measure_latency(classifier, texts, 60)["p95_ms"]
        return out

    quiet = verdicts()
    hogs = cpu_hogs(os.cpu_count() or 2)
    try:
        busy = verdicts()
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    for name in ("relaxed", "demanding"):
        print(f"{name}: quiet accepted={quiet[name][0]} {quiet[name][1]}; "
              f"with {len(hogs)} CPU hogs accepted={busy[name][0]} {busy[name][1]}")
    print(f"absolute single-text p95: quiet {quiet['absolute_p95_ms']} ms, busy {busy['absolute_p95_ms']} ms")
    # the candidate is timed as the variant it would serve, the champion as the one it serves
    assert quiet["relaxed"][1]["candidate_variant"] == quiet["relaxed"][1]["champion_variant"] == serve_variant
    assert quiet["relaxed"][0] and busy["relaxed"][0]  # as fast as the champion: accepted, load or not
    assert not quiet["demanding"][0] and not busy["demanding"][0]  # not 3.3x as fast: rejected, load or not


def test_recent_set_decides_with_promote_if_and_a_small_one_is_said_so(trained, metrics, tmp_path, monkeypatch,
                                                                        bentoml_home):
    import pandas as pd

    settings, root, _ = trained
    as_champion(monkeypatch, root / "model")
    test = pd.read_parquet(root / "scored" / "test.parquet")
    recent = test[["text", "label"]].copy()
    labels = metrics["labels"]
    shifted = recent.index[::2]  # on half the rows the truth moved to another class: the champion is wrong there
    recent.loc[shifted, "label"] = [labels[(labels.index(v) + 1) % len(labels)] for v in recent.loc[shifted, "label"]]
    recent["prediction"] = recent["label"]  # and the challenger learnt it
    recent.to_parquet(tmp_path / "recent.parquet")
    twin = root / "model"  # the champion's weights under another digest: identical on the test split
    settings = lenient(settings, promote_if="better")
    wide = settings.model_copy(update={"feedback": settings.feedback.model_copy(update={"min_recent_rows": 40})})
    monkeypatch.setattr(registry, "model_digest", lambda _: "challenger-digest")
    decision = gate.decide(wide, metrics, twin, root / "scored" / "test.parquet", tmp_path / "recent.parquet",
                    optimized_dir=root / "optimized")
    names = [c["check"] for c in decision["checks"]]
    assert "better_than_champion_on_recent" in names and "better_than_champion" not in names
    on_recent = decision["comparison"]["recent"]
    assert on_recent["verdict"] == "better" and on_recent["rows"] == len(recent) and on_recent["ci_low"] > 0
    assert on_recent["challenger_accuracy"] == 1.0 and on_recent["champion_accuracy"] < 0.6
    assert decision["accepted"], decision["reasons"]  # non-inferior on test (same model), better on recent
    small = gate.decide(settings, metrics, twin, root / "scored" / "test.parquet", tmp_path / "recent.parquet",
                    optimized_dir=root / "optimized")
    assert "too small to show a difference" in small["comparison"]["recent"]["too_small"]
    assert "better_than_champion" in [c["check"] for c in small["checks"]]  # judged on the test split alone
    assert not small["accepted"]
    card = gate_report.model_card(wide, metrics | {"recent": {"rows": len(recent), "accuracy": 1.0,
                                                        "accuracy_ci": [0.96, 1.0], "macro_f1": 1.0,
                                                        "batches": ["b1"]}}, decision, {
        "data": {"source": "s", "train_md5": "x", "test_md5": "y"}, "git_commit": "c"})
    assert "Recent set (held-out feedback of 1 batch(es)): 90 rows" in card and "on the recent set" in card


# The rule and the evidence, on synthetic scored frames: no model, the champion's answers given.
