"""What `make run` prints at the end: where the lifecycle's results are."""

from __future__ import annotations

import json
from pathlib import Path


def read(path: str) -> dict:
    file = Path(path)
    return json.loads(file.read_text()) if file.is_file() else {}


def main() -> None:
    metrics, decision = read("metrics/evaluate.json"), read("reports/gate/decision.json")
    package, monitor = read("reports/package.json"), read("reports/monitoring/summary.json")
    promotion = read("reports/promotion.json")
    verdict = "accepted" if decision.get("accepted") else "rejected"
    lines = [
        "",
        "Lifecycle finished.",
        f"  test metrics    accuracy {metrics.get('accuracy')}, macro-F1 {metrics.get('macro_f1')}"
        "  (metrics/evaluate.json, plots/confusion_matrix.png)",
        f"  gate            {verdict}: {'; '.join(decision.get('reasons', []))}  (reports/gate/decision.json)",
        f"  package         {package.get('status')}: bento {package.get('bento', '-')}",
        f"  promotion       {'promoted' if promotion.get('promoted') else 'not promoted'}: "
        f"{promotion.get('reason', '-')}  (reports/promotion.json; make serve)",
        f"  monitoring      {monitor.get('status', '?').replace('_', ' ')}: {monitor.get('current')}"
        "  (reports/monitoring/report.html, history: reports/monitoring-history/index.html)",
        "  validation      reports/validation/report.html",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
