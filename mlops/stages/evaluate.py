"""Stage `evaluate`: how good is the candidate, on examples it never saw.

Beyond accuracy and F1 it measures what the gate and the people deciding need:
calibration (expected calibration error), quality per text-length slice,
single-text CPU latency, size on disk, and the behavioural suite. It also
writes the scored validation and test splits (every prediction with its
probabilities and the model's sentence embedding): the gate pairs champion
and challenger on the same test rows, and monitoring uses the scored
validation split as its reference. Every serving variant the optimize stage
built (ONNX Runtime, int8, and a distilled student's) scores the whole test
split too: its accuracy, the points it loses against fp32 and its label
agreement go to the gate, with the throughput of fp32 and every variant
measured side by side in this process.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from mlops.core.io import atomic_path, read_table, write_table
from mlops.core.records import HEADLINE, detail_path, write_metrics
from mlops.core.stage_io import StageIO
from mlops.core.stats import wilson_interval
from mlops.ml.behaviour import load_suite, run_suite
from mlops.ml.model import Classifier, set_cpu_threads
from mlops.ml.scoring import score
from mlops.ml.throughput import MICRO_BATCH, WINDOW, measure_throughput
from mlops.ml.tracking import log_stage_metrics
from mlops.ml.variants import load_variant, read_variants

if TYPE_CHECKING:
    from mlops.core.settings import EvaluateSettings, Settings

THROUGHPUT_TEXTS = 512  # test texts the throughput is measured on: enough windows to average, quick to run


def variant_metrics(fp32: Classifier, model_dir: Path, optimized_dir: Path | None, scored_test: pd.DataFrame,
                    metrics: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every variant the optimize stage built, scored on the whole test split against the fp32 candidate
    (`metrics`, `scored_test`), and the throughput of all of them, fp32 included, measured side by side."""
    runtimes: dict[str, Any] = {"fp32": fp32}
    variants = {"fp32": {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
                         "accuracy_drop_points": 0.0, "agreement_with_fp32": 1.0, "size_mb": metrics["size_mb"]}}
    for entry in read_variants(optimized_dir) if optimized_dir is not None else []:
        name = entry["name"]
        runtimes[name] = load_variant(model_dir, name, optimized_dir)
        scored = score(runtimes[name], scored_test[["text", "label"]])
        quality = compute_metrics(scored, fp32.labels)
        variants[name] = {
            "accuracy": quality["accuracy"], "macro_f1": quality["macro_f1"],
            "accuracy_drop_points": round(100 * (metrics["accuracy"] - quality["accuracy"]), 2),
            "agreement_with_fp32": round(float((scored["prediction"] == scored_test["prediction"]).mean()), 4),
            "size_mb": entry["size_mb"]}
    texts = scored_test["text"].head(THROUGHPUT_TEXTS).tolist()
    speeds = measure_throughput(runtimes, texts)
    for name, texts_per_s in speeds.items():
        variants[name] |= {"texts_per_s": texts_per_s, "speedup": round(texts_per_s / max(speeds["fp32"], 1e-9), 2)}
    return variants, {"texts": len(texts), "window": WINDOW, "micro_batch": MICRO_BATCH,
                      "rule": "texts/s in one process, runtimes interleaved window by window"}


