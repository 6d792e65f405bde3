"""The Trainer every stage that trains builds, runs and reports the same way (train, distill, refit).

The Trainer (on accelerate) owns the loop, devices, mixed precision, distributed training, checkpoints and
logging; this module hands it the data (length-grouped batches, dynamic padding), the arguments and the
validation metrics, and reduces its result to the summary a stage writes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.adapters.transformers_trainer import LifecycleTrainer
from mlops.ml.training.arguments import training_arguments
from mlops.ml.training.metrics import compute_metrics

if TYPE_CHECKING:
    from mlops.core.settings import Settings
    from mlops.ml.training.data import EncodedTexts


def build_trainer(settings: Settings, model: Any, tokenizer: Any, train_set: EncodedTexts,
                  validation_set: EncodedTexts, checkpoints: Path, callbacks: list[Any], select_best: bool = True,
                  trainer_class: type = LifecycleTrainer, max_steps: int = -1, evaluate: bool = True,
                  **extra: Any) -> Any:
    """The Trainer every stage that trains uses (train, distill): `settings.train`'s arguments, length-grouped
    batches seeded per epoch, dynamic padding, validation macro-F1, checkpoints under `checkpoints`; `extra` goes
    to `trainer_class` (distillation's teacher and loss weights)."""
    # imported when called: transformers loads its training modules lazily, and only a run needs them
    from transformers import DataCollatorWithPadding

    steps_per_epoch = max(1, -(-len(train_set) // settings.train.batch_size))
    return trainer_class(
        model=model,
        args=training_arguments(settings, checkpoints, steps_per_epoch, select_best=select_best,
                                max_steps=max_steps, evaluate=evaluate),
        processing_class=tokenizer,
        train_dataset=train_set,
        eval_dataset=validation_set,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_metrics,
        callbacks=callbacks,
        **extra,
    )


def fit(trainer: Any, resume: str | None, stage: str = "train") -> tuple[Any, float, dict[str, float]]:
    """Train (from `resume` when an interrupted run left it), then evaluate the kept weights: (result, wall s,
    final validation metrics)."""
    if resume:
        print(f"{stage}: resuming from {resume}", flush=True)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    wall = time.perf_counter() - started
    return result, wall, trainer.evaluate()  # the best checkpoint, reloaded at the end


def fit_summary(trainer: Any, result: Any, final: dict[str, float], wall: float, resume: str | None,
                select_best: bool) -> dict[str, Any]:
    """What a training run reports, whichever stage ran it."""
    return {
        "steps": trainer.state.global_step,
        "best_step": int(trainer.state.best_model_checkpoint.rsplit("-", 1)[1])
        if select_best and trainer.state.best_model_checkpoint else None,  # None: the last weights were kept
        "resumed_from": Path(resume).name if resume else None,
        "wall_seconds": round(wall, 1),
        "samples_per_second": round(result.metrics.get("train_samples_per_second", 0.0), 2),
        "train_loss": round(result.training_loss, 4),
        "validation_accuracy": round(final["eval_accuracy"], 4),
        "validation_macro_f1": round(final["eval_macro_f1"], 4),
        "device": str(trainer.args.device),
        "processes": trainer.args.world_size,
        "precision": "bf16" if trainer.args.bf16 else "fp32",
    }
