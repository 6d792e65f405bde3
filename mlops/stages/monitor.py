"""Stage `monitor`: has the traffic the model serves drifted from what it learned on?

The reference is the scored validation split of the model that served the
traffic (stored with each registered version, so a promotion never compares
one model's traffic with another's view of its data); the current window is
the newest rows of the served-traffic log, any data file, or the scored test
split as a stand-in until traffic exists (the report says which).

Six signals, each with a method pinned so that its score means the same at
300 rows and at 30,000 (Evidently's default switches from p-values to
distances at 1,000 rows): the three text descriptors (normed Wasserstein),
the predicted-label mix (Jensen-Shannon), the fall of mean confidence, and
the model's own sentence embeddings (the ROC AUC of a classifier told to tell
reference from current, Evidently's `model` method called directly: its
embedding metric would also run t-SNE for a plot, tens of seconds). The
dataset drifts when at least `drift_share` of the signals do; below
`min_rows` there is no verdict.

A distance between two samples is never zero, even from one distribution,
and on a window of 200 texts the sampling noise of a normed Wasserstein
distance alone is ~0.12, above Evidently's default threshold of 0.1: a fixed
threshold raises false alarms on every small window. So each signal drifts
only when its score passes both its threshold (the effect size that matters)
and its noise floor at this window's size (the 99th percentile of the same
score between two resamples of the reference of the two windows' sizes, or
for the ROC AUC its known null distribution). The floor shrinks as windows
grow, the score's meaning does not change, and Evidently's report is given
the same effective thresholds so its HTML and our verdict agree: the report is built from the verdict (its
headline, the six signals with their effective thresholds; mlops/ml/verdict_report.py), saved as report.html
and report.json. Evidently writes the HTML report; every run
is also archived in `monitor.history_dir` with an index page and a plot of
the scores over time, and added as one snapshot to the Evidently workspace
`monitor.workspace` (mlops/ml/monitor_workspace.py; `make monitor-ui`).

Drift is not the only verdict: the labels that come back from production say
how often the served answers were right (mlops/ml/live_quality.py). Each run
writes that live quality per model version into summary.json and at the top
of the report, and names a `live_quality_breach` when the serving version's
accuracy is, beyond the labels' doubt, below `gate.min_accuracy`: a reason to
retrain of its own, whatever the drift verdict.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops.core.environment import feedback_dir, traffic_dir
from mlops.core.errors import MlopsError
from mlops.core.io import atomic_path, read_table, write_json
from mlops.core.labelling_queue import write_queue
from mlops.core.pipeline import stage_path
from mlops.core.raw_tables import read_with_header
from mlops.core.stage_io import StageIO
from mlops.core.traffic_log import read_traffic
from mlops.ml.descriptors import DESCRIPTORS, describe
from mlops.ml.drift import embedding_drift
from mlops.ml.live_quality import assess, insert_section, render_table
from mlops.ml.live_quality import describe as describe_live
from mlops.ml.model import Classifier, decode_embedding, set_cpu_threads
from mlops.ml.monitor_history import render_history
from mlops.ml.progress import predict_with_progress
from mlops.ml.shadow_report import assess_shadow, describe_shadow, render_shadow

if TYPE_CHECKING:
    from mlops.core.settings import MonitorSettings, Settings

SIGNALS = [*DESCRIPTORS, "prediction", "confidence", "embedding"]
REPORT_COLUMNS = [*DESCRIPTORS, "prediction", "confidence"]
NULL_DRAWS, NOISE_QUANTILE, NOISE_Z = 200, 0.99, 2.326  # z of the 99th percentile of a normal


def load_current(current: str, scored_test: Path, config: MonitorSettings) -> tuple[pd.DataFrame, str]:
    """The current window and a sentence saying what it is."""
    if current == "test":
        return read_table(scored_test).tail(config.window_rows), (
            f"no served traffic yet: the scored test split ({scored_test}) stands in for it")
    path = Path(current)
    if not path.exists():
        raise MlopsError(f"monitor.current: not found: {current}")
    hours = f" of the last {config.window_hours:g} h" if config.window_hours else ""
    if is_traffic_log(current):
        window = read_traffic(path, config.window_rows, config.window_hours)
        torn = window.attrs.get("torn_lines", 0)
        return window, (f"served traffic from {current}, newest {config.window_rows} rows{hours} at most"
                        + (f"; {torn} torn lines skipped" if torn else ""))
    return read_with_header(path).tail(config.window_rows), f"data file {current}"


def is_traffic_log(current: str) -> bool:
    path = Path(current)
    return path.is_dir() or path.name.startswith("traffic-")


def traffic_source(current: str) -> Path:
    """The traffic log that batch labels' ids are looked up in: the one monitored, else the service's."""
    return Path(current) if current != "test" and is_traffic_log(current) else traffic_dir()


def one_model_version(frame: pd.DataFrame) -> tuple[pd.DataFrame, str | None, str]:
    """Keep the rows of the newest model version in the window (after a promotion, older rows are another model's)."""
    if "model_version" not in frame.columns or frame["model_version"].isna().all():
        return frame, None, ""
    newest = str(frame["model_version"].dropna().iloc[-1])
    kept = frame[frame["model_version"] == newest]
    note = f"; {len(frame) - len(kept)} rows served by older versions left out" if len(kept) < len(frame) else ""
    return kept.reset_index(drop=True), newest, note


def stored_baseline(version: str) -> tuple[Path, Path] | None:
    """A registered version's model directory and its stored reference, if the store has them."""
    from mlops.core.registry import REFERENCE_FILE, model_path

    try:
        model_dir = model_path(version)
    except MlopsError:
        return None
    return (model_dir, model_dir / REFERENCE_FILE) if (model_dir / REFERENCE_FILE).is_file() else None


def embedding_matrix(values: pd.Series) -> np.ndarray | None:
    """Embeddings as a float matrix, whether stored as arrays (Parquet) or base64 float16 (traffic log)."""

    if values.isna().any():
        return None
    rows = [decode_embedding(v) if isinstance(v, str) else np.asarray(v, dtype=np.float32) for v in values]
    if len({len(r) for r in rows}) != 1:
        raise MlopsError("monitor: embeddings of different sizes in one window")
    return np.vstack(rows).astype(np.float32)


def signal_frame(frame: pd.DataFrame, origin: str, model_dir: Path | None) -> tuple[pd.DataFrame, np.ndarray]:
    """Descriptors, prediction and confidence as columns, and the embeddings; scores the texts if it must."""
    if "text" in frame.columns:
        texts = frame["text"].astype(str).tolist()
        signals = describe(texts)
    elif set(DESCRIPTORS) <= set(frame.columns):  # a log that kept hashes and descriptors, not texts
        texts, signals = None, frame[list(DESCRIPTORS)].astype(float).reset_index(drop=True)
    else:
        raise MlopsError(f"{origin}: no `text` column (nor the descriptors {list(DESCRIPTORS)} of hashed texts)")
    embeddings = embedding_matrix(frame["embedding"]) if "embedding" in frame.columns else None
    scored = {"prediction", "confidence"} <= set(frame.columns) and embeddings is not None
    if scored:
        signals["prediction"] = frame["prediction"].astype(str).to_numpy()
        signals["confidence"] = frame["confidence"].astype(float).to_numpy()
        return signals, embeddings
    if texts is None:
        raise MlopsError(f"{origin}: hashed texts without predictions and embeddings cannot be scored")
    if model_dir is None or not (Path(model_dir) / "model.safetensors").is_file():
        raise MlopsError(f"{origin}: has no predictions/embeddings, and there is no model at {model_dir} to score it")

    set_cpu_threads()
    classifier = Classifier.load(model_dir)

    proba, embeddings = predict_with_progress(classifier, texts, "monitor: score")
    signals["prediction"] = [classifier.labels[i] for i in proba.argmax(axis=1)]
    signals["confidence"] = proba.max(axis=1)
    return signals, embeddings


def to_dataset(frame: pd.DataFrame) -> Any:
    from evidently import DataDefinition, Dataset

    return Dataset.from_pandas(frame[REPORT_COLUMNS], data_definition=DataDefinition(
        categorical_columns=["prediction"], numerical_columns=[*DESCRIPTORS, "confidence"]))


def wasserstein_normed(reference: np.ndarray, current: np.ndarray) -> float:
    """Evidently's `wasserstein` score: the earth mover's distance in units of the reference's spread."""
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(reference, current) / max(float(np.std(reference)), 0.001))


