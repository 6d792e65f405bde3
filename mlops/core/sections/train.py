"""The `train` section: fine-tuning with the Hugging Face Trainer, and continuing from the champion."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlops.core.sections.base import Strict


class ContinueSettings(Strict):
    """Fine-tune the champion further when labelled feedback is new, instead of the base model from scratch."""
    enabled: bool = Field(default=False, description="Whether a retrain brought by labelled feedback continues from "
                                                     "the champion (same `model.base`, same labels) instead of "
                                                     "fine-tuning the base model again; without feedback rows or a "
                                                     "fitting champion it starts from the base model and says why.")
    replay_rows: int = Field(default=800, ge=0, description="Original training rows replayed (seeded) beside the "
                                                             "feedback rows, so that the model does not forget them.")
    epochs: float = Field(default=4, gt=0, description="Epochs of the continued training (it keeps the last weights).")
    lr: float = Field(default=5.0e-5, gt=0, description="Learning rate of the continued training.")



class TrainSettings(Strict):
    """The `train:` section: the fine-tuning recipe, the refit, and continued training from the champion."""

    epochs: float = Field(gt=0, description="Training epochs (a fraction is allowed).")
    batch_size: int = Field(ge=1, description="Texts per training batch, per process.")
    lr: float = Field(gt=0, description="Peak learning rate (linear warmup, then linear decay).")
    weight_decay: float = Field(ge=0, description="Weight decay of the optimiser.")
    warmup_ratio: float = Field(ge=0, lt=1, description="Share of the training steps over which the learning rate "
                                                        "warms up.")
    grad_accum_steps: int = Field(ge=1, description="Batches accumulated per optimiser step: effective batch = "
                                                    "batch_size x grad_accum_steps x processes.")
    eval_steps: int = Field(ge=1, description="Evaluate and checkpoint every N optimiser steps (the resume point of "
                                              "a killed run).")
    early_stopping_patience: int | None = Field(
        default=None, ge=1, description="Evaluations without a better validation macro-F1 before training stops "
                                        "(null: off).")
    max_train_samples: int | None = Field(default=None, ge=1, description="Cap on the training rows (null: all).")
    # After the validation split has chosen the step, train again on train + validation for that many epochs'
    # worth of steps and keep those weights (AutoGluon's refit_full): the held-out rows are data too.
    refit: bool = Field(default=False, description="Once validation has chosen the best step, train again from the "
                                                   "same start on train + validation rows for as many epochs' worth "
                                                   "of steps and keep those weights (twice the training time); "
                                                   "metrics/train.json keeps the selection run's validation figures.")
    continue_from_champion: ContinueSettings = Field(
        default=ContinueSettings(), description="How a retrain brought by labelled feedback continues from the "
                                                "champion.")
    report_to: Literal["none", "tensorboard", "mlflow", "wandb"] = Field(
        default="none", description="The experiment tracker each training run is logged to, with its params and "
                                    "the evaluate and gate metrics in the same run (mlops/ml/tracking.py); each "
                                    "tool is an optional extra of the same name. `none`: no tracker.")
    tensorboard_dir: str = Field(
        default="logs/tensorboard", min_length=1,
        description="`report_to: tensorboard`: the folder under which each run writes its event files "
                    "(`<folder>/<run name>`); point `tensorboard --logdir` at it.")
