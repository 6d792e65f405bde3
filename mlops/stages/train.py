"""Stage `train`: fine-tune a sequence classifier with the Hugging Face Trainer.

The Trainer (on accelerate) owns the loop, devices, mixed precision,
distributed training, checkpoints and logging; this module supplies the data
(tokenised once, unpadded, batched by length so dynamic padding wastes little)
and decides the precision: bf16 where the GPU supports it, fp32 on CPU. The
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

The distill stage (mlops/stages/distill.py) trains its student with the same
pieces (build_trainer, fit, resumable_checkpoint, save_trained), so the two
stages share one loop, one resume rule and one model directory layout.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import TrainerCallback

from mlops.adapters.transformers_trainer import LifecycleTrainer
from mlops.core.errors import MlopsError
from mlops.core.io import atomic_path, read_table, write_json
from mlops.core.settings import Settings
from mlops.ml.model import read_label_map, resolve_base, save_label_map, set_cpu_threads
from mlops.ml.progress import bars_shown
from mlops.ml.text_repairs import apply_text_repairs
from mlops.ml.tracking import flat_numbers, open_run, run_name
from mlops.stages.split import FEEDBACK

RUN_KEY = "run-key.json"


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


def classification_metrics(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(labels, predictions)),
            "macro_f1": float(f1_score(labels, predictions, average="macro", zero_division=0))}


def compute_metrics(prediction: Any) -> dict[str, float]:
    return classification_metrics(prediction.label_ids, np.argmax(prediction.predictions, axis=-1))


def training_arguments(settings: Settings, output_dir: Path, steps_per_epoch: int, group_by_length: bool = True,
                       select_best: bool = True, max_steps: int = -1, evaluate: bool = True) -> Any:
    """`settings.train` as the Trainer's arguments. `max_steps` > 0 ends the run (and its linear decay) there, with
    the warmup of the configured epochs; `evaluate` off: no validation passes (a refit has seen those rows)."""
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


def run_key(settings: Settings, split_dir: Path, start: str = "base", extra: dict[str, Any] | None = None) -> str:
    """What a checkpoint must match to be resumed: the data, the starting weights and every setting that shapes
    training (`extra`: a caller's own, such as distillation's)."""
    digest = hashlib.sha256(json.dumps({"seed": settings.seed, "model": settings.model.model_dump(),
                                        "train": settings.train.model_dump(), "start": start,
                                        **({"extra": extra} if extra else {})},
                                       sort_keys=True).encode())
    for name in ("train", "validation"):
        digest.update((split_dir / f"{name}.parquet").read_bytes())
    return digest.hexdigest()


def resumable_checkpoint(checkpoints: Path, key: str) -> str | None:
    """The newest checkpoint of an interrupted run with the same key; otherwise start clean.

    Not transformers' get_last_checkpoint: after kill -9 the newest folder may be half-written (no trainer_state.json).
    """
    marker = checkpoints / RUN_KEY
    if marker.is_file() and json.loads(marker.read_text()).get("key") == key:
        done = sorted(checkpoints.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        complete = [p for p in done if (p / "trainer_state.json").is_file()]
        if complete:
            return str(complete[-1])
    shutil.rmtree(checkpoints, ignore_errors=True)
    checkpoints.mkdir(parents=True)
    marker.write_text(json.dumps({"key": key}))
    return None


class ProgressLine(TrainerCallback):
    """A console line per logging step: loss, learning rate, samples/s and ETA."""

    def __init__(self, batch_size: int, stage: str = "train") -> None:
        self.batch_size, self.stage = batch_size, stage
        self.started = time.perf_counter()
        self.first_step: int | None = None

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs or "loss" not in logs:
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


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], h["eval_macro_f1"], h["eval_loss"]) for h in history if "eval_macro_f1" in h]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    if losses:
        left.plot(*zip(*losses, strict=True), label="train loss")
    if evals:
        steps, f1, eval_loss = zip(*evals, strict=True)
        left.plot(steps, eval_loss, marker="o", label="validation loss")
        right.plot(steps, f1, marker="o", color="tab:green")
    left.set(xlabel="step", title="loss")
    left.legend()
    right.set(xlabel="step", title="validation macro-F1", ylim=(0, 1.02))
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


def champion_start(settings: Settings, labels: list[str], tag: str | None = None
                   ) -> tuple[str | None, Path | None, str]:
    """The champion to continue from (tag, weights), or none and why not; `tag` names a stored model instead of
    the registry's champion (a refit starts where the judged candidate started, whoever is champion now)."""
    import bentoml

    from mlops.core import registry

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


