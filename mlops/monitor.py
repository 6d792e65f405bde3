"""Stage `monitor`: has the traffic the model serves drifted from what it learned on?

Evidently compares a reference window (the scored validation split: texts the
model was tuned against, with its own predictions) with the current window
(the served-traffic log, or the scored test split as a stand-in until traffic
exists, which the report then says). The signals are text descriptors, the
predicted-label mix and the model's confidence. Drift methods are pinned to
distances, whose meaning does not change with sample size, unlike Evidently's
default that switches from p-values to distances at 1,000 rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mlops.errors import MlopsError
from mlops.io import atomic_path, read_table, write_json
from mlops.settings import MonitorSettings, Settings
from mlops.traffic import read_traffic

SIGNALS = ["text_length", "word_count", "non_letter_share", "prediction", "confidence"]
NUMERIC = ["text_length", "word_count", "non_letter_share", "confidence"]


def load_current(current: str, scored_test: Path, max_rows: int) -> tuple[pd.DataFrame, str]:
    """The current window and a sentence saying what it is."""
    if current == "test":
        frame = read_table(scored_test)
        return frame.tail(max_rows), (
            f"no served traffic yet: the scored test split ({scored_test}) stands in for it"
        )
    path = Path(current)
    if not path.exists():
        raise MlopsError(f"monitor.current: not found: {current}")
    if path.is_dir() or path.suffix == ".jsonl":
        return read_traffic(path, max_rows), f"served traffic from {current}, newest {max_rows} rows at most"
    frame = read_table(path) if path.suffix == ".parquet" else pd.read_csv(path)
    return frame.tail(max_rows), f"data file {current}"


def signal_frame(frame: pd.DataFrame, origin: str) -> pd.DataFrame:
    missing = [column for column in ("text", "prediction", "confidence") if column not in frame.columns]
    if missing:
        raise MlopsError(f"{origin}: no column(s) {missing}; monitoring needs text, prediction and confidence")
    return pd.DataFrame({"text": frame["text"].astype(str), "prediction": frame["prediction"].astype(str),
                         "confidence": frame["confidence"].astype(float)}).reset_index(drop=True)


def to_dataset(frame: pd.DataFrame) -> Any:
    from evidently import DataDefinition, Dataset
    from evidently.descriptors import NonLetterCharacterPercentage, TextLength, WordCount

    return Dataset.from_pandas(
        frame,
        data_definition=DataDefinition(text_columns=["text"], categorical_columns=["prediction"],
                                       numerical_columns=["confidence"]),
        descriptors=[TextLength("text", alias="text_length"), WordCount("text", alias="word_count"),
                     NonLetterCharacterPercentage("text", alias="non_letter_share")],
    )


def drift_report(reference: pd.DataFrame, current: pd.DataFrame, settings: MonitorSettings) -> Any:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    preset = DataDriftPreset(columns=SIGNALS, num_method="wasserstein", cat_method="jensenshannon",
                             num_threshold=settings.num_threshold, cat_threshold=settings.cat_threshold,
                             drift_share=settings.drift_share)
    return Report([preset], include_tests=True).run(current_data=to_dataset(current),
                                                    reference_data=to_dataset(reference))


def summarise(snapshot: Any, settings: MonitorSettings) -> dict[str, Any]:
    """Per-signal scores and the dataset verdict, read from the snapshot."""
    scores: dict[str, float] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift") and config.get("column") in SIGNALS:
            scores[config["column"]] = float(metric["value"])
    if set(scores) != set(SIGNALS):
        raise MlopsError(f"monitor: Evidently returned scores for {sorted(scores)}, expected {SIGNALS}")
    signals = {
        name: {"score": round(score, 4),
               "method": "wasserstein" if name in NUMERIC else "jensenshannon",
               "threshold": settings.num_threshold if name in NUMERIC else settings.cat_threshold,
               "drifted": score >= (settings.num_threshold if name in NUMERIC else settings.cat_threshold)}
        for name, score in scores.items()
    }
    share = sum(s["drifted"] for s in signals.values()) / len(signals)
    return {"drift": share >= settings.drift_share, "drifted_share": round(share, 4),
            "drift_share_threshold": settings.drift_share, "signals": signals}


def run(settings: Settings, reference_path: Path, current: str | None, scored_test: Path,
        out_dir: Path) -> dict[str, Any]:
    config = settings.monitor
    reference = signal_frame(read_table(reference_path), str(reference_path))
    current_raw, description = load_current(current or config.current, scored_test, config.max_rows)
    current_frame = signal_frame(current_raw, description)
    if len(current_frame) < 10:
        raise MlopsError(f"monitor: the current window has {len(current_frame)} rows; at least 10 are needed")
    snapshot = drift_report(reference, current_frame, config)
    summary = {"created": datetime.now(UTC).isoformat(timespec="seconds"), "current": description,
               "reference_rows": len(reference), "current_rows": len(current_frame), **summarise(snapshot, config)}
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "report.html") as tmp:
        snapshot.save_html(str(tmp))
    write_json(summary, out_dir / "summary.json")
    verdict = "DRIFT" if summary["drift"] else "no drift"
    drifted = [name for name, s in summary["signals"].items() if s["drifted"]]
    print(f"monitor: {verdict} ({len(drifted)}/{len(SIGNALS)} signals drifted: {drifted or 'none'}); "
          f"current = {description} -> {out_dir}")
    return summary
