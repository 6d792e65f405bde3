"""Live quality: how often the served answers were right, from the labels that come back.

Drift says the traffic moved; only labels say whether the model got worse.
Trusted labels come back two ways: a labeller's `POST /feedback` (the
feedback log keeps each with the prediction and model version it labels) and
an operator's import, which becomes a batch in `feedback.batches_dir`; a
batch row counts when its id is one the service answered, looked up in the
traffic log. A client's label is a suggestion and never judges a model, so
`suggestions.jsonl` is only counted as ignored.

Per model version, over the newest `monitor.window_rows` labels by served
time (served in the last `monitor.window_hours`, when set) and over all of
them: the labelled count, accuracy with its Wilson 95% interval, macro-F1
and each class's recall with its count and interval. Below
`monitor.live_min_labels` labels there is no figure, only the count and how
many more are needed. The version serving now is in breach when even the
upper bound of its window's accuracy is below `gate.min_accuracy`: the
labels rule out that it meets the bar a candidate had to meet, a reason to
retrain that drift may never show (the texts look the same, the answers to
them changed).
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops.core.batch_files import read_batches
from mlops.core.feedback_log import FEEDBACK_FILE, SUGGESTIONS_FILE, read_feedback
from mlops.core.stats import wilson_interval
from mlops.core.traffic_log import id_time, list_parts, read_part

if TYPE_CHECKING:
    from mlops.core.settings import Settings

TRUSTED_ROLE = "labeller"
COLUMNS = ["id", "label", "prediction", "model_version", "served_at", "origin"]
UNKNOWN_VERSION = "unknown"


def served_time(record: dict[str, Any]) -> Any:
    """When a labelled answer was served: its recorded time, else its id's time prefix, else when it was labelled."""
    if record.get("served_at"):
        return record["served_at"]
    made = id_time(str(record.get("id", "")))
    return made.isoformat() if made is not None else record.get("labelled_at")


def served_records(traffic: Path, ids: set[str]) -> pd.DataFrame:
    """What the traffic log recorded for `ids` (prediction, model version, time), the newest record per id."""
    traffic = Path(traffic)
    files = list_parts(traffic) if traffic.is_dir() else [traffic] if traffic.is_file() else []
    wanted = ["id", "prediction", "model_version", "timestamp"]
    frames = []
    for file in files:
        if not file.stat().st_size:
            continue
        frame, _ = read_part(file)
        if "id" in frame.columns:
            frame = frame[frame["id"].astype(str).isin(ids)]
            frames.append(frame.reindex(columns=wanted))
    if not frames:
        return pd.DataFrame(columns=wanted)
    return pd.concat(frames, ignore_index=True).drop_duplicates("id", keep="last")


