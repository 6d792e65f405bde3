"""The monitoring history: a static index of every report and plots of drift scores and live accuracy over time.

Each `mlops monitor` run archives its report under `monitor.history_dir/<UTC
time>/`; this page is what an engineer opens to see when traffic started to
move and which signal moved first, and, where labels came back, how often
each model version was right (its live accuracy with its 95% interval). It is plain HTML with inline styles and a
PNG, so it works from a file share, an artifact store or an air-gapped
machine alike.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from mlops.core.errors import MlopsError
from mlops.core.io import atomic_path, read_json

VERDICT_STYLE = {"drift": ("DRIFT", "#b42318", "#fef3f2"), "no_drift": ("no drift", "#067647", "#ecfdf3"),
                 "insufficient_data": ("no verdict", "#475467", "#f2f4f7")}



def save_figure(figure: Any, path: Path) -> bool:
    """Write a plot as a PNG atomically (a reader never sees half an image) and free it; True, as it was written."""
    import matplotlib.pyplot as plt

    figure.autofmt_xdate()
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
    return True

def read_history(history_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every archived run, oldest first, as (directory name, summary)."""
    entries = []
    for summary in sorted(Path(history_dir).glob("*/summary.json")):
        try:
            entries.append((summary.parent.name, read_json(summary)))
        except (MlopsError, OSError):
            continue  # a run being archived at this moment
    return entries


def plot_scores(entries: list[tuple[str, dict[str, Any]]], path: Path) -> bool:
    """Each signal's score divided by its threshold, per run: above 1 is drift."""
    judged = [(name, s) for name, s in entries if s.get("signals")]
    if not judged:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    times = [pd.Timestamp(s["created"]) for _, s in judged]
    figure, axis = plt.subplots(figsize=(9, 4.2))
    for signal in judged[-1][1]["signals"]:
        values = [s["signals"][signal]["score"] / s["signals"][signal]["threshold"] if signal in s["signals"]
                  else float("nan") for _, s in judged]
        axis.plot(times, values, marker="o", markersize=3, label=signal)
    axis.axhline(1.0, color="black", linestyle="--", linewidth=1, label="threshold")
    for time, (_, summary) in zip(times, judged, strict=True):
        if summary.get("drift"):
            axis.axvline(time, color="#b42318", alpha=0.15, linewidth=6)
    axis.set_ylabel("score / threshold")
    axis.set_title("Drift scores over time (shaded: dataset drift)")
    axis.legend(loc="upper left", fontsize=8, ncol=4)
    return save_figure(figure, path)


