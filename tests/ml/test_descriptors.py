"""Text descriptors: one definition for the service's hashed log and the monitor's reference."""

import pandas as pd
import pytest

from mlops.ml.descriptors import DESCRIPTORS, describe


def test_columns_are_the_declared_descriptors_in_order():
    frame = describe(["a"])
    assert tuple(frame.columns) == DESCRIPTORS == ("text_length", "word_count", "non_letter_share")
    assert frame.dtypes.tolist() == ["float64"] * 3


@pytest.mark.parametrize(("text", "length", "words", "share"), [
    ("Hello world", 11, 2, 0.0),                 # letters and a space: nothing else
    ("abc 123!", 8, 2, 0.5),                     # 4 of 8 are digits or punctuation
    ("a_b", 3, 1, 1 / 3),                        # an underscore is not a letter
    ("naïve café", 10, 2, 0.0),                  # accented letters are letters
    ("Привет мир", 10, 2, 0.0),                  # so are other scripts
    ("  two   spaces  ", 16, 2, 0.0),            # runs of whitespace separate words, count as spaces
    ("$$$", 3, 1, 1.0),
])
def test_descriptors_of_one_text(text, length, words, share):
    row = describe([text]).iloc[0]
    assert row["text_length"] == length
    assert row["word_count"] == words
    assert row["non_letter_share"] == pytest.approx(share)


def test_empty_text_has_zero_share_not_a_division_by_zero():
    row = describe([""]).iloc[0]
    assert (row["text_length"], row["word_count"], row["non_letter_share"]) == (0.0, 0.0, 0.0)


def test_rows_follow_the_texts_order():
    frame = describe(["aaaa", "b", "cc"])
    assert frame["text_length"].tolist() == [4.0, 1.0, 2.0]
    assert frame.index.tolist() == [0, 1, 2]


def test_no_texts_give_an_empty_frame_with_the_columns():
    frame = describe([])
    assert len(frame) == 0 and tuple(frame.columns) == DESCRIPTORS


def test_a_tuple_and_a_series_describe_like_a_list():
    texts = ["one two", "x!"]
    expected = describe(texts)
    pd.testing.assert_frame_equal(describe(tuple(texts)), expected)
    pd.testing.assert_frame_equal(describe(pd.Series(texts, index=[7, 9])), expected)
