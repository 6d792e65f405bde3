"""The records other code reads: the evaluation metrics split in a headline and a detail file, read back whole."""

import json

import pytest

from mlops.core import records
from mlops.core.errors import MlopsError

FULL = {
    "rows": 90, "accuracy": 0.8, "macro_f1": 0.79, "ece": 0.05, "size_mb": 17.5,
    "latency": {"p50_ms": 9.1, "p95_ms": 12.3, "samples": 20},
    "per_class": {"a": {"precision": 0.8, "recall": 0.7, "f1": 0.75, "support": 45},
                  "b": {"precision": 0.8, "recall": 0.9, "f1": 0.85, "support": 45}},
    "labels": ["a", "b"], "confusion_matrix": [[31, 14], [4, 41]],
    "slices": {"chars 0-49": {"rows": 90, "accuracy": 0.8, "macro_f1": 0.79}},
    "behaviour": {"pass_rate": 1.0, "cases": 3, "failures": []},
    "variants": {"fp32": {"accuracy": 0.8, "accuracy_drop_points": 0.0, "texts_per_s": 100.0},
                 "onnx_int8": {"accuracy": 0.79, "accuracy_drop_points": 1.0, "texts_per_s": 400.0}},
}



def test_headline_holds_only_the_summary_figures_and_detail_the_rest(tmp_path):
    path = tmp_path / "metrics" / "evaluate.json"
    records.write_metrics(FULL, path)
    headline = json.loads(path.read_text())
    assert set(headline) == {"rows", "accuracy", "macro_f1", "ece", "size_mb", "latency"}
    detail = json.loads((tmp_path / "metrics" / "evaluate_detail.json").read_text())
    assert {"per_class", "slices", "confusion_matrix", "behaviour", "variants", "labels"} == set(detail)
    assert records.read_metrics(path) == FULL  # the gate and the model card read the whole document back


def test_read_metrics_without_detail_file_is_the_headline(tmp_path):
    path = tmp_path / "evaluate.json"
    path.write_text(json.dumps({"accuracy": 0.5}))
    assert records.read_metrics(path) == {"accuracy": 0.5}


def test_missing_metrics_are_an_error_unless_a_report_asks_for_whatever_exists(tmp_path):
    with pytest.raises(MlopsError, match="missing input"):
        records.read_metrics(tmp_path / "evaluate.json")
    assert records.read_metrics(tmp_path / "evaluate.json", missing_ok=True) == {}
