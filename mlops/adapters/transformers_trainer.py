"""A Trainer whose length-grouped sampler is seeded per epoch, so a resumed run replays the same batches.

transformers builds its train sampler in `Trainer._get_train_sampler`, a
private method with no public hook; the override lives here, and
tests/adapters/test_transformers_trainer.py fails, naming it, when an upgrade
renames it or changes its signature.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import Trainer
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

WRITTEN_FOR = "transformers 5.23"


class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
    """Length-grouped batches (similar lengths together, less padding) in an order fixed by seed and epoch.

    transformers' own sampler draws from the global RNG, so a run resumed from
    a checkpoint sees other batches than an uninterrupted one; seeding per
    epoch (the Trainer calls set_epoch) makes a resumed run replay the same batches.
    """

    def __init__(self, *args: Any, seed: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Any:
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


class LifecycleTrainer(Trainer):
    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        if self.args.train_sampling_strategy != "group_by_length":
            return super()._get_train_sampler(train_dataset)
        return EpochSeededLengthGroupedSampler(
            self.args.train_batch_size * self.args.gradient_accumulation_steps,
            dataset=train_dataset if train_dataset is not None else self.train_dataset,
            model_input_name=self.processing_class.model_input_names[0] if self.processing_class else None,
            seed=self.args.data_seed if self.args.data_seed is not None else self.args.seed,
        )