def trusted_labels(feedback: Path, batches: Path, traffic: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """Every trusted label joined with what was served, one row per id, and counts of what was left out.

    The feedback log's record of an id wins over a batch row of it (`mlops feedback collect` turns the log
    into batches, so the same label is usually in both); a batch row whose id the traffic log does not hold
    (no longer, or never served) has no served answer to judge and is counted as unmatched.
    """
    records = read_feedback(Path(feedback) / FEEDBACK_FILE)
    trusted = [r for r in records if r.get("role") == TRUSTED_ROLE]
    rows = [{"id": str(r["id"]), "label": str(r["label"]), "prediction": r.get("prediction"),
             "model_version": r.get("model_version"), "served_at": served_time(r), "origin": "feedback"}
            for r in trusted]
    counts = {"from_feedback_log": 0, "from_batches": 0, "untrusted_ignored": len(records) - len(trusted),
              "suggestions_ignored": len(read_feedback(Path(feedback) / SUGGESTIONS_FILE)),
              "unmatched": 0}
    known = {row["id"] for row in rows}
    batch = read_batches(Path(batches))
    batch = batch[(batch["id"] != "") & ~batch["id"].isin(known)]
    if len(batch):
        served = served_records(traffic, set(batch["id"])).set_index("id")
        for row in batch.itertuples():
            if row.id not in served.index:
                counts["unmatched"] += 1
                continue
            answer = served.loc[row.id]
            rows.append({"id": row.id, "label": str(row.label), "prediction": answer["prediction"],
                         "model_version": answer["model_version"],
                         "served_at": answer["timestamp"] if pd.notna(answer["timestamp"]) else served_time(
                             {"id": row.id}), "origin": "batch"})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    has_answer = frame["prediction"].notna()
    counts["unmatched"] += int((~has_answer).sum())
    frame = frame[has_answer].copy()
    frame["prediction"] = frame["prediction"].astype(str)
    frame["model_version"] = frame["model_version"].fillna(UNKNOWN_VERSION).astype(str)
    frame["served_at"] = pd.to_datetime(frame["served_at"], utc=True, format="ISO8601", errors="coerce")
    frame = frame.sort_values(["served_at", "id"], kind="stable", na_position="first").reset_index(drop=True)
    counts["from_feedback_log"] = int((frame["origin"] == "feedback").sum())
    counts["from_batches"] = int((frame["origin"] == "batch").sum())
    counts["trusted"] = len(frame)
    return frame, counts


def window_of(frame: pd.DataFrame, rows: int, hours: float | None, now: datetime) -> pd.DataFrame:
    """The monitor's window applied to labels by served time: the newest `rows`, served in the last `hours`."""
    if hours is not None:
        frame = frame[frame["served_at"] >= pd.Timestamp(now - timedelta(hours=hours))]
    return frame.tail(rows)


def interval(successes: int, trials: int) -> list[float]:
    return [round(bound, 4) for bound in wilson_interval(successes, trials)]


def macro_f1(truth: pd.Series, predicted: pd.Series) -> float:
    """The mean F1 over every class that was labelled or predicted (a class never right scores 0)."""
    scores = []
    for name in sorted(set(truth) | set(predicted)):
        hits = int(((truth == name) & (predicted == name)).sum())
        false_alarms = int(((predicted == name) & (truth != name)).sum())
        missed = int((truth == name).sum()) - hits
        scores.append(2 * hits / (2 * hits + false_alarms + missed) if hits + false_alarms + missed else 0.0)
    return round(sum(scores) / len(scores), 4) if scores else 0.0


def measure(frame: pd.DataFrame, min_labels: int) -> dict[str, Any]:
    """Labelled count, accuracy and its interval, macro-F1, per-class recall; or how many labels are missing."""
    labelled = len(frame)
    served = {"served_from": frame["served_at"].min().isoformat() if labelled else None,
              "served_to": frame["served_at"].max().isoformat() if labelled else None}
    if labelled < min_labels:
        return {"labelled": labelled, "status": "insufficient_labels", "min_labels": min_labels,
                "needed": min_labels - labelled, **served}
    truth, predicted = frame["label"], frame["prediction"]
    right = truth == predicted
    correct = int(right.sum())
    per_class = {}
    for name in sorted(set(truth)):
        members = truth == name
        hits, count = int(right[members].sum()), int(members.sum())
        per_class[name] = {"labelled": count, "recall": round(hits / count, 4), "recall_ci": interval(hits, count)}
    return {"labelled": labelled, "status": "measured", "correct": correct,
            "accuracy": round(correct / labelled, 4), "accuracy_ci": interval(correct, labelled),
            "macro_f1": macro_f1(truth, predicted), "per_class": per_class, **served}


def assess(settings: Settings, feedback: Path, traffic: Path, serving: str | None = None,
           now: datetime | None = None) -> dict[str, Any]:
    """`live_quality` (per model version: window and cumulative), `live_labels` (what was counted and what was
    left out) and, when the serving version's window rules out gate.min_accuracy, `live_quality_breach`."""
    config, now = settings.monitor, now or datetime.now(UTC)
    frame, counts = trusted_labels(feedback, Path(settings.feedback.batches_dir), traffic)
    hours = f", served in the last {config.window_hours:g} h" if config.window_hours else ""
    live: dict[str, Any] = {}
    for version, labels in frame.groupby("model_version", sort=False):
        live[str(version)] = {
            "window": measure(window_of(labels, config.window_rows, config.window_hours, now),
                              config.live_min_labels),
            "cumulative": measure(labels, config.live_min_labels)}
    if serving not in live:  # the traffic named no version with labels: the newest labelled one serves
        serving = str(frame["model_version"].iloc[-1]) if len(frame) else None
    for version, figures in live.items():
        figures["serving"] = version == serving
    result: dict[str, Any] = {
        "live_quality": live,
        "live_labels": {**counts, "min_labels": config.live_min_labels, "min_accuracy": settings.gate.min_accuracy,
                        "window": f"each version's newest {config.window_rows} labels by served time{hours}"}}
    window = live.get(serving, {}).get("window", {}) if serving else {}
    if window.get("status") == "measured" and window["accuracy_ci"][1] < settings.gate.min_accuracy:
        low, high = window["accuracy_ci"]
        result["live_quality_breach"] = {
            "model_version": serving, "labelled": window["labelled"], "accuracy": window["accuracy"],
            "accuracy_ci": window["accuracy_ci"], "min_accuracy": settings.gate.min_accuracy,
            "reason": f"live accuracy of {serving} is {window['accuracy']} (95% CI {low}-{high}, "
                      f"{window['labelled']} labels): even its upper bound is below gate.min_accuracy "
                      f"{settings.gate.min_accuracy}"}
    return result


def describe(assessed: dict[str, Any]) -> str:
    """One line per version for the console: its window's figure, or how many labels it still needs."""
    lines = []
    for version, figures in assessed["live_quality"].items():
        window = figures["window"]
        serving = " (serving)" if figures.get("serving") else ""
        if window["status"] == "measured":
            low, high = window["accuracy_ci"]
            lines.append(f"{version}{serving}: accuracy {window['accuracy']} (95% CI {low}-{high}) on "
                         f"{window['labelled']} labels, macro-F1 {window['macro_f1']}")
        else:
            lines.append(f"{version}{serving}: {window['labelled']} labels, {window['min_labels']} needed "
                         f"({window['needed']} more): no verdict")
    breach = assessed.get("live_quality_breach")
    if breach:
        lines.append(f"LIVE QUALITY BREACH: {breach['reason']}")
    return "; ".join(lines) if lines else "no trusted labels yet"


def cell(figures: dict[str, Any]) -> str:
    if figures["status"] != "measured":
        return f"{figures['labelled']} labels, {figures['min_labels']} needed ({figures['needed']} more)"
    low, high = figures["accuracy_ci"]
    return f"{figures['accuracy']:.3f} [{low:.3f}, {high:.3f}] n={figures['labelled']}"


def recalls(figures: dict[str, Any]) -> str:
    return "<br>".join(f"{html.escape(name)} {c['recall']:.2f} [{c['recall_ci'][0]:.2f}, {c['recall_ci'][1]:.2f}] "
                       f"n={c['labelled']}" for name, c in figures.get("per_class", {}).items()) or "&ndash;"


def render_table(assessed: dict[str, Any]) -> str:
    """The live quality as a small HTML section with inline styles, for the top of the monitoring report."""
    meta = assessed.get("live_labels", {})
    breach = assessed.get("live_quality_breach")
    style = "border:1px solid #d0d5dd;padding:4px 8px;text-align:left;vertical-align:top"
    rows = "".join(
        f'<tr><td style="{style}">{html.escape(version)}{" (serving)" if figures.get("serving") else ""}</td>'
        f'<td style="{style}">{cell(figures["window"])}</td><td style="{style}">{cell(figures["cumulative"])}</td>'
        f'<td style="{style}">{figures["window"].get("macro_f1", "&ndash;")}</td>'
        f'<td style="{style}">{recalls(figures["window"])}</td></tr>'
        for version, figures in assessed.get("live_quality", {}).items())
    banner = (f'<p style="color:#b42318;font-weight:600">LIVE QUALITY BREACH: {html.escape(breach["reason"])}</p>'
              if breach else "")
    counted = (f"{meta.get('trusted', 0)} trusted labels ({meta.get('from_feedback_log', 0)} from labellers, "
               f"{meta.get('from_batches', 0)} from imported batches); {meta.get('suggestions_ignored', 0)} client "
               f"suggestions ignored; {meta.get('unmatched', 0)} without a served answer. Window: "
               f"{html.escape(str(meta.get('window', '')))}; accuracy [95% CI]; breach when the upper bound is below "
               f"gate.min_accuracy {meta.get('min_accuracy', '')}.")
    table = ('<table style="border-collapse:collapse;font-size:13px"><thead><tr>'
             + "".join(f'<th style="{style};background:#f2f4f7">{name}</th>' for name in (
                 "model version", "accuracy, window", "accuracy, cumulative", "macro-F1, window",
                 "recall per class, window"))
             + f"</tr></thead><tbody>{rows}</tbody></table>") if rows else "<p>No trusted labels yet.</p>"
    return (f'<section id="live-quality" style="font-family:system-ui,sans-serif;margin:1rem 2rem;color:#101828">'
            f"<h2>Live quality</h2>{banner}{table}<p style=\"font-size:12px\">{counted}</p></section>\n")


def insert_section(page: str, section: str) -> str:
    """`section` at the top of an HTML page's body (Evidently's report, or the no-verdict page)."""
    body = re.search(r"<body[^>]*>", page, flags=re.IGNORECASE)
    return page[:body.end()] + section + page[body.end():] if body else page + section