def jensen_shannon(reference: np.ndarray, current: np.ndarray) -> float:
    from scipy.spatial.distance import jensenshannon

    categories = np.union1d(reference, current)
    ref = np.array([(reference == c).mean() for c in categories])
    cur = np.array([(current == c).mean() for c in categories])
    return float(jensenshannon(ref, cur))


def noise_floors(reference: pd.DataFrame, current_rows: int) -> dict[str, float]:
    """Each score's 99th percentile between two resamples of the reference, sized as the two windows."""
    rng = np.random.default_rng(0)
    rows = len(reference)
    columns = {name: reference[name].to_numpy() for name in REPORT_COLUMNS}
    draws: dict[str, list[float]] = {name: [] for name in REPORT_COLUMNS}
    for _ in range(NULL_DRAWS):
        left, right = rng.integers(0, rows, rows), rng.integers(0, rows, current_rows)
        for name in DESCRIPTORS:
            draws[name].append(wasserstein_normed(columns[name][left], columns[name][right]))
        draws["prediction"].append(jensen_shannon(columns["prediction"][left], columns["prediction"][right]))
        draws["confidence"].append(float(columns["confidence"][left].mean() - columns["confidence"][right].mean()))
    floors = {name: float(np.quantile(values, NOISE_QUANTILE)) for name, values in draws.items()}
    # the domain classifier is scored on a random half of each window: the null ROC AUC is ~normal
    half_ref, half_cur = max(1, rows // 2), max(1, current_rows // 2)
    floors["embedding"] = 0.5 + NOISE_Z * float(np.sqrt((half_ref + half_cur + 1) / (12 * half_ref * half_cur)))
    return floors


def thresholds(settings: MonitorSettings, floors: dict[str, float]) -> dict[str, tuple[str, float, float]]:
    """Per signal: (method, configured threshold, effective threshold = max(threshold, noise floor))."""
    configured = {name: ("wasserstein (normed)", settings.num_threshold) for name in DESCRIPTORS} | {
        "prediction": ("jensen-shannon distance", settings.cat_threshold),
        "confidence": ("fall of mean confidence", settings.confidence_drop),
        "embedding": ("domain classifier ROC AUC", settings.embedding_threshold),
    }
    return {name: (method, value, max(value, floors[name])) for name, (method, value) in configured.items()}


def drift_report(reference: pd.DataFrame, current: pd.DataFrame, settings: MonitorSettings,
                 effective: dict[str, float] | None = None) -> Any:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    preset = DataDriftPreset(columns=REPORT_COLUMNS, num_method="wasserstein", cat_method="jensenshannon",
                             num_threshold=settings.num_threshold, cat_threshold=settings.cat_threshold,
                             per_column_threshold={name: value for name, value in (effective or {}).items()
                                                   if name in REPORT_COLUMNS and name != "confidence"} or None,
                             drift_share=settings.drift_share)
    return Report([preset], include_tests=True).run(current_data=to_dataset(current),
                                                    reference_data=to_dataset(reference))


def report_scores(snapshot: Any) -> dict[str, float]:
    scores: dict[str, float] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift") and config.get("column") in REPORT_COLUMNS:
            scores[config["column"]] = float(metric["value"])
    if set(scores) != set(REPORT_COLUMNS):
        raise MlopsError(f"monitor: Evidently returned scores for {sorted(scores)}, expected {REPORT_COLUMNS}")
    return scores


def judge(scores: dict[str, float], settings: MonitorSettings, floors: dict[str, float]) -> dict[str, Any]:
    """Each signal against its threshold and noise floor, and the dataset verdict."""
    signals = {name: {"score": round(scores[name], 4), "method": method, "threshold": threshold,
                      "noise_floor": round(floors[name], 4), "drifted": bool(scores[name] >= effective)}
               for name, (method, threshold, effective) in thresholds(settings, floors).items()}
    share = sum(s["drifted"] for s in signals.values()) / len(signals)
    drift = share >= settings.drift_share
    return {"status": "drift" if drift else "no_drift", "drift": drift, "drifted_share": round(share, 4),
            "drift_share_threshold": settings.drift_share, "signals": signals}


def compare(reference: tuple[pd.DataFrame, np.ndarray], current: tuple[pd.DataFrame, np.ndarray],
            settings: MonitorSettings) -> tuple[dict[str, Any], Any]:
    """The verdict and Evidently's snapshot of reference vs current signals."""
    (ref_frame, ref_emb), (cur_frame, cur_emb) = reference, current
    if ref_emb.shape[1] != cur_emb.shape[1]:
        raise MlopsError(f"monitor: reference embeddings have {ref_emb.shape[1]} dimensions, current "
                         f"{cur_emb.shape[1]}: they come from different models")
    floors = noise_floors(ref_frame, len(cur_frame))
    effective = {name: rule[2] for name, rule in thresholds(settings, floors).items()}
    snapshot = drift_report(ref_frame, cur_frame, settings, effective)
    scores = {name: value for name, value in report_scores(snapshot).items() if name != "confidence"}
    scores["confidence"] = float(ref_frame["confidence"].mean() - cur_frame["confidence"].mean())
    scores["embedding"] = embedding_drift(ref_emb, cur_emb)
    verdict = judge(scores, settings, floors)
    # the report a user opens states this verdict, these six signals and thresholds (mlops/ml/verdict_report.py)
    from mlops.ml.verdict_report import verdict_report

    drawn = {name: "wasserstein" for name in DESCRIPTORS} | {"prediction": "jensenshannon"}
    return verdict, verdict_report(verdict, to_dataset(ref_frame), to_dataset(cur_frame), drawn)


def baseline_for(version: str | None, reference_path: Path, model_dir: Path) -> tuple[Path, Path, str]:
    if version is not None and (stored := stored_baseline(version)) is not None:
        return stored[1], stored[0], f"reference stored with {version}"
    return reference_path, model_dir, f"reference {reference_path}"


class MonitorIO(StageIO):
    """The reference, the model that scores unscored texts (left out: dvc.yaml's), the scored test split that
    stands in for traffic, and the report folder."""

    stage = "monitor"
    reference: Path
    scored_test: Path
    out_dir: Path
    model: Path | None = None


def run(settings: Settings, io: MonitorIO, current: str | None = None, history: bool = True) -> dict[str, Any]:
    """Judge the current window (`current`, else monitor.current) against the reference; write the report."""
    reference_path, scored_test, out_dir = io.reference, io.scored_test, io.out_dir
    config = settings.monitor
    window, description = load_current(current or config.current, scored_test, config)
    window, version, note = one_model_version(window)
    model_dir = io.model or stage_path(".", "monitor", "model")
    reference_path, model_dir, baseline = baseline_for(version, reference_path, model_dir)
    summary: dict[str, Any] = {"created": datetime.now(UTC).isoformat(timespec="seconds"),
                               "current": description + note, "baseline": baseline, "model_version": version,
                               "current_rows": len(window)}
    out_dir.mkdir(parents=True, exist_ok=True)
    live = assess(settings, feedback_dir(), traffic_source(current or config.current), version)
    shadow = assess_shadow(settings, feedback_dir(), traffic_source(current or config.current))  # serve.shadow
    live_section = render_table(live) + render_shadow(shadow)
    if len(window) < config.min_rows:
        summary |= {"status": "insufficient_data", "drift": False, "min_rows": config.min_rows, "signals": {}}
        with atomic_path(out_dir / "report.html") as tmp:
            tmp.write_text(f"<!doctype html><title>Monitoring</title><p>No verdict: {len(window)} rows in the "
                           f"current window, {config.min_rows} needed ({description}).</p>\n" + live_section,
                           encoding="utf-8")
    else:
        reference = signal_frame(read_table(reference_path), str(reference_path), model_dir)
        verdict, snapshot = compare(reference, signal_frame(window, description, model_dir), config)
        summary |= {"reference_rows": len(reference[0]), **verdict}
        with atomic_path(out_dir / "report.html") as tmp:
            snapshot.save_html(str(tmp))
            tmp.write_text(insert_section(tmp.read_text(encoding="utf-8"), live_section), encoding="utf-8")
        with atomic_path(out_dir / "report.json") as tmp:  # the same report as data: what a test or a tool reads
            snapshot.save_json(str(tmp))
        if verdict["drift"]:  # the drifted window's texts that most need a label, for the next turn of the loop
            queue_path, queued = write_queue(settings, window)
            summary["labelling_queue"] = {"path": str(queue_path.resolve()), "rows": queued}
    summary |= live | {"shadow": shadow}
    write_json(summary, out_dir / "summary.json")
    if history:
        archive(out_dir, Path(config.history_dir))
        from mlops.ml.monitor_workspace import record_run

        record_run(Path(config.workspace), summary)  # one snapshot in the Evidently workspace (make monitor-ui)
    print(f"monitor: {describe_verdict(summary)}; current = {summary['current']} -> {out_dir}")
    print(f"monitor: live quality: {describe_live(live)}")
    print(f"monitor: shadow: {describe_shadow(shadow)}")
    if "labelling_queue" in summary:
        print(f"monitor: {summary['labelling_queue']['rows']} texts queued for labelling at "
              f"{summary['labelling_queue']['path']}")
    return summary


def describe_verdict(summary: dict[str, Any]) -> str:
    if summary["status"] == "insufficient_data":
        return f"NO VERDICT ({summary['current_rows']} rows, {summary['min_rows']} needed)"
    drifted = [f"{name} {s['score']}" for name, s in summary["signals"].items() if s["drifted"]]
    return (f"{'DRIFT' if summary['drift'] else 'no drift'} ({len(drifted)}/{len(summary['signals'])} signals "
            f"drifted: {', '.join(drifted) or 'none'})")


def archive(out_dir: Path, history_dir: Path) -> Path:
    """Copy this run's report into the history and rebuild the index page and the plot."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    entry = history_dir / stamp
    entry.mkdir(parents=True, exist_ok=False)
    for name in ("report.html", "summary.json"):
        shutil.copy2(out_dir / name, entry / name)

    render_history(history_dir)
    return entry

