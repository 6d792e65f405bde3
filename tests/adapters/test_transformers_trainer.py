"""The transformers adapter: the private sampler hook it overrides must still exist and be called."""

from __future__ import annotations

import inspect

from transformers import Trainer, TrainingArguments

from mlops.adapters.transformers_trainer import WRITTEN_FOR, EpochSeededLengthGroupedSampler, LifecycleTrainer


def test_trainer_still_builds_its_sampler_in_the_overridden_method():
    hook = getattr(Trainer, "_get_train_sampler", None)
    assert hook is not None, f"transformers.Trainer._get_train_sampler is gone (written for {WRITTEN_FOR})"
    assert "train_dataset" in inspect.signature(hook).parameters, \
        "transformers.Trainer._get_train_sampler no longer takes train_dataset"
    assert LifecycleTrainer._get_train_sampler is not hook
    fields = TrainingArguments.__dataclass_fields__
    assert "train_sampling_strategy" in fields, "TrainingArguments.train_sampling_strategy is gone"


def test_sampler_order_depends_only_on_seed_and_epoch():
    lengths = [5, 9, 3, 7, 2, 8, 6, 4] * 4
    first = EpochSeededLengthGroupedSampler(4, lengths=lengths, seed=3)
    again = EpochSeededLengthGroupedSampler(4, lengths=lengths, seed=3)
    assert list(first) == list(again)
    again.set_epoch(1)
    assert list(again) != list(first)
    assert sorted(first) == list(range(len(lengths)))
