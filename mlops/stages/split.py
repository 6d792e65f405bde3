"""Stage `split`: stratified, seeded train/validation/test.

Rows ingested from a held-out test source stay the test split (that is what a
published benchmark means by its test set); otherwise the test split is carved
from the data like the validation split. Stratifying keeps every class in
every split even for small datasets.

Rows of labelled feedback batches are split per batch: a seeded, stratified
`feedback.recent_share` of each is held out as the recent test set
(`recent.parquet`: what the traffic looks like now, which the original test
split cannot tell), and the rest joins the training split, repeated
`feedback.oversample` times so that a few hundred labels weigh against
thousands of original rows. Training rows keep their `origin` (main or
feedback): a retrain that continues from the champion learns from the
feedback rows and a replay sample of the main ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from sklearn.model_selection import train_test_split

from mlops.core.errors import MlopsError
from mlops.core.io import read_table, write_table
from mlops.core.splits import FEEDBACK, MAIN, RECENT, SPLITS
from mlops.core.stage_io import StageIO

if TYPE_CHECKING:
    from mlops.core.settings import Settings


class SplitIO(StageIO):
    """The validated rows to split, and the folder the split files go to."""

    stage = "split"
    data: Path
    out_dir: Path


def stratified(frame: pd.DataFrame, share: float, seed: int, what: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    try:
        rest, part = train_test_split(frame, test_size=share, random_state=seed, stratify=frame["label"])
    except ValueError as error:
        raise MlopsError(f"split: cannot stratify the {what} split: {error}") from None
    return rest, part


def split(frame: pd.DataFrame, settings: Settings) -> dict[str, pd.DataFrame]:
    shares, seed = settings.data.split, settings.seed
    main = frame[frame["subset"] == "main"]
    held_out = frame[frame["subset"] == "test"]
    if held_out.empty:
        main, test = stratified(main, shares.test, seed, "test")
        validation_share = shares.validation / (1 - shares.test)
    else:
        test, validation_share = held_out, shares.validation
    train, validation = stratified(main, validation_share, seed, "validation")
    missing = set(test["label"]) - set(train["label"])
    if missing:
        raise MlopsError(f"split: test labels {sorted(missing)} never occur in the training data")
    learn, recent = hold_out_recent(frame[frame["subset"] == "feedback"], settings)
    # `origin` tells train which rows are feedback: continuing from the champion learns from those plus a replay
    train = pd.concat([train.assign(origin=MAIN), *[learn.assign(origin=FEEDBACK)] * settings.feedback.oversample],
                      ignore_index=True)
    parts = {name: part.drop(columns=["subset", "batch"], errors="ignore").reset_index(drop=True)
             for name, part in zip(SPLITS, (train, validation, test), strict=True)}
    parts[RECENT] = recent.drop(columns="subset", errors="ignore").reset_index(drop=True)
    return parts


def hold_out_recent(feedback: pd.DataFrame, settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per feedback batch, the rows to learn from and the seeded, stratified share held out as recent."""
    columns = ["text", "label", "batch"]
    feedback = feedback if "batch" in feedback else feedback.assign(batch="")
    learn, recent = [feedback.iloc[0:0][columns]], [feedback.iloc[0:0][columns]]
    share = settings.feedback.recent_share
    for _, batch in feedback[columns].groupby("batch", sort=True):
        held = max(1, round(share * len(batch))) if len(batch) > 1 else 0
        if held == 0:
            learn.append(batch)
            continue
        counts = batch["label"].value_counts()
        stratify = batch["label"] if counts.min() >= 2 and held >= len(counts) and len(batch) - held >= len(counts) \
            else None  # too few rows of some class to stratify: a plain seeded sample
        rest, part = train_test_split(batch, test_size=held, random_state=settings.seed, stratify=stratify)
        learn.append(rest)
        recent.append(part)
    return pd.concat(learn, ignore_index=True), pd.concat(recent, ignore_index=True)


def run(settings: Settings, io: SplitIO) -> dict[str, pd.DataFrame]:
    """Split the validated rows and write one Parquet file per split (recent.parquet included, maybe empty)."""
    parts = split(read_table(io.data), settings)
    for name, part in parts.items():
        write_table(part, io.out_dir / f"{name}.parquet")
    print("split: " + ", ".join(f"{name} {len(part)}" for name, part in parts.items())
          + (f" (train includes the feedback rows x{settings.feedback.oversample})" if len(parts[RECENT]) else "")
          + f" -> {io.out_dir}")
    return parts