def live_points(entries: list[tuple[str, dict[str, Any]]]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Per model version, the runs that measured its live accuracy (window): (created, figures), oldest first."""
    points: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for name, summary in entries:
        for version, figures in (summary.get("live_quality") or {}).items():
            window = figures.get("window") or {}
            if window.get("status") == "measured":
                points.setdefault(version, []).append((summary.get("created", name), window))
    return points


def plot_live_accuracy(entries: list[tuple[str, dict[str, Any]]], path: Path) -> bool:
    """Each version's live accuracy per run with its 95% interval, and the gate's minimum accuracy."""
    points = live_points(entries)
    if not points:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    figure, axis = plt.subplots(figsize=(9, 3.6))
    for version, measured in points.items():
        times = [pd.Timestamp(created) for created, _ in measured]
        accuracy = [w["accuracy"] for _, w in measured]
        errors = [[w["accuracy"] - w["accuracy_ci"][0] for _, w in measured],
                  [w["accuracy_ci"][1] - w["accuracy"] for _, w in measured]]
        axis.errorbar(times, accuracy, yerr=errors, marker="o", markersize=3, capsize=3, label=version)
    minimum = next((s["live_labels"]["min_accuracy"] for _, s in reversed(entries)
                    if (s.get("live_labels") or {}).get("min_accuracy") is not None), None)
    if minimum is not None:
        axis.axhline(minimum, color="black", linestyle="--", linewidth=1, label="gate.min_accuracy")
    axis.set_ylim(0, 1.02)
    axis.set_ylabel("live accuracy (95% CI)")
    axis.set_title("Live accuracy from returning labels, per model version")
    axis.legend(loc="lower left", fontsize=8, ncol=3)
    return save_figure(figure, path)


def live_cell(summary: dict[str, Any]) -> str:
    """Each version's live accuracy [95% CI] and label count, or how many labels it still needs."""
    lines = []
    for version, figures in (summary.get("live_quality") or {}).items():
        window = figures.get("window") or {}
        if window.get("status") == "measured":
            low, high = window["accuracy_ci"]
            text = f"{window['accuracy']:.3f} [{low:.3f}, {high:.3f}] n={window['labelled']}"
        else:
            text = f"{window.get('labelled', 0)} labels, {window.get('min_labels', '?')} needed"
        breached = (summary.get("live_quality_breach") or {}).get("model_version") == version
        style = ' style="color:#b42318;font-weight:600"' if breached else ""
        lines.append(f"<span{style}>{'&#9660; ' if breached else ''}{html.escape(version)}: {text}</span>")
    return "<br>".join(lines) or "&ndash;"


def row(name: str, summary: dict[str, Any]) -> str:
    label, colour, background = VERDICT_STYLE.get(summary.get("status", ""), ("?", "#475467", "#f2f4f7"))
    cells = []
    for signal, value in summary.get("signals", {}).items():
        mark = "&#9650; " if value["drifted"] else ""
        style = ' style="color:#b42318;font-weight:600"' if value["drifted"] else ""
        cells.append(f"<span{style}>{mark}{html.escape(signal)} {value['score']:g}</span>")
    return (f"<tr><td>{html.escape(summary.get('created', name))}</td>"
            f'<td><span class="badge" style="color:{colour};background:{background}">{label}</span></td>'
            f"<td>{summary.get('current_rows', '')}</td><td>{html.escape(str(summary.get('current', '')))}</td>"
            f"<td>{'<br>'.join(cells) or '&ndash;'}</td><td>{live_cell(summary)}</td>"
            f'<td><a href="{html.escape(name)}/report.html">report</a> &middot; '
            f'<a href="{html.escape(name)}/summary.json">json</a></td></tr>')


def render_history(history_dir: Path) -> Path:
    """Rewrite index.html, drift_over_time.png and live_accuracy_over_time.png from the archived runs."""
    history_dir = Path(history_dir)
    entries = read_history(history_dir)
    plotted = plot_scores(entries, history_dir / "drift_over_time.png")
    live_plotted = plot_live_accuracy(entries, history_dir / "live_accuracy_over_time.png")
    drifts = sum(1 for _, s in entries if s.get("drift"))
    breaches = sum(1 for _, s in entries if s.get("live_quality_breach"))
    rows = "\n".join(row(name, summary) for name, summary in reversed(entries))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Monitoring history</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #101828; }}
table {{ border-collapse: collapse; width: 100%; font-size: 14px; }}
th, td {{ border: 1px solid #d0d5dd; padding: 6px 8px; text-align: left; vertical-align: top; }}
th {{ background: #f2f4f7; }}
.badge {{ border-radius: 10px; padding: 2px 8px; font-weight: 600; }}
img {{ max-width: 100%; border: 1px solid #d0d5dd; }}
</style></head><body>
<h1>Monitoring history</h1>
<p>{len(entries)} reports, {drifts} with dataset drift. Live quality breaches: {breaches}. Newest first; each
links to its Evidently report.</p>
{'<img src="drift_over_time.png" alt="drift scores over time">' if plotted else ''}
{'<img src="live_accuracy_over_time.png" alt="live accuracy over time">' if live_plotted else ''}
<table><thead><tr><th>created (UTC)</th><th>verdict</th><th>rows</th><th>current window</th>
<th>signal scores (&#9650; drifted)</th><th>live accuracy [95% CI] (&#9660; breach)</th><th></th></tr></thead>
<tbody>
{rows}
</tbody></table>
</body></html>
"""
    with atomic_path(history_dir / "index.html") as tmp:
        tmp.write_text(page, encoding="utf-8")
    return history_dir / "index.html"
