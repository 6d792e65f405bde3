"""Stage `train`: fine-tune a sequence classifier with the Hugging Face Trainer.

The Trainer (on accelerate) owns the loop, devices, mixed precision,
distributed training, checkpoints and logging; the training library
(mlops/ml/training/) supplies the data (tokenised once, unpadded, batched by
length so dynamic padding wastes little) and decides the precision: bf16 where
the GPU supports it, fp32 on CPU. The
same command runs on several GPUs under `torchrun --nproc_per_node N -m mlops
train` or `accelerate launch -m mlops train`; only the main process writes.

A run checkpoints every `train.eval_steps` steps (evaluating then too, for
early stopping on validation macro-F1). Killed, it resumes from the newest
checkpoint when started again with the same data and settings, and ends where
an uninterrupted run would have. The saved model is a self-contained
directory: safetensors weights, tokenizer and the label map.

A retrain brought by labelled feedback may continue from the champion
(`train.continue_from_champion`) rather than fine-tune the base model from
scratch: a few hundred labels then move a model that is already good, on the
feedback rows plus a seeded replay sample of the original training rows (so
it does not forget them), for a few epochs at a lower learning rate. The new
model differs from the champion only where the labels say so, which is also
what lets a paired comparison on a few thousand rows show a real gain. It
continues only from a champion fine-tuned from the same `model.base` with
the same labels; otherwise, or with no feedback rows, it starts from the base
and says why. The champion's tag is part of the run key and of the metrics.

This module is the stage's own part: the selection run and its dvclive and
tracker records, the refit, the summary. The distill and refit stages train
with the same library pieces (build_trainer, fit, resumable_checkpoint,
save_trained), so the stages share one loop, one resume rule, one model
directory layout and one main-process check.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops.core.io import write_json
from mlops.core.stage_io import StageIO
from mlops.ml.model import set_cpu_threads
from mlops.ml.tracking import flat_numbers, open_run, run_name
from mlops.ml.training.callbacks import progress_callbacks
from mlops.ml.training.checkpoints import (
    SELECTION,
    checkpoints_of,
    refit_checkpoints_of,
    resumable_checkpoint,
    run_key,
)
from mlops.ml.training.curves import plot_curves
from mlops.ml.training.data import EncodedTexts, encode_frame, load_splits
from mlops.ml.training.processes import is_main_process
from mlops.ml.training.refitting import refit, refit_steps
from mlops.ml.training.saving import save_trained
from mlops.ml.training.start import load_base, plan_start
from mlops.ml.training.trainer import build_trainer, fit, fit_summary

if TYPE_CHECKING:
    from mlops.core.settings import Settings


class TrainIO(StageIO):
    """The split to learn from, the model directory, the summary, dvclive's folder and the curves plot."""

    stage = "train"
    split_dir: Path
    out: Path
    metrics: Path
    live_dir: Path
    curves: Path | None = None


def select(settings: Settings, model: Any, tokenizer: Any, labels: list[str], train_set: EncodedTexts,
           validation_set: EncodedTexts, checkpoints: Path, resume: str | None, select_best: bool, live_dir: Path,
           curves: Path | None, tracker: Any = None) -> tuple[Any, dict[str, Any]]:
    """The training run validation watches (and picks the best checkpoint of): (trainer, its summary); with a
    `tracker` (train.report_to), the Trainer's callback for it writes the curves into its run."""
    # imported when called: dvclive and transformers' integrations load only for a run that trains
    from dvclive import Live
    from transformers.integrations import DVCLiveCallback

    callbacks = progress_callbacks(settings, select_best)
    # dvc.yaml already declares these metrics and plots: dvclive must not append its own entries
    # Only the main process tracks: under torchrun every rank would write (and re-read) the same dvclive files.
    tracking = Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=False, report=None, resume=bool(resume)) \
        if is_main_process() else contextlib.nullcontext()
    params = {"model": settings.model.model_dump(), "train": settings.train.model_dump(),
              "train_rows": len(train_set), "labels": labels}
    if tracker is not None:
        tracker.log_params(params)
        callbacks.append(tracker.callback())
    with tracking as live:
        if live is not None:
            live.log_params(params)
        trainer = build_trainer(settings, model, tokenizer, train_set, validation_set, checkpoints,
                                [*callbacks, *([DVCLiveCallback(live=live)] if live is not None else [])],
                                select_best=select_best)
        result, wall, final = fit(trainer, resume)
    if curves is not None and is_main_process():
        plot_curves(trainer.state.log_history, curves)
    return trainer, fit_summary(trainer, result, final, wall, resume, select_best)


