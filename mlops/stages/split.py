"""Stage `split`: stratified, seeded train/validation/test.

Rows ingested from a held-out test source stay the test split (that is what a
published benchmark means by its test set); otherwise the test split is carved
from the data like the validation split. Stratifying keeps every class in
every split even for small datasets.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from mlops.core.errors import MlopsError
from mlops.core.io import read_table, write_table
from mlops.core.settings import Settings

SPLITS = ("train", "validation", "test")


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
    return {
        name: part.drop(columns="subset").reset_index(drop=True)
        for name, part in zip(SPLITS, (train, validation, test), strict=True)
    }


def run(settings: Settings, data: Path, out_dir: Path) -> dict[str, pd.DataFrame]:
    parts = split(read_table(data), settings)
    for name, part in parts.items():
        write_table(part, out_dir / f"{name}.parquet")
    print("split: " + ", ".join(f"{name} {len(part)}" for name, part in parts.items()) + f" -> {out_dir}")
    return parts
