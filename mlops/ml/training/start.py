"""Where fine-tuning starts: the base model, or the champion a feedback retrain continues from.

A retrain brought by labelled feedback may continue from the champion (`train.continue_from_champion`) rather
than fine-tune the base model from scratch: a few hundred labels then move a model that is already good, on the
feedback rows plus a seeded replay sample of the original training rows (so it does not forget them), for a
few epochs at a lower learning rate. It continues only from a champion fine-tuned from the same `model.base`
with the same labels; otherwise, or with no feedback rows, it starts from the base and says why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops.core import registry
from mlops.core.errors import MlopsError
from mlops.core.splits import FEEDBACK
from mlops.ml.model import read_label_map, resolve_base
from mlops.ml.text_repairs import apply_text_repairs

if TYPE_CHECKING:
    from mlops.core.settings import Settings


def champion_start(settings: Settings, labels: list[str], tag: str | None = None
                   ) -> tuple[str | None, Path | None, str]:
    """The champion to continue from (tag, weights), or none and why not; `tag` names a stored model instead of
    the registry's champion (a refit starts where the judged candidate started, whoever is champion now)."""
    # bentoml is imported when called: only a retrain on feedback looks in the model store
    import bentoml

    if tag is None:
        entry = registry.champion()
        if not entry:
            return None, None, "no champion yet"
        tag = entry["model"]
    try:
        stored = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        return None, None, f"champion {tag} is not in the BentoML store"
    base = json.loads(stored.info.metadata.get("params") or "{}").get("model", {}).get("base")
    if base != settings.model.base:
        return None, None, f"champion {tag} was fine-tuned from {base!r}, model.base is {settings.model.base!r}"
    path = Path(stored.path)
    theirs = read_label_map(path)["labels"]
    if theirs != labels:
        return None, None, f"champion {tag} has labels {theirs}, the data has {labels}"
    return tag, path, f"continuing from champion {tag}"


def plan_start(settings: Settings, train_frame: pd.DataFrame, labels: list[str], champion_tag: str | None = None
               ) -> tuple[pd.DataFrame, Settings, str | None, Path | None, str]:
    """Where fine-tuning starts and on which rows: (rows, settings, champion tag, its weights, why); `champion_tag`:
    continue from that stored model rather than the registry's champion."""
    options = settings.train.continue_from_champion
    feedback = train_frame["origin"] == FEEDBACK if "origin" in train_frame else pd.Series(False, train_frame.index)
    if not options.enabled:
        return train_frame, settings, None, None, "from the base model (train.continue_from_champion is off)"
    if not feedback.any():
        return train_frame, settings, None, None, "from the base model (no labelled feedback to continue on)"
    tag, path, why = champion_start(settings, labels, champion_tag)
    if tag is None:
        return train_frame, settings, None, None, f"from the base model ({why})"
    main = train_frame[~feedback]
    replay = main.sample(n=min(options.replay_rows, len(main)), random_state=settings.seed)
    rows = pd.concat([train_frame[feedback], replay], ignore_index=True)
    continued = settings.model_copy(update={"train": settings.train.model_copy(
        update={"epochs": options.epochs, "lr": options.lr})})
    return rows, continued, tag, path, (f"{why}: {int(feedback.sum())} feedback rows and a replay of {len(replay)} "
                                        f"original rows, {options.epochs} epochs at lr {options.lr}")


def load_base(settings: Settings, labels: list[str], start: Path | None = None) -> tuple[Any, Any]:
    """The tokenizer and model fine-tuning starts from: the base model's, or a champion's (safetensors only).

    The tokenizer applies `model.text_repairs` (this run's, which the saved label map will record)."""
    # imported when called: transformers loads its model classes lazily, and only a run needs them
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if start is not None:
        tokenizer = AutoTokenizer.from_pretrained(start)
        model = AutoModelForSequenceClassification.from_pretrained(start, use_safetensors=True)
    else:
        base = resolve_base(settings.model.base)
        try:
            tokenizer = AutoTokenizer.from_pretrained(base)
            model = AutoModelForSequenceClassification.from_pretrained(
                base, num_labels=len(labels), id2label=dict(enumerate(labels)),
                label2id={label: index for index, label in enumerate(labels)}, ignore_mismatched_sizes=True,
            )
        except OSError as error:
            raise MlopsError(f"model.base {settings.model.base!r}: cannot load it: "
                             f"{str(error).splitlines()[0]}") from None
    return apply_text_repairs(tokenizer, settings.model.repairs()), model
