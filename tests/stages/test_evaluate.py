"""Stage `evaluate` without training: metrics against scikit-learn, calibration error on hand-computed cases,
length slices, the confusion plot, and scoring/latency on a stand-in classifier."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from mlops.ml.scoring import score
from mlops.stages.evaluate import (
    compute_metrics,
    expected_calibration_error,
    measure_latency,
    model_size_mb,
    plot_confusion,
    slice_metrics,
)

LABELS = ["billing", "delivery", "technical"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def scored(truth, predicted, confidence=None, texts=None):
    frame = pd.DataFrame({"label": truth, "prediction": predicted})
    if confidence is not None:
        frame["confidence"] = confidence
    if texts is not None:
        frame["text"] = texts
    return frame


@pytest.fixture
def predictions():
    """Made-up predictions: 10 rows, some mistakes in every class, `technical` never predicted right."""
    truth = ["billing"] * 4 + ["delivery"] * 4 + ["technical"] * 2
    predicted = ["billing", "billing", "billing", "delivery",
                 "delivery", "delivery", "billing", "delivery",
                 "billing", "delivery"]
    return scored(truth, predicted)


# --- compute_metrics -----------------------------------------------------------------------------------------

def test_accuracy_and_macro_f1_match_scikit_learn(predictions):
    metrics = compute_metrics(predictions, LABELS)
    truth, predicted = predictions["label"], predictions["prediction"]
    assert metrics["rows"] == 10
    assert metrics["accuracy"] == round(accuracy_score(truth, predicted), 4) == 0.6
    assert metrics["macro_f1"] == round(f1_score(truth, predicted, labels=LABELS, average="macro",
                                                 zero_division=0), 4)


def test_per_class_figures_match_scikit_learn(predictions):
    per_class = compute_metrics(predictions, LABELS)["per_class"]
    precision, recall, f1, support = precision_recall_fscore_support(
        predictions["label"], predictions["prediction"], labels=LABELS, zero_division=0)
    for index, label in enumerate(LABELS):
        assert per_class[label] == {"precision": round(precision[index], 4), "recall": round(recall[index], 4),
                                    "f1": round(f1[index], 4), "support": int(support[index])}
    assert per_class["billing"]["recall"] == 0.75 and per_class["billing"]["precision"] == 0.6


def test_a_class_never_predicted_scores_zero_without_warnings(predictions):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        per_class = compute_metrics(predictions, LABELS)["per_class"]
    assert per_class["technical"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}


def test_confusion_matrix_rows_are_actual_columns_predicted_in_label_order(predictions):
    metrics = compute_metrics(predictions, LABELS)
    assert metrics["labels"] == LABELS
    assert metrics["confusion_matrix"] == [[3, 1, 0], [1, 3, 0], [1, 1, 0]]
    assert metrics["confusion_matrix"] == confusion_matrix(predictions["label"], predictions["prediction"],
                                                           labels=LABELS).tolist()


def test_label_order_is_the_models_not_alphabetical():
    labels = ["z", "a"]
    metrics = compute_metrics(scored(["z", "z", "a"], ["z", "a", "a"]), labels)
    assert list(metrics["per_class"]) == labels
    assert metrics["confusion_matrix"] == [[1, 1], [0, 1]]


def test_numeric_labels_compare_as_text():
    metrics = compute_metrics(scored([0, 1, 1], ["0", "1", "0"]), ["0", "1"])
    assert metrics["accuracy"] == round(2 / 3, 4)
    assert metrics["per_class"]["1"]["support"] == 2


def test_metrics_are_plain_json_types(predictions):

    metrics = compute_metrics(predictions, LABELS)
    assert json.loads(json.dumps(metrics)) == metrics


# --- expected_calibration_error ------------------------------------------------------------------------------

def test_ece_is_zero_when_confidence_equals_accuracy():
    frame = scored(["a"] * 5, ["a"] * 4 + ["b"], confidence=[0.8] * 5)  # 80 % right at 80 % confidence
    assert expected_calibration_error(frame, bins=10) == 0.0


def test_ece_of_an_overconfident_model():
    frame = scored(["a"] * 4, ["a", "b", "b", "b"], confidence=[0.9] * 4)  # 25 % right at 90 %
    assert expected_calibration_error(frame, bins=10) == 0.65


def test_ece_weights_each_bin_by_its_share_of_rows():
    # bin [0, 0.5]: 0.2 and 0.4, both wrong -> |0 - 0.3| x 2/4; bin (0.5, 1]: 0.7 and 0.9, both right -> |1 - 0.8| x 2/4
    frame = scored(["a"] * 4, ["b", "b", "a", "a"], confidence=[0.2, 0.4, 0.7, 0.9])
    assert expected_calibration_error(frame, bins=2) == 0.25


def test_ece_bins_are_closed_on_the_right():
    # 0.5 falls in the first of two bins: |1 - 0.5|/2 + |0 - 0.9|/2 = 0.7 (were it in the second bin: 0.2)
    frame = scored(["a", "a"], ["a", "b"], confidence=[0.5, 0.9])
    assert expected_calibration_error(frame, bins=2) == 0.7


def test_ece_with_one_bin_is_the_gap_between_mean_confidence_and_accuracy():
    frame = scored(["a"] * 4, ["a", "a", "a", "b"], confidence=[1.0, 0.6, 0.6, 0.6])
    assert expected_calibration_error(frame, bins=1) == 0.05  # |0.75 - 0.7|


# --- slice_metrics -------------------------------------------------------------------------------------------

def test_slices_bucket_texts_by_length_with_edges_in_the_upper_bucket():
    texts = ["x" * 5, "x" * 9, "x" * 10, "x" * 19, "x" * 25]
    frame = scored(["a", "a", "a", "b", "b"], ["a", "b", "a", "b", "a"], texts=texts)
    slices = slice_metrics(frame, ["a", "b"], (10, 20))
    assert list(slices) == ["chars 0-9", "chars 10-19", "chars 20+"]
    assert [s["rows"] for s in slices.values()] == [2, 2, 1]
    assert [s["accuracy"] for s in slices.values()] == [0.5, 1.0, 0.0]


def test_slice_macro_f1_matches_scikit_learn_on_the_slice():
    texts = ["short"] * 4 + ["a much longer text here"] * 2
    truth, predicted = ["a", "a", "b", "b", "a", "b"], ["a", "b", "b", "b", "a", "a"]
    slices = slice_metrics(scored(truth, predicted, texts=texts), ["a", "b"], (10,))
    assert slices["chars 0-9"]["macro_f1"] == round(f1_score(truth[:4], predicted[:4], average="macro"), 4)
    assert slices["chars 10+"]["macro_f1"] == round(f1_score(truth[4:], predicted[4:], average="macro",
                                                             labels=["a", "b"], zero_division=0), 4)


def test_empty_slices_are_left_out():
    slices = slice_metrics(scored(["a"], ["a"], texts=["x" * 50]), ["a"], (10, 20))
    assert list(slices) == ["chars 20+"]


# --- plot_confusion ------------------------------------------------------------------------------------------

def test_plot_confusion_writes_a_png_and_no_temporary(tmp_path):
    path = tmp_path / "plots" / "confusion_matrix.png"
    plot_confusion([[3, 1, 0], [1, 3, 0], [1, 1, 0]], LABELS, path)
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert [p.name for p in path.parent.iterdir()] == ["confusion_matrix.png"]


def test_plot_confusion_grows_with_the_number_of_labels(tmp_path):
    import matplotlib.image

    plot_confusion([[1, 0], [0, 1]], ["a", "b"], tmp_path / "two.png")
    many = [f"class {i}" for i in range(8)]
    plot_confusion(np.eye(8, dtype=int).tolist(), many, tmp_path / "eight.png")
    two, eight = (matplotlib.image.imread(tmp_path / name).shape for name in ("two.png", "eight.png"))
    assert eight[0] > two[0] and eight[1] > two[1]


# --- score, latency and size, on a stand-in classifier -------------------------------------------------------

class FixedClassifier:
    """Returns set probabilities and embeddings; counts the texts it is asked about."""

    labels = ["a", "b"]

    def __init__(self):
        self.asked = []

    def predict(self, texts, batch_size=64):
        proba = np.array([[0.9, 0.1] if "a" in text else [0.3, 0.7] for text in texts])
        return proba, np.arange(len(texts) * 2, dtype=np.float32).reshape(len(texts), 2)

    def predict_proba(self, texts):
        self.asked.append(list(texts))
        return self.predict(texts)[0]


def test_score_adds_prediction_confidence_probabilities_and_embedding():
    frame = pd.DataFrame({"text": ["an apple", "xyz"], "label": ["a", "b"]})
    result = score(FixedClassifier(), frame)
    assert result["prediction"].tolist() == ["a", "b"]
    assert result["confidence"].tolist() == [0.9, 0.7]
    assert result["proba_a"].tolist() == [0.9, 0.3] and result["proba_b"].tolist() == [0.1, 0.7]
    assert [e.tolist() for e in result["embedding"]] == [[0.0, 1.0], [2.0, 3.0]]
    assert list(frame.columns) == ["text", "label"]  # the input is not changed


def test_latency_is_measured_one_text_at_a_time_after_a_warm_up():
    classifier = FixedClassifier()
    latency = measure_latency(classifier, ["t1", "t2", "t3"], samples=7)
    assert latency["samples"] == 7
    assert classifier.asked[:5] == [["t1"], ["t2"], ["t3"], ["t1"], ["t2"]]  # warm-up, not timed
    assert classifier.asked[5:] == [["t1"], ["t2"], ["t3"], ["t1"], ["t2"], ["t3"], ["t1"]]
    assert set(latency) == {"p50_ms", "p95_ms", "samples"}


def test_model_size_counts_every_file_below_the_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "model.safetensors").write_bytes(b"\0" * (1 << 20))
    (tmp_path / "sub" / "tokenizer.json").write_bytes(b"\0" * (1 << 19))
    assert model_size_mb(tmp_path) == 1.5


# evaluate's metrics files: a headline `dvc exp show` can show at a glance, the detail in a file of its own
