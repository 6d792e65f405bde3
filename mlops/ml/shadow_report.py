"""What the shadow showed: per challenger, how often it agreed with the champion, and who was right when labels came.

The service's shadow (mlops/serving/shadow.py) writes one record per shadowed
text to the traffic log's `shadow-*.jsonl` parts, linked to the served answer
by its id (`shadow_of`) and carrying the champion's answer. Here, over the
newest `monitor.window_rows` shadow records (of the last `monitor.window_hours`,
when set), per challenger version: the shadowed answers, the share on which it
agreed with the champion with its Wilson 95% interval, and, among those
answers a labeller labelled (the trusted labels live quality counts,
mlops/ml/live_quality.py), the challenger's accuracy beside the champion's on
the very same texts, each with its interval. Below `monitor.live_min_labels`
labels there is no accuracy, only the count and how many more are needed.

`mlops monitor` adds this to summary.json (`shadow`) and to the report;
`mlops promote` judges a candidate's record against `promote.require_shadow`
(`evidence_refusal`).
"""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops.core.environment import feedback_dir, traffic_dir
from mlops.core.traffic_log import list_shadow_parts, read_part
from mlops.ml.live_quality import interval, trusted_labels

if TYPE_CHECKING:
    from mlops.core.settings import Settings, ShadowEvidence

COLUMNS = ["timestamp", "shadow_of", "prediction", "model_version", "champion_prediction", "champion_version"]


