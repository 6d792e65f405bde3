"""`settings.train` as the Hugging Face Trainer's arguments, with the precision and determinism decided here:
bf16 where the GPU supports it, fp32 and bit-for-bit repeatable runs on CPU."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mlops.ml.progress import bars_shown

if TYPE_CHECKING:
    from mlops.core.settings import Settings


def training_arguments(settings: Settings, output_dir: Path, steps_per_epoch: int, group_by_length: bool = True,
                       select_best: bool = True, max_steps: int = -1, evaluate: bool = True) -> Any:
    """`settings.train` as the Trainer's arguments. `max_steps` > 0 ends the run (and its linear decay) there, with
    the warmup of the configured epochs; `evaluate` off: no validation passes (a refit has seen those rows)."""
    # imported when called: transformers loads its training modules lazily, and only a run needs them
    from transformers import TrainingArguments

    cuda = torch.cuda.is_available()
    train = settings.train
    total_steps = int(np.ceil(steps_per_epoch / train.grad_accum_steps * train.epochs))
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=train.epochs,
        max_steps=max_steps,
        per_device_train_batch_size=train.batch_size,
        per_device_eval_batch_size=max(64, train.batch_size),
        gradient_accumulation_steps=train.grad_accum_steps,
        learning_rate=train.lr,
        weight_decay=train.weight_decay,
        warmup_steps=int(train.warmup_ratio * total_steps),
        lr_scheduler_type="linear",
        train_sampling_strategy="group_by_length" if group_by_length else "random",
        eval_strategy="steps" if evaluate else "no",
        eval_steps=train.eval_steps,
        save_strategy="steps",
        save_steps=train.eval_steps,
        save_total_limit=2,
        load_best_model_at_end=select_best and evaluate,
        metric_for_best_model="macro_f1",
        greater_is_better=True,
        logging_steps=max(1, min(25, train.eval_steps)),
        report_to=[],
        seed=settings.seed,
        data_seed=settings.seed,
        full_determinism=not cuda,  # bit-for-bit repeatable on CPU
        use_cpu=not cuda,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        dataloader_num_workers=0,
        dataloader_pin_memory=cuda,
        disable_tqdm=not bars_shown(),  # MLOPS_PROGRESS=0 under Airflow: ProgressLine's lines only
    )