def train(settings: Settings, split_dir: Path, out: Path, live_dir: Path, curves: Path | None = None) -> dict[str, Any]:
    """Fine-tune from the base model or the champion, select on validation, refit if asked; save on the main
    process. The summary train.json holds."""
    # imported when called: transformers loads its training modules lazily, and only a run needs them
    from transformers import set_seed

    set_cpu_threads()
    set_seed(settings.seed)
    train_frame, validation_frame, labels = load_splits(settings, split_dir)
    train_frame, settings, started_from, start, why = plan_start(settings, train_frame, labels)
    print(f"train: starting {why}", flush=True)
    tokenizer, model = load_base(settings, labels, start)
    train_set, validation_set = (encode_frame(tokenizer, frame, labels, settings.model.max_length)
                                 for frame in (train_frame, validation_frame))
    checkpoints = checkpoints_of(out)
    key = run_key(settings, split_dir, started_from or "base")
    resume = resumable_checkpoint(checkpoints, key)
    # Continuing from the champion, the original validation split would pick the checkpoint that learnt least
    # from the feedback: it runs its fixed epochs and keeps the last weights (the gate judges both sets).
    select_best = started_from is None
    refitting = settings.train.refit and select_best and len(validation_frame) > 0
    selected = checkpoints / SELECTION
    # the team's experiment tracker (train.report_to): one run for this training, reopened by evaluate and gate
    tracker = open_run(settings.train.report_to, settings.train.tensorboard_dir, run_name()) \
        if is_main_process() else None
    if refitting and selected.is_file():  # killed while refitting: the selection run is done already
        trainer, summary = None, json.loads(selected.read_text())
        print(f"train: the selection run finished before (best step {summary['best_step']})", flush=True)
    else:
        trainer, summary = select(settings, model, tokenizer, labels, train_set, validation_set, checkpoints,
                                  resume, select_best, live_dir, curves, tracker)
        if refitting and summary["best_step"] and is_main_process():
            write_json(summary, selected)
        elif refitting:
            print("train: no refit: validation never chose a step (fewer steps than train.eval_steps)", flush=True)
    summary = {"train_rows": len(train_set), "epochs": settings.train.epochs, "started_from": started_from or "base",
               **summary}
    kept_checkpoints = [checkpoints]
    if refitting and summary["best_step"]:
        refit_dir = refit_checkpoints_of(out)
        steps = refit_steps(summary["best_step"], len(train_set), len(train_set) + len(validation_set), settings)
        trainer, tokenizer, summary["refit"] = refit(
            settings, labels, start, pd.concat([train_frame, validation_frame], ignore_index=True), validation_set,
            steps, run_key(settings, split_dir, started_from or "base", extra={"refit_steps": steps}), refit_dir)
        kept_checkpoints.append(refit_dir)
    if is_main_process():
        save_trained(trainer, tokenizer, out, labels, settings, *kept_checkpoints)
        if tracker is not None:
            tracker.log_metrics(flat_numbers({key: value for key, value in summary.items()
                                              if key.startswith("validation_")}, "train/"), trainer.state.global_step)
            tracker.save(out, trainer.state.global_step)
            tracker.close()
            print(f"train: logged to the {tracker.tool} run {tracker.pointer['run']}", flush=True)
        refitted = f"; refit on {summary['refit']['rows']} rows for {summary['refit']['steps']} steps" \
            if "refit" in summary else ""
        print(f"train: {summary['train_rows']} rows x {summary['epochs']} epochs ({summary['steps']} steps, best "
              f"{summary['best_step']}) in {summary['wall_seconds']}s ({summary['samples_per_second']} samples/s, "
              f"{summary['device']} x{summary['processes']}, {summary['precision']}); validation accuracy "
              f"{summary['validation_accuracy']}, macro-F1 {summary['validation_macro_f1']}{refitted} -> {out}")
    return summary


def run(settings: Settings, io: TrainIO) -> dict[str, Any]:
    """Train, then write the summary (the main process alone writes)."""
    summary = train(settings, io.split_dir, io.out, io.live_dir, io.curves)
    if is_main_process():
        write_json(summary, io.metrics)
    return summary
