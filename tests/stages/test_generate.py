import pytest

from mlops.core.errors import MlopsError
from mlops.stages.generate import generate_corpus

CLASSES = ("billing", "delivery", "technical", "account", "feedback")


def test_same_seed_same_rows():
    assert generate_corpus(300, CLASSES, seed=7).equals(generate_corpus(300, CLASSES, seed=7))


def test_other_seed_other_rows():
    assert not generate_corpus(300, CLASSES, seed=7).equals(generate_corpus(300, CLASSES, seed=8))


def test_rows_are_distinct_labelled_and_near_balanced():
    frame = generate_corpus(1000, CLASSES, seed=1)
    assert len(frame) == 1000 and frame["text"].is_unique
    assert set(frame["label"]) == set(CLASSES)
    shares = frame["label"].value_counts(normalize=True)
    assert shares.min() > 0.15 and shares.max() < 0.25  # balanced up to 3% label noise


def test_texts_are_varied():
    frame = generate_corpus(1000, CLASSES, seed=1)
    lengths = frame["text"].str.split().str.len()
    assert lengths.min() >= 4 and lengths.max() >= 30
    assert frame["text"].str.split().explode().nunique() > 400  # a real vocabulary, not a handful of words


def test_unknown_class_is_named():
    with pytest.raises(MlopsError, match="unknown class.*'weather'"):
        generate_corpus(100, ("billing", "weather"), seed=1)
