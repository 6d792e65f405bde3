import pandas as pd
import pytest

from mlops.core.errors import MlopsError
from mlops.core.splits import FEEDBACK, MAIN, SPLITS
from mlops.stages import split
from mlops.stages.generate import generate_corpus


@pytest.fixture
def frame(tiny_settings) -> pd.DataFrame:
    data = generate_corpus(600, tiny_settings.data.generated.classes, seed=5)
    data["subset"] = "main"
    return data


def test_shares_stratified_and_disjoint(frame, tiny_settings):
    parts = split.split(frame, tiny_settings)
    assert len(parts.pop("recent")) == 0  # no feedback batches: no recent set
    assert {name: len(part) for name, part in parts.items()} == {"train": 420, "validation": 90, "test": 90}
    texts = [set(part["text"]) for part in parts.values()]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    overall = frame["label"].value_counts(normalize=True)
    for name, part in parts.items():
        assert (part["label"].value_counts(normalize=True) - overall).abs().max() < 0.03
        # training rows say where they come from: a feedback retrain continues on the feedback rows and a replay
        assert list(part.columns) == (["text", "label", "origin"] if name == "train" else ["text", "label"])
    assert set(parts["train"]["origin"]) == {MAIN}


def test_seeded(frame, tiny_settings):
    first, second = split.split(frame, tiny_settings), split.split(frame, tiny_settings)
    assert all(first[name].equals(second[name]) for name in SPLITS)


def test_held_out_rows_are_the_test_split(frame, tiny_settings):
    held = frame.head(50).assign(subset="test")
    parts = split.split(pd.concat([held, frame.iloc[50:]]), tiny_settings)
    assert sorted(parts["test"]["text"]) == sorted(held["text"])


def test_test_label_unseen_in_training_fails(frame, tiny_settings):
    held = pd.DataFrame({"text": ["new"], "label": ["weather"], "subset": ["test"]})
    with pytest.raises(MlopsError, match="never occur in the training data"):
        split.split(pd.concat([frame, held]), tiny_settings)


def test_each_feedback_batch_gives_a_seeded_stratified_recent_share(frame, tiny_settings):
    feedback = generate_corpus(200, tiny_settings.data.generated.classes, seed=9).assign(subset="feedback")
    feedback["batch"] = ["batch-a.csv"] * 120 + ["batch-b.csv"] * 80
    parts = split.split(pd.concat([frame.assign(batch="corpus.csv"), feedback], ignore_index=True), tiny_settings)
    recent = parts["recent"]
    share = tiny_settings.feedback.recent_share
    assert recent["batch"].value_counts().to_dict() == {"batch-a.csv": round(120 * share),
                                                         "batch-b.csv": round(80 * share)}
    assert not set(recent["text"]) & set(parts["train"]["text"])
    learnt = (200 - len(recent)) * tiny_settings.feedback.oversample  # the rest of each batch, repeated
    assert len(parts["train"]) == 420 + learnt
    assert parts["train"]["origin"].value_counts().to_dict() == {MAIN: 420, FEEDBACK: learnt}
    assert set(recent["label"]) == set(feedback["label"])
    again = split.split(pd.concat([frame.assign(batch="corpus.csv"), feedback], ignore_index=True), tiny_settings)
    assert again["recent"].equals(recent)
