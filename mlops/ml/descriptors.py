"""Text descriptors that monitoring compares, computed one way everywhere.

The service computes them when it logs hashes instead of texts, and the
monitor computes them for the reference and for logs that kept the text; one
definition keeps both sides of a comparison the same measurement. (Evidently's
own descriptors would need the text itself, and its OOV and sentiment ones
download nltk data at run time, which fails offline.)
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

DESCRIPTORS = ("text_length", "word_count", "non_letter_share")


def describe(texts: Sequence[str]) -> pd.DataFrame:
    """Length in characters, number of words, and the share of characters that are neither letters nor spaces."""
    series = pd.Series(list(texts), dtype="object").astype(str)
    lengths = series.str.len()
    letters_or_space = series.str.count(r"[^\W\d_]|\s")
    return pd.DataFrame({
        "text_length": lengths.astype(float),
        "word_count": series.str.count(r"\S+").astype(float),
        "non_letter_share": ((lengths - letters_or_space) / lengths.clip(lower=1)).astype(float),
    })
