import json

import numpy as np
import pandas as pd
import pytest

from mlops import monitor
from mlops.corpus import generate_corpus
from mlops.errors import MlopsError
from mlops.traffic import TrafficLog, read_traffic


def scored(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return frame.assign(prediction=frame["label"], confidence=rng.uniform(0.7, 1.0, len(frame)))


@pytest.fixture
def reference(tiny_settings) -> pd.DataFrame:
    return scored(generate_corpus(600, tiny_settings.data.generated.classes, seed=1), 1)


def test_same_distribution_does_not_drift(reference, tiny_settings):
    current = scored(generate_corpus(600, tiny_settings.data.generated.classes, seed=2), 2)
    summary = monitor.summarise(monitor.drift_report(reference, current, tiny_settings.monitor),
                                tiny_settings.monitor)
    assert summary["drift"] is False
    assert set(summary["signals"]) == set(monitor.SIGNALS)


def test_shifted_traffic_drifts(reference, tiny_settings):
    shifted = reference.sample(300, random_state=0).assign(
        text=lambda f: f["text"] + " 1234 5678 !!! ### " * 5, prediction="billing",
        confidence=lambda f: np.random.default_rng(3).uniform(0.2, 0.5, len(f)))
    summary = monitor.summarise(monitor.drift_report(reference, shifted, tiny_settings.monitor),
                                tiny_settings.monitor)
    assert summary["drift"] is True
    drifted = {name for name, signal in summary["signals"].items() if signal["drifted"]}
    assert {"text_length", "prediction", "confidence"} <= drifted


def test_run_on_traffic_log_writes_report(tmp_path, reference, tiny_settings):
    reference.to_parquet(tmp_path / "reference.parquet")
    log = TrafficLog(tmp_path / "traffic")
    for row in reference.head(100).itertuples():
        log.append([row.text], [{"label": row.prediction, "score": row.confidence, "model_version": "m:1"}],
                   latency_ms=5.0)
    summary = monitor.run(tiny_settings, tmp_path / "reference.parquet", str(tmp_path / "traffic"),
                          tmp_path / "unused.parquet", tmp_path / "out")
    assert summary["current_rows"] == 100 and summary["current"].startswith("served traffic")
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["drift"] == summary["drift"]
    assert (tmp_path / "out" / "report.html").stat().st_size > 10_000


def test_traffic_window_is_the_newest_rows(tmp_path):
    log = TrafficLog(tmp_path)
    for index in range(30):
        log.append([f"text {index}"], [{"label": "a", "score": 0.9, "model_version": "m"}], latency_ms=1)
    window = read_traffic(tmp_path, max_rows=10)
    assert window["text"].tolist() == [f"text {i}" for i in range(20, 30)]


def test_missing_current_and_bad_columns_are_named(tmp_path, reference, tiny_settings):
    reference.to_parquet(tmp_path / "reference.parquet")
    with pytest.raises(MlopsError, match="monitor.current: not found"):
        monitor.run(tiny_settings, tmp_path / "reference.parquet", str(tmp_path / "nope"), tmp_path / "x",
                    tmp_path / "out")
    reference[["text"]].to_parquet(tmp_path / "bare.parquet")
    with pytest.raises(MlopsError, match=r"no column\(s\) \['prediction', 'confidence'\]"):
        monitor.run(tiny_settings, tmp_path / "reference.parquet", str(tmp_path / "bare.parquet"), tmp_path / "x",
                    tmp_path / "out")
