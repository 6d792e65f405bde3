import pandas as pd
import pytest

from mlops.core.errors import MlopsError
from mlops.stages import split
from mlops.stages.generate import generate_corpus


@pytest.fixture
def frame(tiny_settings) -> pd.DataFrame:
    data = generate_corpus(600, tiny_settings.data.generated.classes, seed=5)
    data["subset"] = "main"
    return data


def test_shares_stratified_and_disjoint(frame, tiny_settings):
    parts = split.split(frame, tiny_settings)
    assert {name: len(part) for name, part in parts.items()} == {"train": 420, "validation": 90, "test": 90}
    texts = [set(part["text"]) for part in parts.values()]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    overall = frame["label"].value_counts(normalize=True)
    for part in parts.values():
        assert (part["label"].value_counts(normalize=True) - overall).abs().max() < 0.03
        assert list(part.columns) == ["text", "label"]


def test_seeded(frame, tiny_settings):
    first, second = split.split(frame, tiny_settings), split.split(frame, tiny_settings)
    assert all(first[name].equals(second[name]) for name in split.SPLITS)


def test_held_out_rows_are_the_test_split(frame, tiny_settings):
    held = frame.head(50).assign(subset="test")
    parts = split.split(pd.concat([held, frame.iloc[50:]]), tiny_settings)
    assert sorted(parts["test"]["text"]) == sorted(held["text"])


def test_test_label_unseen_in_training_fails(frame, tiny_settings):
    held = pd.DataFrame({"text": ["new"], "label": ["weather"], "subset": ["test"]})
    with pytest.raises(MlopsError, match="never occur in the training data"):
        split.split(pd.concat([frame, held]), tiny_settings)