def read_shadow(directory: Path, rows: int, hours: float | None = None) -> pd.DataFrame:
    """The newest `rows` shadow records of a traffic log directory (served in the last `hours`, when given)."""
    directory = Path(directory)
    directory = directory if directory.is_dir() else directory.parent
    frames, count = [], 0
    for part in reversed(list_shadow_parts(directory)):
        if not part.stat().st_size:
            continue
        frame, _ = read_part(part)
        frames.append(frame.reindex(columns=COLUMNS))
        count += len(frame)
        if count >= rows:
            break
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    frame = pd.concat(reversed(frames), ignore_index=True)
    if hours is not None:
        since = pd.Timestamp(datetime.now(UTC) - timedelta(hours=hours))
        frame = frame[pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601") >= since]
    return frame.tail(rows).reset_index(drop=True)


def accuracy(right: pd.Series) -> dict[str, Any]:
    correct, total = int(right.sum()), len(right)
    return {"accuracy": round(correct / total, 4), "accuracy_ci": interval(correct, total)}


def judge_version(records: pd.DataFrame, labels: pd.DataFrame, min_labels: int) -> dict[str, Any]:
    """One challenger's shadowed answers: agreement with the champion, and both accuracies on the labelled ones."""
    agreed = records["prediction"].astype(str) == records["champion_prediction"].astype(str)
    figures: dict[str, Any] = {
        "answers": len(records), "agreed": int(agreed.sum()), "agreement": round(float(agreed.mean()), 4),
        "agreement_ci": interval(int(agreed.sum()), len(records)),
        "champion_versions": sorted(records["champion_version"].dropna().astype(str).unique())}
    labelled = records.merge(labels[["id", "label"]], left_on="shadow_of", right_on="id", how="inner")
    challenger_right = labelled["prediction"].astype(str) == labelled["label"]
    champion_right = labelled["champion_prediction"].astype(str) == labelled["label"]
    live: dict[str, Any] = {"labelled": len(labelled), "min_labels": min_labels,
                            "challenger_correct": int(challenger_right.sum()),
                            "champion_correct": int(champion_right.sum())}
    if len(labelled) < min_labels:
        live |= {"status": "insufficient_labels", "needed": min_labels - len(labelled)}
    else:
        live |= {"status": "measured", "challenger": accuracy(challenger_right),
                 "champion": accuracy(champion_right)}
    figures["live"] = live
    return figures


def assess_shadow(settings: Settings, feedback: Path, traffic: Path) -> dict[str, Any]:
    """`shadow`: per challenger version, its agreement with the champion and the live accuracies, side by side."""
    config = settings.monitor
    records = read_shadow(traffic, config.window_rows, config.window_hours)
    hours = f", of the last {config.window_hours:g} h" if config.window_hours else ""
    result: dict[str, Any] = {"records": len(records),
                              "window": f"the newest {config.window_rows} shadow records{hours}", "challengers": {}}
    if not len(records):
        result["status"] = "no_shadow_records"
        return result
    labels, _ = trusted_labels(feedback, Path(settings.feedback.batches_dir), traffic)
    for version, group in records.groupby("model_version", sort=False):
        result["challengers"][str(version)] = judge_version(group, labels, config.live_min_labels)
    result["status"] = "measured"
    return result


def describe_shadow(shadow: dict[str, Any]) -> str:
    """One line per challenger for the console."""
    if not shadow.get("challengers"):
        return "no shadow records (serve.shadow off, or no challenger)"
    lines = []
    for version, figures in shadow["challengers"].items():
        low, high = figures["agreement_ci"]
        live = figures["live"]
        if live["status"] == "measured":
            accuracies = (f"live accuracy {live['challenger']['accuracy']} vs the champion's "
                          f"{live['champion']['accuracy']} on {live['labelled']} labels")
        else:
            accuracies = f"{live['labelled']} labels, {live['min_labels']} needed for live accuracy"
        lines.append(f"{version}: agrees with the champion on {figures['agreement']:.1%} (95% CI {low}-{high}) of "
                     f"{figures['answers']} answers; {accuracies}")
    return "; ".join(lines)


def figure(value: dict[str, Any] | None) -> str:
    if not value:
        return "&ndash;"
    low, high = value["accuracy_ci"]
    return f"{value['accuracy']:.3f} [{low:.3f}, {high:.3f}]"


def render_shadow(shadow: dict[str, Any]) -> str:
    """The shadow as a small HTML section (inline styles), for the monitoring report below live quality."""
    style = "border:1px solid #d0d5dd;padding:4px 8px;text-align:left;vertical-align:top"
    rows = ""
    for version, f in shadow.get("challengers", {}).items():
        live = f["live"]
        labelled = (f"{live['labelled']}" if live["status"] == "measured"
                    else f"{live['labelled']} ({live['needed']} more needed)")
        cells = [html.escape(version), html.escape(", ".join(f["champion_versions"])), str(f["answers"]),
                 f"{f['agreement']:.3f} [{f['agreement_ci'][0]:.3f}, {f['agreement_ci'][1]:.3f}]", labelled,
                 figure(live.get("challenger")), figure(live.get("champion"))]
        rows += "<tr>" + "".join(f'<td style="{style}">{cell}</td>' for cell in cells) + "</tr>"
    heads = ("challenger", "champion", "shadowed answers", "agreement [95% CI]", "labelled",
             "challenger accuracy", "champion accuracy, same texts")
    table = ('<table style="border-collapse:collapse;font-size:13px"><thead><tr>'
             + "".join(f'<th style="{style};background:#f2f4f7">{name}</th>' for name in heads)
             + f"</tr></thead><tbody>{rows}</tbody></table>") if rows else \
        "<p>No shadow records (serve.shadow is off, or the registry has no challenger).</p>"
    return (f'<section id="shadow" style="font-family:system-ui,sans-serif;margin:1rem 2rem;color:#101828">'
            f"<h2>Shadow</h2>{table}<p style=\"font-size:12px\">Window: {html.escape(shadow.get('window', ''))}; "
            "accuracies on the trusted labels of the shadowed answers.</p></section>\n")


def evidence_refusal(required: ShadowEvidence, candidate: str, shadow: dict[str, Any]) -> str | None:
    """Why the shadow's record of `candidate` falls short of `promote.require_shadow`; None when it suffices."""
    figures = shadow.get("challengers", {}).get(candidate)
    if figures is None:
        return (f"promote.require_shadow asks for {required.min_answers} shadowed answers and the shadow has none "
                f"for {candidate} in {shadow.get('window', 'the window')} (is serve.shadow on, and "
                f"{candidate} the registry's challenger?)")
    if figures["answers"] < required.min_answers:
        return (f"the shadow scored {figures['answers']} answers with {candidate}; promote.require_shadow asks for "
                f"{required.min_answers}")
    if required.min_agreement is not None and figures["agreement"] < required.min_agreement:
        return (f"{candidate} agreed with the champion on {figures['agreement']} of {figures['answers']} shadowed "
                f"answers; promote.require_shadow.min_agreement is {required.min_agreement}")
    if required.min_live_accuracy is not None:
        live = figures["live"]
        labelled = live["labelled"]
        if labelled < required.min_labels:
            return (f"{labelled} of {candidate}'s shadowed answers have trusted labels; "
                    f"promote.require_shadow.min_labels is {required.min_labels}")
        right = round(live["challenger_correct"] / labelled, 4)
        if right < required.min_live_accuracy:
            return (f"{candidate}'s live accuracy in shadow is {right} on {labelled} labels; "
                    f"promote.require_shadow.min_live_accuracy is {required.min_live_accuracy}")
    return None


def shadow_refusal(settings: Settings, candidate: dict[str, Any]) -> dict[str, Any] | None:
    """`mlops promote`'s decision when `promote.require_shadow` is set and the traffic log's shadow parts lack the
    evidence for `candidate`: refused, an outcome like a gate rejection (exit 3). None: promotion may go on."""
    required = settings.promote.require_shadow
    if required is None:
        return None

    shadow = assess_shadow(settings, feedback_dir(), traffic_dir())
    reason = evidence_refusal(required, candidate["model"], shadow)
    if reason is None:
        return None
    return {"promoted": False, "rejected": True, "rejected_by": "promote.require_shadow", "candidate": candidate,
            "reason": f"not enough shadow evidence: {reason}", "required": required.model_dump(),
            "shadow": shadow["challengers"].get(candidate["model"]),
            "next_step": "serve with serve.shadow on until the shadow has that evidence, then run `mlops promote` "
                         f"again; `mlops registry promote {candidate['model']}` promotes it without"}
