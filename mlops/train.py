"""Stage `train`: fine-tune a sequence classifier with the Hugging Face Trainer.

The Trainer owns the loop, devices, mixed precision and logging; this module
supplies the data (tokenised once, unpadded, batched by length so that
dynamic padding wastes little) and decides the precision: bf16 where the GPU
supports it, fp32 on CPU. The saved model is a self-contained directory:
safetensors weights, tokenizer and the label map.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops.errors import MlopsError
from mlops.io import read_table, write_json
from mlops.model import resolve_base, save_label_map, set_cpu_threads
from mlops.settings import Settings


class EncodedTexts:
    """A map-style dataset of tokenised texts; padding is left to the collator."""

    def __init__(self, tokenizer: Any, texts: list[str], labels: list[int], max_length: int) -> None:
        self.encodings = tokenizer(texts, truncation=True, max_length=max_length)
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


def training_arguments(settings: Settings, output_dir: Path, steps_per_epoch: int) -> Any:
    import torch
    from transformers import TrainingArguments

    cuda = torch.cuda.is_available()
    train = settings.train
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=train.epochs,
        per_device_train_batch_size=train.batch_size,
        per_device_eval_batch_size=max(64, train.batch_size),
        learning_rate=train.lr,
        weight_decay=train.weight_decay,
        warmup_steps=int(train.warmup_ratio * steps_per_epoch * train.epochs),
        lr_scheduler_type="linear",
        train_sampling_strategy="group_by_length",
        eval_strategy="epoch",
        save_strategy="no",
        logging_steps=max(1, min(50, steps_per_epoch // 4)),
        report_to=[],
        seed=settings.seed,
        data_seed=settings.seed,
        use_cpu=not cuda,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        dataloader_num_workers=0,
        dataloader_pin_memory=cuda,
        disable_tqdm=False,
    )


def train(settings: Settings, split_dir: Path, out: Path, live_dir: Path) -> dict[str, Any]:
    from dvclive import Live
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        set_seed,
    )
    from transformers.integrations import DVCLiveCallback

    set_cpu_threads()
    set_seed(settings.seed)
    train_frame, validation_frame = (read_table(split_dir / f"{name}.parquet") for name in ("train", "validation"))
    if settings.train.max_train_samples and len(train_frame) > settings.train.max_train_samples:
        train_frame = train_frame.sample(n=settings.train.max_train_samples, random_state=settings.seed)
    labels = sorted(set(train_frame["label"]) | set(validation_frame["label"]))
    label_ids = {label: index for index, label in enumerate(labels)}

    base = resolve_base(settings.model.base)
    try:
        tokenizer = AutoTokenizer.from_pretrained(base)
        model = AutoModelForSequenceClassification.from_pretrained(
            base, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label_ids,
            ignore_mismatched_sizes=True,
        )
    except OSError as error:
        raise MlopsError(f"model.base {settings.model.base!r}: cannot load it: {str(error).splitlines()[0]}") from None

    def encode(frame: pd.DataFrame) -> EncodedTexts:
        return EncodedTexts(tokenizer, frame["text"].tolist(), [label_ids[x] for x in frame["label"]],
                            settings.model.max_length)

    train_set, validation_set = encode(train_frame), encode(validation_frame)
    steps_per_epoch = max(1, -(-len(train_set) // settings.train.batch_size))
    checkpoints = out.parent / f".{out.name}-checkpoints"
    # dvc.yaml already declares these metrics and plots: dvclive must not append its own entries
    with Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=False, report=None) as live:
        live.log_params({"model": settings.model.model_dump(), "train": settings.train.model_dump(),
                         "train_rows": len(train_set), "labels": labels})
        trainer = Trainer(
            model=model,
            args=training_arguments(settings, checkpoints, steps_per_epoch),
            train_dataset=train_set,
            eval_dataset=validation_set,
            data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=compute_metrics,
            callbacks=[DVCLiveCallback(live=live)],
        )
        started = time.perf_counter()
        result = trainer.train()
        wall = time.perf_counter() - started
        final = trainer.evaluate()

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    trainer.save_model(str(out))
    (out / "training_args.bin").unlink(missing_ok=True)  # a pickle; nothing here loads it
    tokenizer.save_pretrained(str(out))
    save_label_map(out, labels, settings.model.max_length)
    shutil.rmtree(checkpoints, ignore_errors=True)
    summary = {
        "train_rows": len(train_set),
        "epochs": settings.train.epochs,
        "wall_seconds": round(wall, 1),
        "samples_per_second": round(result.metrics.get("train_samples_per_second", 0.0), 2),
        "train_loss": round(result.training_loss, 4),
        "validation_accuracy": round(final["eval_accuracy"], 4),
        "validation_macro_f1": round(final["eval_macro_f1"], 4),
        "device": str(trainer.args.device),
        "precision": "bf16" if trainer.args.bf16 else "fp32",
    }
    print(f"train: {summary['train_rows']} rows x {summary['epochs']} epochs in {summary['wall_seconds']}s "
          f"({summary['samples_per_second']} samples/s, {summary['device']}, {summary['precision']}); "
          f"validation accuracy {summary['validation_accuracy']}, macro-F1 {summary['validation_macro_f1']} "
          f"-> {out}")
    return summary


def run(settings: Settings, split_dir: Path, out: Path, metrics: Path, live_dir: Path) -> dict[str, Any]:
    summary = train(settings, split_dir, out, live_dir)
    write_json(summary, metrics)
    return summary
