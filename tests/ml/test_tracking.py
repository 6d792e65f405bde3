"""The experiment tracker (`train.report_to`): one run per training, with params and the evaluate/gate metrics."""

from __future__ import annotations

import json

import pytest

from mlops.core.errors import MlopsError
from mlops.ml import tracking


def read_run(log_dir):
    """A TensorBoard run as its reader sees it: scalar tag -> [(step, value)], and the hparams of the run."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    hparams = {name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
               for name, value in start.hparams.items()}
    return scalars, hparams


def test_a_training_run_holds_its_params_curves_and_the_evaluate_and_gate_metrics(trained, tmp_path, bentoml_home):
    from mlops.stages import gate

    # given the tiny model trained and evaluated with train.report_to: tensorboard (the `trained` fixture)
    settings, root, summary = trained
    pointer = json.loads((root / "model" / tracking.POINTER).read_text())
    assert pointer["tool"] == "tensorboard" and pointer["log_dir"].startswith(str(root / "tensorboard"))
    runs_before = set((root / "tensorboard").iterdir())
    # when the gate judges it
    decision = gate.run(settings, gate.GateIO(metrics=root / "metrics.json", model=root / "model",
                                              scored_test=root / "scored" / "test.parquet",
                                              train=root / "split" / "train.parquet", out=tmp_path / "decision.json",
                                              card=tmp_path / "card.md"))
    # then the one run's event files hold the params, the Trainer's curves and every stage's metrics
    scalars, hparams = read_run(pointer["log_dir"])
    assert hparams["train.lr"] == settings.train.lr and hparams["model.max_length"] == settings.model.max_length
    assert hparams["train.report_to"] == "tensorboard" and hparams["train_rows"] == summary["train_rows"]
    assert scalars["train/loss"] and scalars["eval/macro_f1"]  # written by the Trainer's own TensorBoard callback
    step = pointer["step"]
    assert scalars["train/validation_macro_f1"] == [(step, pytest.approx(summary["validation_macro_f1"]))]
    # other tests evaluate and gate the same shared model, each logging to its run: these entries are among them
    metrics = json.loads((root / "metrics.json").read_text())
    assert (step, pytest.approx(metrics["accuracy"])) in scalars["evaluate/accuracy"]
    assert (step, pytest.approx(metrics["latency"]["p95_ms"])) in scalars["evaluate/latency/p95_ms"]
    assert (step, float(decision.accepted)) in scalars["gate/accepted"]
    assert (step, pytest.approx(metrics["accuracy"])) in scalars["gate/sets/test/accuracy"]
    assert set((root / "tensorboard").iterdir()) == runs_before  # the gate opened no run of its own


def test_a_model_without_a_run_logs_nothing(tmp_path, capsys):
    tracking.log_stage_metrics(tmp_path, "evaluate", {"accuracy": 0.9})
    assert capsys.readouterr().out == "" and not list(tmp_path.iterdir())
    assert tracking.open_run("none", str(tmp_path), "r") is None


def test_a_tracker_whose_package_is_missing_names_the_extra(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MlopsError, match=r"train.report_to is mlflow, but the mlflow package is not installed: "
                                         r"pip install -e '.\[mlflow\]'"):
        tracking.open_run("mlflow", "unused", "r")


def test_metrics_and_params_flatten_as_trackers_take_them():
    assert tracking.flat_numbers({"a": 1, "b": {"c": 0.5, "d": True, "e": "text", "f": [1]}}, "s/") == {
        "s/a": 1.0, "s/b/c": 0.5, "s/b/d": 1.0}
    assert tracking.flat_params({"train": {"lr": 0.1, "x": None, "l": [1, 2]}}) == {
        "train.lr": 0.1, "train.x": "null", "train.l": "[1, 2]"}
