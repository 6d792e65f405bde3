"""The shifted traffic the loop benchmarks meet, all in the label space of their champion.

- `generated`: the generated corpus's `shifted` variant (new products, new phrasing);
- `ag_headlines`: AG News headlines alone (titles of the official test file), against a champion trained on
  title + description;
- `ag_typos`: AG News test articles (title + description) with keyboard typos in 40% of the words of four
  letters or more (one letter dropped, doubled or swapped; seeded);
- `ag_leads`: the lead of AG News test articles as a link preview or a news ticker shows it: the description's
  first `LEAD_WORDS` words, without the headline and without the dateline (`WASHINGTON (Reuters) - `).

Each row keeps `title`, the headline of the test article it came from (empty for the generated shift), so a
benchmark can leave the test rows behind its traffic out of the original-test score.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

AG_NAMES = {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}
SHIFTS = ("generated", "ag_headlines", "ag_typos", "ag_leads")
LEAD_WORDS = 10
DATELINE = r"^.{0,60}?\s-{1,2}\s"  # `CITY (Agency) - ` or `Agency - ` at the start of a description


def add_typos(text: str, rng: np.random.Generator, share: float = 0.4) -> str:
    """Keyboard-style damage: in `share` of the words of 4+ letters, one letter dropped, doubled or swapped."""
    words = text.split()
    for at, word in enumerate(words):
        if len(word) < 4 or rng.random() >= share:
            continue
        i = int(rng.integers(1, len(word) - 1))
        kind = rng.integers(3)
        words[at] = (word[:i] + word[i + 1:] if kind == 0 else word[:i] + word[i] + word[i:] if kind == 1
                     else word[:i - 1] + word[i] + word[i - 1] + word[i + 1:])
    return " ".join(words)


def lead(descriptions: pd.Series, words: int = LEAD_WORDS) -> pd.Series:
    """The first `words` words of each description, its dateline and line-break backslashes removed."""
    body = descriptions.str.replace("\\", " ", regex=False).str.replace(DATELINE, "", regex=True)
    return body.str.split().str[:words].str.join(" ")


def read_ag_test(data: Path, seed: int) -> pd.DataFrame:
    """The official AG News test file, shuffled with `seed`: label (class name), title, description."""
    frame = pd.read_csv(data / "ag_news" / "test.csv", header=None, dtype=str,
                        names=["label", "title", "description"], keep_default_na=False)
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    frame["label"] = frame["label"].map(AG_NAMES)
    return frame


def ag_shift(data: Path, shift: str, rows: int, seed: int) -> pd.DataFrame:
    """`rows` texts of an AG News shift (text, label, title), one per distinct headline."""
    frame = read_ag_test(data, seed).drop_duplicates("title").reset_index(drop=True)
    if shift == "ag_headlines":
        texts = frame["title"].str.strip()
    elif shift == "ag_typos":
        rng = np.random.default_rng(seed)
        full = (frame["title"] + " " + frame["description"]).str.replace("\\", " ", regex=False).str.strip()
        texts = pd.Series([add_typos(text, rng) for text in full])
    elif shift == "ag_leads":
        texts = lead(frame["description"])
    else:
        raise ValueError(f"unknown AG News shift {shift!r}: one of {SHIFTS[1:]}")
    return pd.DataFrame({"text": texts, "label": frame["label"], "title": frame["title"].str.strip()}).head(rows)
