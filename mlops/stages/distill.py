"""Stage `distill`: a smaller, faster student pruned from the candidate and distilled from it.

The student starts as the candidate with some of its encoder layers removed
(`distill.layers`: every other one, or the first `keep_layers`), then learns
on the train split from the candidate's temperature-softened probabilities
mixed with the true labels (`distill.temperature`, `distill.alpha`). It trains
with the training library's Trainer and arguments (mlops/ml/training/), as
train does (batch size, warmup, checkpoints every `train.eval_steps`, best
validation macro-F1), at `distill.epochs` and `distill.lr`: deterministic on
CPU, and resumed from its newest checkpoint after a kill, ending as an
uninterrupted run would. The output is a model directory like the
candidate's; the optimize stage converts it and the gate judges it as any
other serving variant. Disabled, the stage writes only its marker
(distill.json), so the pipeline keeps one shape.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.core.errors import MlopsError
from mlops.core.io import file_digest, write_json
from mlops.core.stage_io import StageIO
from mlops.ml.distillation import DistillationTrainer, encoder_layers, kept_layers, prune_layers
from mlops.ml.model import read_label_map, set_cpu_threads
from mlops.ml.training.callbacks import progress_callbacks
from mlops.ml.training.checkpoints import checkpoints_of, resumable_checkpoint, run_key
from mlops.ml.training.data import encode_frame, load_splits
from mlops.ml.training.processes import is_main_process
from mlops.ml.training.saving import save_trained
from mlops.ml.training.start import load_base
from mlops.ml.training.trainer import build_trainer, fit, fit_summary

if TYPE_CHECKING:
    from mlops.core.settings import Settings

MARKER = "distill.json"  # in the output directory: what the stage did (or that it was off)


class DistillIO(StageIO):
    """The candidate (`--model`: the teacher), the split to learn on, the student's directory and its summary."""

    stage = "distill"
    model: Path
    split_dir: Path
    out: Path
    metrics: Path


def student_settings(settings: Settings) -> Settings:
    """train's settings at distillation's own epochs and learning rate (everything else as train)."""
    options = settings.distill
    return settings.model_copy(update={"train": settings.train.model_copy(
        update={"epochs": options.epochs, "lr": options.lr})})


def make_student(teacher: Any, settings: Settings) -> tuple[Any, list[int]]:
    """A copy of the teacher pruned to the layers `distill.layers` keeps."""
    total = len(encoder_layers(teacher))
    keep = kept_layers(total, settings.distill.layers, settings.distill.keep_layers)
    return prune_layers(copy.deepcopy(teacher), keep), keep


def write_disabled(out: Path) -> dict[str, Any]:
    """distill.enabled is off: an output directory holding only the marker, no model."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    summary = {"enabled": False, "why": "distill.enabled is off: no student"}
    write_json(summary, out / MARKER)
    return summary


def distill(settings: Settings, teacher_dir: Path, split_dir: Path, out: Path) -> dict[str, Any]:
    """Prune the teacher, distil the student on the train split, save it on the main process; what it did."""
    # imported when called: transformers loads its training modules lazily, and only a run needs them
    from transformers import set_seed

    if not settings.distill.enabled:
        return write_disabled(out)
    set_cpu_threads()
    set_seed(settings.seed)
    if not (Path(teacher_dir) / "model.safetensors").is_file():
        raise MlopsError(f"distill: no safetensors model in {teacher_dir} (run `mlops train`)")
    labels = read_label_map(teacher_dir)["labels"]
    train_frame, validation_frame, _ = load_splits(settings, split_dir)
    unknown = sorted((set(train_frame["label"]) | set(validation_frame["label"])) - set(labels))
    if unknown:
        raise MlopsError(f"distill: the split has labels the teacher {teacher_dir} does not know: {unknown}")
    tokenizer, teacher = load_base(settings, labels, Path(teacher_dir))
    student, keep = make_student(teacher, settings)
    settings = student_settings(settings)
    train_set, validation_set = (encode_frame(tokenizer, frame, labels, settings.model.max_length)
                                 for frame in (train_frame, validation_frame))
    checkpoints = checkpoints_of(out)
    teacher_digest = file_digest(Path(teacher_dir) / "model.safetensors", "sha256")
    resume = resumable_checkpoint(checkpoints, run_key(settings, split_dir, f"teacher:{teacher_digest}",
                                                       extra={"distill": settings.distill.model_dump()}))
    options = settings.distill
    print(f"distill: {len(keep)} of {len(encoder_layers(teacher))} layers ({options.layers}: {keep}), "
          f"temperature {options.temperature}, alpha {options.alpha}, {options.epochs} epochs at lr {options.lr}",
          flush=True)
    trainer = build_trainer(settings, student, tokenizer, train_set, validation_set, checkpoints,
                            progress_callbacks(settings, True, "distill"), trainer_class=DistillationTrainer,
                            teacher=teacher, temperature=options.temperature, alpha=options.alpha)
    result, wall, final = fit(trainer, resume, "distill")
    summary = {"enabled": True, "teacher": str(teacher_dir), "teacher_sha256": teacher_digest,
               "teacher_layers": len(encoder_layers(teacher)), "kept_layers": keep, "train_rows": len(train_set),
               "epochs": options.epochs, **options.model_dump(exclude={"enabled", "epochs"}),
               **fit_summary(trainer, result, final, wall, resume, True)}
    if is_main_process():
        save_trained(trainer, tokenizer, out, labels, settings, checkpoints)
        write_json(summary, out / MARKER)
        print(f"distill: student of {len(keep)} layers, {summary['train_rows']} rows x {summary['epochs']} epochs "
              f"({summary['steps']} steps, best {summary['best_step']}) in {summary['wall_seconds']}s; validation "
              f"accuracy {summary['validation_accuracy']}, macro-F1 {summary['validation_macro_f1']} -> {out}")
    return summary


def run(settings: Settings, io: DistillIO) -> dict[str, Any]:
    """Distil (or write the disabled marker), then the summary (under torchrun, rank 0 alone writes)."""
    summary = distill(settings, io.model, io.split_dir, io.out)
    if is_main_process():
        write_json(summary, io.metrics)
    return summary