def load_splits(settings: Settings, split_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    train_frame, validation_frame = (read_table(split_dir / f"{name}.parquet") for name in ("train", "validation"))
    if settings.train.max_train_samples and len(train_frame) > settings.train.max_train_samples:
        train_frame = train_frame.sample(n=settings.train.max_train_samples, random_state=settings.seed)
    return train_frame, validation_frame, sorted(set(train_frame["label"]) | set(validation_frame["label"]))


def encode_frame(tokenizer: Any, frame: pd.DataFrame, labels: list[str], max_length: int) -> EncodedTexts:
    """A split's texts tokenised, and its labels as ids in the order of `labels` (the model's label map)."""
    label_ids = {label: index for index, label in enumerate(labels)}
    return EncodedTexts(tokenizer, frame["text"].tolist(), [label_ids[x] for x in frame["label"]], max_length)


def progress_callbacks(settings: Settings, select_best: bool, stage: str = "train") -> list[Any]:
    """The console progress line, and early stopping where a best checkpoint is selected and patience is set."""
    from transformers import EarlyStoppingCallback

    callbacks: list[Any] = [ProgressLine(settings.train.batch_size, stage)]
    if settings.train.early_stopping_patience and select_best:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=settings.train.early_stopping_patience))
    return callbacks


def build_trainer(settings: Settings, model: Any, tokenizer: Any, train_set: EncodedTexts,
                  validation_set: EncodedTexts, checkpoints: Path, callbacks: list[Any], select_best: bool = True,
                  trainer_class: type = LifecycleTrainer, max_steps: int = -1, evaluate: bool = True,
                  **extra: Any) -> Any:
    """The Trainer every stage that trains uses (train, distill): `settings.train`'s arguments, length-grouped
    batches seeded per epoch, dynamic padding, validation macro-F1, checkpoints under `checkpoints`; `extra` goes
    to `trainer_class` (distillation's teacher and loss weights)."""
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


def save_trained(trainer: Any, tokenizer: Any, out: Path, labels: list[str], settings: Settings,
                 *checkpoints: Path) -> None:
    """The self-contained model directory (safetensors, tokenizer, label map); the checkpoints go once it is."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    trainer.save_model(str(out))
    (out / "training_args.bin").unlink(missing_ok=True)  # a pickle; nothing here loads it
    tokenizer.save_pretrained(str(out))
    save_label_map(out, labels, settings.model.max_length, settings.model.repairs())
    for folder in checkpoints:
        shutil.rmtree(folder, ignore_errors=True)


def checkpoints_of(out: Path) -> Path:
    """Where a run writing `out` keeps its checkpoints: beside it, hidden."""
    return out.parent / f".{out.name}-checkpoints"


SELECTION = "selection.json"  # in the checkpoints folder: a finished selection run, which a refit resumes after


def refit_checkpoints_of(out: Path) -> Path:
    """Where the refit of a run writing `out` keeps its checkpoints."""
    return out.parent / f".{out.name}-refit-checkpoints"


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


def select(settings: Settings, model: Any, tokenizer: Any, labels: list[str], train_set: EncodedTexts,
           validation_set: EncodedTexts, checkpoints: Path, resume: str | None, select_best: bool, live_dir: Path,
           curves: Path | None, tracker: Any = None) -> tuple[Any, dict[str, Any]]:
    """The training run validation watches (and picks the best checkpoint of): (trainer, its summary); with a
    `tracker` (train.report_to), the Trainer's callback for it writes the curves into its run."""
    from dvclive import Live
    from transformers.integrations import DVCLiveCallback

    callbacks = progress_callbacks(settings, select_best)
    # dvc.yaml already declares these metrics and plots: dvclive must not append its own entries
    # Only the main process tracks: under torchrun every rank would write (and re-read) the same dvclive files.
    main_process = int(os.environ.get("RANK", "0")) == 0
    tracking = Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=False, report=None, resume=bool(resume)) \
        if main_process else contextlib.nullcontext()
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
    if curves is not None and trainer.is_world_process_zero():
        plot_curves(trainer.state.log_history, curves)
    return trainer, fit_summary(trainer, result, final, wall, resume, select_best)


def train(settings: Settings, split_dir: Path, out: Path, live_dir: Path, curves: Path | None = None) -> dict[str, Any]:
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
        if main_process() else None
    if refitting and selected.is_file():  # killed while refitting: the selection run is done already
        trainer, summary = None, json.loads(selected.read_text())
        print(f"train: the selection run finished before (best step {summary['best_step']})", flush=True)
    else:
        trainer, summary = select(settings, model, tokenizer, labels, train_set, validation_set, checkpoints,
                                  resume, select_best, live_dir, curves, tracker)
        if refitting and summary["best_step"] and trainer.is_world_process_zero():
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
    if trainer.is_world_process_zero():
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


def main_process() -> bool:
    """Whether this is the process that writes (rank 0 under torchrun or accelerate; the only one otherwise)."""
    from transformers.trainer_utils import is_main_process

    return is_main_process(int(os.environ.get("LOCAL_RANK", -1))) and int(os.environ.get("RANK", 0)) == 0


def run(settings: Settings, split_dir: Path, out: Path, metrics: Path, live_dir: Path,
        curves: Path | None = None) -> dict[str, Any]:
    summary = train(settings, split_dir, out, live_dir, curves)
    if main_process():
        write_json(summary, metrics)
    return summary
