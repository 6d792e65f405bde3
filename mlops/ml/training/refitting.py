"""Training once more, on more rows, with a recipe a selection run already chose.

train's refit (`train.refit`) trains again on train + validation for as many epochs' worth of steps as the
selection run's best checkpoint; the refit stage retrains the judged candidate's recipe on every feedback row.
Either way it starts where the selection run started (same seed, same head initialisation), does not evaluate
(it has seen the validation rows) and, killed, resumes.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops.ml.training.callbacks import ProgressLine
from mlops.ml.training.checkpoints import resumable_checkpoint
from mlops.ml.training.data import EncodedTexts, encode_frame
from mlops.ml.training.start import load_base
from mlops.ml.training.trainer import build_trainer

if TYPE_CHECKING:
    from mlops.core.settings import Settings


def refit_steps(best_step: int, selection_rows: int, all_rows: int, settings: Settings) -> int:
    """The selection run's best step as that many epochs' worth of steps on the larger set."""
    def per_epoch(rows: int) -> int:
        return math.ceil(math.ceil(rows / settings.train.batch_size) / settings.train.grad_accum_steps)

    return max(1, round(best_step * per_epoch(all_rows) / per_epoch(selection_rows)))


def refit(settings: Settings, labels: list[str], start: Path | None, rows: pd.DataFrame, validation_set: EncodedTexts,
          steps: int, key: str, checkpoints: Path, stage: str = "train", what: str = "train + validation"
          ) -> tuple[Any, Any, dict[str, Any]]:
    """Fine-tune again from the selection run's start (same seed, same head initialisation) on `rows` (train +
    validation; the refit stage's: every feedback row) for `steps` steps, without evaluating: (trainer, tokenizer,
    what it did); `steps` -1: `train.epochs` of them. Killed, it resumes."""
    # imported when called: transformers loads its training modules lazily, and only a run needs them
    from transformers import set_seed

    set_seed(settings.seed)
    tokenizer, model = load_base(settings, labels, start)
    rows_set = encode_frame(tokenizer, rows, labels, settings.model.max_length)
    resume = resumable_checkpoint(checkpoints, key)
    length = f"{steps} steps" if steps > 0 else f"{settings.train.epochs} epochs"
    print(f"{stage}: refitting on {len(rows_set)} rows ({what}) for {length}", flush=True)
    trainer = build_trainer(settings, model, tokenizer, rows_set, validation_set, checkpoints,
                            [ProgressLine(settings.train.batch_size, "refit")], select_best=False, max_steps=steps,
                            evaluate=False)
    if resume:
        print(f"{stage}: refit resuming from {resume}", flush=True)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    return trainer, tokenizer, {"rows": len(rows_set), "steps": trainer.state.global_step,
                                "resumed_from": Path(resume).name if resume else None,
                                "wall_seconds": round(time.perf_counter() - started, 1)}
