"""Benchmark: our train stage against a naive fine-tune that pads every text to max_length.

Same model (all-MiniLM-L6-v2, offline), same data (a slice of the real AG News
train sample from ../shared/data; the generated corpus when that is absent),
same epochs, batch size, learning rate and seed; measured side by side in one
run. "Naive" is what tutorial code does: tokenise with padding="max_length"
and shuffle randomly. Ours: no padding at tokenisation, length-grouped
batches, dynamic padding to each batch's longest text. Reports training
samples/s and validation accuracy for both, and their ratio; writes
bench/results/train_padding.json.

    .venv/bin/python bench/train_padding.py [--rows 800] [--max-length 128]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from results_file import write_result

from mlops.core.io import write_table
from mlops.core.params import merge
from mlops.core.settings import parse_settings
from mlops.ml.model import set_cpu_threads
from mlops.ml.training.arguments import training_arguments
from mlops.ml.training.data import EncodedTexts, load_splits
from mlops.ml.training.metrics import compute_metrics
from mlops.ml.training.start import load_base
from mlops.stages import train

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def data(rows: int, validation_rows: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    path = SHARED / "ag_news_train_sample5k" / "train.csv"
    if path.is_file():
        frame = pd.read_csv(path, header=None, names=["text", "label"], dtype=str)
        origin = "AG News train sample (../shared/data)"
    else:
        from mlops.stages.generate import generate_corpus

        frame, origin = generate_corpus(rows + validation_rows, ["billing", "delivery", "technical"], seed), \
            "generated corpus"
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return frame.head(rows), frame.iloc[rows:rows + validation_rows], origin


def naive(settings, split_dir: Path, workdir: Path) -> dict:
    """The tutorial fine-tune: every text padded to max_length, random batches."""
    from transformers import DataCollatorWithPadding, Trainer

    set_cpu_threads()
    train_frame, validation_frame, labels = load_splits(settings, split_dir)
    ids = {label: i for i, label in enumerate(labels)}
    tokenizer, model = load_base(settings, labels)

    def encode(frame):
        return EncodedTexts(tokenizer, frame["text"].tolist(), [ids[x] for x in frame["label"]],
                            settings.model.max_length, pad_to_max_length=True)

    train_set, validation_set = encode(train_frame), encode(validation_frame)
    steps = -(-len(train_set) // settings.train.batch_size)
    args = training_arguments(settings, workdir, steps, group_by_length=False)
    trainer = Trainer(model=model, args=args, train_dataset=train_set, eval_dataset=validation_set,
                      data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=compute_metrics)
    started = time.perf_counter()
    result = trainer.train()
    wall = time.perf_counter() - started
    final = trainer.evaluate()
    return {"samples_per_second": round(result.metrics["train_samples_per_second"], 2),
            "wall_seconds": round(wall, 1), "validation_accuracy": round(final["eval_accuracy"], 4),
            "validation_macro_f1": round(final["eval_macro_f1"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=800)
    parser.add_argument("--validation-rows", type=int, default=400)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--epochs", type=float, default=1.0)
    args = parser.parse_args()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    merge(params, {"model": {"base": "all-MiniLM-L6-v2", "max_length": args.max_length},
                   "train": {"epochs": args.epochs, "batch_size": 32, "eval_steps": 10**6,
                             "early_stopping_patience": None, "max_train_samples": None}})
    settings = parse_settings(params)
    train_frame, validation_frame, origin = data(args.rows, args.validation_rows, settings.seed)
    with tempfile.TemporaryDirectory() as tmp:
        split_dir = Path(tmp) / "split"
        write_table(train_frame, split_dir / "train.parquet")
        write_table(validation_frame, split_dir / "validation.parquet")
        tokens = [len(x) for x in load_base(settings, sorted(set(train_frame["label"])))[0](
            train_frame["text"].tolist(), truncation=True, max_length=args.max_length)["input_ids"]]
        naive_result = naive(settings, split_dir, Path(tmp) / "naive")
        ours = train.train(settings, split_dir, Path(tmp) / "ours" / "model", Path(tmp) / "ours" / "dvclive")
    result = {
        "data": origin, "train_rows": len(train_frame), "validation_rows": len(validation_frame),
        "epochs": args.epochs, "batch_size": 32, "max_length": args.max_length,
        "mean_tokens": round(float(np.mean(tokens)), 1),
        "ours": {k: ours[k] for k in ("samples_per_second", "wall_seconds", "validation_accuracy",
                                      "validation_macro_f1")},
        "naive_pad_to_max_length": naive_result,
    }
    result["speedup"] = round(result["ours"]["samples_per_second"] / naive_result["samples_per_second"], 2)
    result["accuracy_difference"] = round(result["ours"]["validation_accuracy"]
                                          - naive_result["validation_accuracy"], 4)
    write_result("train_padding", result)


if __name__ == "__main__":
    main()
