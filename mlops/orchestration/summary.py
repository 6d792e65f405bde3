"""What `make run` prints at the end: where the lifecycle's results are."""

from __future__ import annotations

import json
from pathlib import Path


def read(path: str) -> dict:
    file = Path(path)
    return json.loads(file.read_text()) if file.is_file() else {}


def recent_lines(metrics: dict, decision: dict) -> list[str]:
    """The recent set (held-out feedback), when there is one: its size, accuracy and the champion comparison."""
    recent = metrics.get("recent")
    if not recent:
        return []
    lines = [f"  recent set      accuracy {recent['accuracy']} (95% CI {recent['accuracy_ci'][0]}-"
             f"{recent['accuracy_ci'][1]}) on {recent['rows']} held-out feedback rows"]
    versus = (decision.get("comparison") or {}).get("recent")
    if versus:
        lines.append(f"  vs champion     on the recent set: accuracy {versus['champion_accuracy']} -> "
                     f"{versus['challenger_accuracy']}, macro-F1 difference {versus['difference']} "
                     f"(CI {versus['ci_low']} to {versus['ci_high']}): {versus['verdict']}"
                     + (f"; {versus['too_small']}" if versus.get("too_small") else ""))
    return lines


def main() -> None:
    metrics, decision = read("metrics/evaluate.json"), read("reports/gate/decision.json")
    package, monitor = read("reports/package.json"), read("reports/monitoring/summary.json")
    verdict = "accepted" if decision.get("accepted") else "rejected"
    lines = [
        "",
        "Lifecycle finished.",
        f"  test metrics    accuracy {metrics.get('accuracy')}"
        + (f" (95% CI {metrics['accuracy_ci'][0]}-{metrics['accuracy_ci'][1]}, {metrics.get('rows')} rows)"
           if metrics.get("accuracy_ci") else "") + f", macro-F1 {metrics.get('macro_f1')}"
        "  (metrics/evaluate.json, plots/confusion_matrix.png)",
        *recent_lines(metrics, decision),
        f"  gate            {verdict}: {'; '.join(decision.get('reasons', []))}  (reports/gate/decision.json)",
        f"  package         {package.get('status')}: bento {package.get('bento', '-')}  (make serve)",
        f"  monitoring      {monitor.get('status', '?').replace('_', ' ')}: {monitor.get('current')}"
        "  (reports/monitoring/report.html, history: reports/monitoring-history/index.html)",
        "  validation      reports/validation/report.html",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
