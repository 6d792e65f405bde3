"""What a training run reports while it runs (a console line per logging step) and when it stops early."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from transformers import EarlyStoppingCallback, TrainerCallback

from mlops.ml.training.processes import is_main_process

if TYPE_CHECKING:
    from mlops.core.settings import Settings


class ProgressLine(TrainerCallback):
    """A console line per logging step: loss, learning rate, samples/s and ETA."""

    def __init__(self, batch_size: int, stage: str = "train") -> None:
        self.batch_size, self.stage = batch_size, stage
        self.started = time.perf_counter()
        self.first_step: int | None = None

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        """Print the line, on the main process only (one line per step, not one per rank)."""
        if not is_main_process() or not logs or "loss" not in logs:
            return
        if self.first_step is None:  # measure from the first logged step: start-up is not throughput
            self.first_step, self.started = state.global_step, time.perf_counter()
            return
        elapsed = time.perf_counter() - self.started
        rate = (state.global_step - self.first_step) / elapsed if elapsed > 0 else 0.0
        samples = rate * self.batch_size * args.gradient_accumulation_steps * args.world_size
        eta = (state.max_steps - state.global_step) / rate if rate else float("nan")
        print(f"{self.stage}: step {state.global_step}/{state.max_steps} loss {logs['loss']:.4f} "
              f"lr {logs.get('learning_rate', 0):.2e} {samples:.1f} samples/s ETA {eta:.0f}s", flush=True)


def progress_callbacks(settings: Settings, select_best: bool, stage: str = "train") -> list[Any]:
    """The console progress line, and early stopping where a best checkpoint is selected and patience is set."""
    callbacks: list[Any] = [ProgressLine(settings.train.batch_size, stage)]
    if settings.train.early_stopping_patience and select_best:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=settings.train.early_stopping_patience))
    return callbacks
