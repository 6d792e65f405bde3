"""What `make run` prints at the end: where the lifecycle's results are."""

from __future__ import annotations

import json
from pathlib import Path

from mlops.core.errors import REJECTED_EXIT
from mlops.core.pipeline import SHIPPED, stage_path
from mlops.core.records import GateDecision, PackageResult, PromotionRecord, read_metrics
from mlops.core.registry import PROMOTION_RECORD
from mlops.core.settings import load_settings


def monitor_history() -> Path:
    """monitor.history_dir of the project's params.yaml, else of the params this code ships with."""

    params = Path("params.yaml")
    return Path(load_settings(params if params.is_file() else SHIPPED.with_name("params.yaml")).monitor.history_dir)


def read(path: str | Path) -> dict:
    file = Path(path)
    return json.loads(file.read_text()) if file.is_file() else {}


def recent_lines(metrics: dict, decision: GateDecision | None) -> list[str]:
    """The recent set (held-out feedback), when there is one: its size, accuracy and the champion comparison."""
    recent = metrics.get("recent")
    if not recent:
        return []
    lines = [f"  recent set      accuracy {recent['accuracy']} (95% CI {recent['accuracy_ci'][0]}-"
             f"{recent['accuracy_ci'][1]}) on {recent['rows']} held-out feedback rows"]
    versus = ((decision and decision.comparison) or {}).get("recent")
    if versus:
        lines.append(f"  vs champion     on the recent set: accuracy {versus['champion_accuracy']} -> "
                     f"{versus['challenger_accuracy']}, macro-F1 difference {versus['difference']} "
                     f"(CI {versus['ci_low']} to {versus['ci_high']}): {versus['verdict']}"
                     + (f"; {versus['too_small']}" if versus.get("too_small") else ""))
    return lines


def judged_variants(decision: GateDecision | None) -> dict:
    """Every serving variant the gate judged, by name (none when no gate ran)."""
    return ((decision and decision.variants) or {}).get("variants") or {}


def serving_note(metrics: dict, decision: GateDecision | None) -> str:
    """The serving variant the gate chose, with its measured speed against fp32 and the variants it refused."""
    if decision is None or "serve_variant" not in decision.model_fields_set:
        return ""
    chosen = decision.serve_variant
    measured = (metrics.get("variants") or {}).get(chosen, {})
    refused = [name for name, v in judged_variants(decision).items()
               if not v.get("accepted", True)]
    return (f", serves {chosen}" + (f" ({measured['speedup']}x fp32 texts/s)" if "speedup" in measured else "")
            + (f"; refused: {', '.join(refused)}" if refused else ""))


def variant_lines(decision: GateDecision | None) -> list[str]:
    """Every serving variant the gate judged (a distilled student's too): size, texts/s offline, accuracy, the
    points it loses against fp32, and the verdict."""
    return [f"    {name:<21} {v.get('size_mb')} MB, {v.get('texts_per_s')} texts/s, accuracy {v.get('accuracy')}, "
            f"drop {v.get('accuracy_drop_points')} points: "
            + ("serves" if decision is not None and name == decision.serve_variant else "accepted"
               if v.get("accepted", True) else "REFUSED")
            for name, v in judged_variants(decision).items()]


def evidence_line(decision: GateDecision | None) -> list[str]:
    """What the judged set's difference would need to be shown significant (rows, and on the recent set labels)."""
    comparison = (decision and decision.comparison) or {}
    judged = comparison.get("recent") if comparison.get("judged_on") == "recent" else comparison
    note = ((judged or {}).get("evidence") or {}).get("note")
    return [f"  evidence        {note}"] if note else []


def refit_line(refit: dict) -> list[str]:
    """Whether the packaged model was refit on every label (the recent set included), and its checks' figures."""
    if not refit:
        return []
    if not refit.get("refit"):
        return [f"  refit           not refit: {refit.get('why')}"]
    figures, training = refit.get("figures") or {}, refit.get("training") or {}
    return [f"  refit           packaged {refit.get('packaged')}: {refit.get('why')}; {training.get('feedback_rows')} "
            f"feedback rows, test accuracy {figures.get('refit_test_accuracy')} vs judged "
            f"{figures.get('judged_test_accuracy')}, agreement {figures.get('agreement')}"]


def verdict_line(decision: GateDecision | None, promotion: PromotionRecord | None) -> list[str]:
    """The run's verdict, last: a person reads it, and a rejection must not read as a crash."""

    if promotion is not None and promotion.promoted:
        return ["", f"Verdict: PROMOTED {promotion.champion}."]
    if (promotion is not None and promotion.rejected) or (decision is not None and not decision.accepted):
        next_step = decision.next_step if decision is not None else None
        return ["", f"Verdict: REJECTED by the gate, nothing promoted; the champion keeps serving (an outcome, not "
                    f"a failure: mlops promote and retrain-on-drift exit {REJECTED_EXIT}, make run 0).",
                *([f"Next step: {next_step}"] if next_step else [])]
    return ["", f"Verdict: nothing promoted: {promotion.reason if promotion else 'no promotion ran'}."]


def main() -> None:

    metrics_path, decision_path = stage_path(".", "evaluate", "metrics"), stage_path(".", "gate", "out")
    monitoring, validation = stage_path(".", "monitor", "out-dir"), stage_path(".", "validate", "report-dir")

    # the headline and its detail (per class, recent set, intervals), as evaluate split them for `dvc exp show`
    metrics, decision = read_metrics(metrics_path, missing_ok=True), GateDecision.read_if_present(decision_path)
    package = PackageResult.read_if_present(stage_path(".", "package", "out"))
    monitor = read(monitoring / "summary.json")
    plots = stage_path(".", "evaluate", "plots-dir")
    promotion = PromotionRecord.read_if_present(Path(PROMOTION_RECORD))
    verdict = ("accepted" if decision.accepted else "rejected") if decision else "not run"
    lines = [
        "",
        "Lifecycle finished.",
        f"  test metrics    accuracy {metrics.get('accuracy')}"
        + (f" (95% CI {metrics['accuracy_ci'][0]}-{metrics['accuracy_ci'][1]}, {metrics.get('rows')} rows)"
           if metrics.get("accuracy_ci") else "") + f", macro-F1 {metrics.get('macro_f1')}"
        f"  ({metrics_path}, {plots / 'confusion_matrix.png'})",
        *recent_lines(metrics, decision),
        f"  gate            {verdict}: {'; '.join(decision.reasons if decision else [])}  ({decision_path})",
        *evidence_line(decision),
        *refit_line(read(stage_path(".", "refit", "record"))),
        f"  package         {package.status if package else None}: bento {(package and package.bento) or '-'}"
        + serving_note(metrics, decision),
        *variant_lines(decision),
        f"  promotion       {'promoted' if promotion and promotion.promoted else 'not promoted'}: "
        f"{promotion.reason if promotion else '-'}  ({PROMOTION_RECORD}; make serve)",
        f"  monitoring      {monitor.get('status', '?').replace('_', ' ')}: {monitor.get('current')}"
        f"  ({monitoring / 'report.html'}, history: {monitor_history() / 'index.html'}, dashboards: make monitor-ui)",
        f"  validation      {validation / 'report.html'}",
        *verdict_line(decision, promotion),
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
