import pytest

from mlops import gate, registry


@pytest.fixture
def metrics(trained):
    settings, _, _ = trained
    return {"accuracy": 0.9, "macro_f1": 0.88, "labels": sorted(settings.data.generated.classes)}


def test_first_run_passes_on_absolute_thresholds_and_says_so(trained, metrics, bentoml_home):
    settings, root, _ = trained
    decision = gate.decide(settings, metrics, root / "model", root / "split" / "test.parquet")
    assert decision["accepted"] and decision["champion"] is None
    assert decision["basis"].startswith("first run: no champion yet")
    assert [c["check"] for c in decision["checks"]] == ["min_accuracy", "min_macro_f1"]


def test_below_threshold_is_rejected_with_reasons(trained, bentoml_home):
    settings, root, _ = trained
    decision = gate.decide(settings, {"accuracy": 0.2, "macro_f1": 0.1, "labels": []}, root / "model",
                           root / "split" / "test.parquet")
    assert not decision["accepted"]
    assert any(reason.startswith("min_accuracy: observed 0.2 vs 0.4") for reason in decision["reasons"])
    assert any(reason.startswith("min_macro_f1: observed 0.1 vs 0.3") for reason in decision["reasons"])


def test_regression_against_champion_is_rejected(trained, metrics, monkeypatch, bentoml_home):
    settings, root, _ = trained
    # The trained model is the champion; a challenger far below it must not replace it.
    monkeypatch.setattr(registry, "champion", lambda: {"model": "text-classifier:champ", "digest": "other"})
    monkeypatch.setattr(registry, "model_path", lambda tag: root / "model")
    lenient = settings.model_copy(update={"gate": settings.gate.model_copy(update={"min_accuracy": 0.0,
                                                                                    "min_macro_f1": 0.0})})
    decision = gate.decide(lenient, {**metrics, "accuracy": 0.2, "macro_f1": 0.05}, root / "model",
                           root / "split" / "test.parquet")
    assert not decision["accepted"]
    assert decision["champion"] == "text-classifier:champ"
    [regression] = [c for c in decision["checks"] if c["check"] == "no_regression_vs_champion"]
    assert not regression["passed"] and regression["threshold"] > 0.05


def test_champion_itself_is_not_compared_with_itself(trained, metrics, monkeypatch, bentoml_home):
    settings, root, _ = trained
    digest = registry.model_digest(root / "model")
    monkeypatch.setattr(registry, "champion", lambda: {"model": "text-classifier:champ", "digest": digest})
    decision = gate.decide(settings, metrics, root / "model", root / "split" / "test.parquet")
    assert decision["accepted"] and "already the champion" in decision["basis"]


def test_run_writes_decision(trained, metrics, tmp_path, bentoml_home):
    import json

    settings, root, _ = trained
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    gate.run(settings, tmp_path / "metrics.json", root / "model", root / "split" / "test.parquet",
             tmp_path / "decision.json")
    assert json.loads((tmp_path / "decision.json").read_text())["accepted"] is True


def test_champion_with_other_labels_is_not_comparable(trained, metrics, monkeypatch, bentoml_home):
    settings, root, _ = trained
    monkeypatch.setattr(registry, "champion", lambda: {"model": "text-classifier:champ", "digest": "other"})
    monkeypatch.setattr(registry, "model_path", lambda tag: root / "model")
    decision = gate.decide(settings, {**metrics, "labels": ["World", "Sports"]}, root / "model",
                           root / "split" / "test.parquet")
    assert decision["accepted"] and "predicts other labels" in decision["basis"]
    assert "not comparable, absolute thresholds alone" in decision["basis"]
