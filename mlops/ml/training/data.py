"""The splits a training run reads, tokenised once and unpadded (the collator pads each batch to its longest)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops.core.io import read_table

if TYPE_CHECKING:
    from mlops.core.settings import Settings


class EncodedTexts:
    """A map-style dataset of tokenised texts; padding is left to the collator."""

    def __init__(self, tokenizer: Any, texts: list[str], labels: list[int], max_length: int,
                 pad_to_max_length: bool = False) -> None:
        self.encodings = tokenizer(texts, truncation=True, max_length=max_length,
                                   padding="max_length" if pad_to_max_length else False)
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = {key: values[index] for key, values in self.encodings.items()}
        item["labels"] = self.labels[index]
        return item


def load_splits(settings: Settings, split_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The train and validation splits (train capped at `train.max_train_samples`, a seeded sample) and every
    label either holds, sorted: the model's label map."""
    train_frame, validation_frame = (read_table(split_dir / f"{name}.parquet") for name in ("train", "validation"))
    if settings.train.max_train_samples and len(train_frame) > settings.train.max_train_samples:
        train_frame = train_frame.sample(n=settings.train.max_train_samples, random_state=settings.seed)
    return train_frame, validation_frame, sorted(set(train_frame["label"]) | set(validation_frame["label"]))


def encode_frame(tokenizer: Any, frame: pd.DataFrame, labels: list[str], max_length: int) -> EncodedTexts:
    """A split's texts tokenised, and its labels as ids in the order of `labels` (the model's label map)."""
    label_ids = {label: index for index, label in enumerate(labels)}
    return EncodedTexts(tokenizer, frame["text"].tolist(), [label_ids[x] for x in frame["label"]], max_length)