def compute_metrics(scored: pd.DataFrame, labels: list[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support (scikit-learn's report) and the confusion matrix."""
    from sklearn.metrics import classification_report, confusion_matrix

    truth, predicted = scored["label"].astype(str), scored["prediction"].astype(str)
    report = classification_report(truth, predicted, labels=labels, output_dict=True, zero_division=0)
    return {
        "rows": len(scored),
        "accuracy": round(float((truth == predicted).mean()), 4),
        "macro_f1": round(float(report["macro avg"]["f1-score"]), 4),
        "per_class": {
            label: {"precision": round(float(report[label]["precision"]), 4),
                    "recall": round(float(report[label]["recall"]), 4),
                    "f1": round(float(report[label]["f1-score"]), 4), "support": int(report[label]["support"])}
            for label in labels
        },
        "labels": labels,
        "confusion_matrix": confusion_matrix(truth, predicted, labels=labels).tolist(),
    }


def expected_calibration_error(scored: pd.DataFrame, bins: int) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    confidence = scored["confidence"].to_numpy()
    correct = (scored["prediction"].astype(str) == scored["label"].astype(str)).to_numpy()
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return round(float(error), 4)


def slice_metrics(scored: pd.DataFrame, labels: list[str], edges: tuple[int, ...]) -> dict[str, Any]:
    """Accuracy and macro-F1 per text-length bucket (characters)."""
    from sklearn.metrics import f1_score

    lengths = scored["text"].str.len()
    bounds = [0, *edges, np.inf]
    slices = {}
    for low, high in zip(bounds[:-1], bounds[1:], strict=True):
        part = scored[(lengths >= low) & (lengths < high)]
        name = f"chars {low}-{int(high) - 1}" if np.isfinite(high) else f"chars {low}+"
        if len(part):
            truth, predicted = part["label"].astype(str), part["prediction"].astype(str)
            slices[name] = {"rows": len(part), "accuracy": round(float((truth == predicted).mean()), 4),
                            "macro_f1": round(float(f1_score(truth, predicted, labels=labels, average="macro",
                                                             zero_division=0)), 4)}
    return slices


def measure_latency(classifier: Classifier, texts: list[str], samples: int) -> dict[str, float]:
    """Single-text CPU latency, as one request of the service would see it (after warm-up)."""
    texts = (texts * (samples // max(1, len(texts)) + 1))[:samples]
    for text in texts[:5]:
        classifier.predict_proba([text])
    timings = []
    for text in texts:
        started = time.perf_counter()
        classifier.predict_proba([text])
        timings.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(float(np.percentile(timings, 50)), 2),
            "p95_ms": round(float(np.percentile(timings, 95)), 2), "samples": len(timings)}


def accuracy_interval(scored: pd.DataFrame) -> list[float]:
    """The Wilson 95% interval of the accuracy: how far a set of this size pins it down."""
    right = int((scored["prediction"].astype(str) == scored["label"].astype(str)).sum())
    low, high = wilson_interval(right, len(scored))
    return [round(low, 4), round(high, 4)]


def score_recent(classifier: Classifier, split_path: Path, scored_path: Path) -> dict[str, Any] | None:
    """Score the recent set (held-out feedback) when there is one; its metrics (None without it).

    The scored file is always written (empty without a recent set), so that the gate's input exists.
    """
    frame = read_table(split_path) if Path(split_path).is_file() else pd.DataFrame(columns=["text", "label"])
    if frame.empty:
        write_table(frame.assign(prediction=pd.Series(dtype=str), confidence=pd.Series(dtype=float)), scored_path)
        return None
    scored = score(classifier, frame)
    write_table(scored, scored_path)
    quality = compute_metrics(scored, classifier.labels)
    return {"rows": quality["rows"], "accuracy": quality["accuracy"], "accuracy_ci": accuracy_interval(scored),
            "macro_f1": quality["macro_f1"],
            "batches": sorted(frame["batch"].astype(str).unique()) if "batch" in frame else []}


def model_size_mb(model_dir: Path) -> float:
    return round(sum(f.stat().st_size for f in Path(model_dir).rglob("*") if f.is_file()) / 2**20, 2)


def extended_metrics(classifier: Classifier, scored: pd.DataFrame, model_dir: Path,
                     config: EvaluateSettings) -> dict[str, Any]:
    return {
        "ece": expected_calibration_error(scored, config.calibration_bins),
        "slices": slice_metrics(scored, classifier.labels, config.length_buckets),
        "latency": measure_latency(classifier, scored["text"].head(200).tolist(), config.latency_samples),
        "size_mb": model_size_mb(model_dir),
        "behaviour": run_suite(load_suite(config.behaviour_suite), classifier.labels, classifier.predict_proba),
    }


def plot_confusion(matrix: list[list[int]], labels: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    size = max(4.0, 0.9 * len(labels) + 2)
    figure, axis = plt.subplots(figsize=(size, size * 0.85))
    ConfusionMatrixDisplay(np.array(matrix), display_labels=labels).plot(ax=axis, cmap="Blues", colorbar=False,
                                                                        xticks_rotation=45)
    axis.set_xlabel("predicted")
    axis.set_ylabel("actual")
    axis.set_title("Confusion matrix (test split)")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


class EvaluateIO(StageIO):
    """The candidate and its splits in; scored splits, metrics and plots out (dvc.yaml's `evaluate` command)."""

    stage: ClassVar[str] = "evaluate"
    model: Path
    split_dir: Path
    scored_dir: Path
    metrics: Path
    plots_dir: Path
    optimized_dir: Path | None = None


def run(settings: Settings, io: EvaluateIO) -> dict[str, Any]:
    model_dir, split_dir, scored_dir, metrics_path, plots_dir = (io.model, io.split_dir, io.scored_dir, io.metrics,
                                                                 io.plots_dir)
    optimized_dir = io.optimized_dir
    set_cpu_threads()
    classifier = Classifier.load(model_dir)
    for name in ("validation", "test"):
        scored = score(classifier, read_table(split_dir / f"{name}.parquet"))
        write_table(scored, scored_dir / f"{name}.parquet")
    metrics = compute_metrics(scored, classifier.labels) | extended_metrics(classifier, scored, model_dir,
                                                                             settings.evaluate)
    metrics["accuracy_ci"] = accuracy_interval(scored)
    recent = score_recent(classifier, split_dir / "recent.parquet", scored_dir / "recent.parquet")
    if recent is not None:
        metrics["recent"] = recent
    metrics["variants"], metrics["throughput"] = variant_metrics(classifier, model_dir, optimized_dir, scored, metrics)
    write_metrics(metrics, metrics_path)
    confusion = pd.DataFrame({"actual": scored["label"].astype(str), "predicted": scored["prediction"]})
    with atomic_path(plots_dir / "confusion.csv") as tmp:
        confusion.to_csv(tmp, index=False)
    plot_confusion(metrics["confusion_matrix"], classifier.labels, plots_dir / "confusion_matrix.png")
    print(f"evaluate: test accuracy {metrics['accuracy']}, macro-F1 {metrics['macro_f1']} on {metrics['rows']} rows, "
          f"ECE {metrics['ece']}, latency p50/p95 {metrics['latency']['p50_ms']}/{metrics['latency']['p95_ms']} ms, "
          f"{metrics['size_mb']} MB, behaviour {metrics['behaviour']['pass_rate']:.0%} "
          f"of {metrics['behaviour']['cases']} cases -> {metrics_path} (detail: {detail_path(metrics_path)})")
    if "recent" in metrics:
        recent = metrics["recent"]
        print(f"evaluate: recent set (held-out feedback) accuracy {recent['accuracy']} (95% CI "
              f"{recent['accuracy_ci'][0]}-{recent['accuracy_ci'][1]}), macro-F1 {recent['macro_f1']} on "
              f"{recent['rows']} rows")
    for name, variant in metrics["variants"].items():
        print(f"evaluate: {name}: accuracy {variant['accuracy']} ({variant['accuracy_drop_points']} points below fp32, "
              f"agreement {variant['agreement_with_fp32']:.1%}), {variant['texts_per_s']} texts/s "
              f"({variant['speedup']}x fp32), {variant['size_mb']} MB")
    log_stage_metrics(model_dir, "evaluate", {key: metrics[key] for key in HEADLINE if key in metrics})
    return metrics
