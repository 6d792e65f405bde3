"""What `make run` prints at the end: where the lifecycle's results are."""

from __future__ import annotations

import json
from pathlib import Path


def monitor_history() -> Path:
    """monitor.history_dir of the project's params.yaml, else of the params this code ships with."""
    from mlops.core.pipeline import SHIPPED
    from mlops.core.settings import load_settings

    params = Path("params.yaml")
    return Path(load_settings(params if params.is_file() else SHIPPED.with_name("params.yaml")).monitor.history_dir)


def read(path: str | Path) -> dict:
    file = Path(path)
    return json.loads(file.read_text()) if file.is_file() else {}


def main() -> None:
    from mlops.core.pipeline import stage_path
    from mlops.core.registry import PROMOTION_RECORD

    metrics_path, decision_path = stage_path(".", "evaluate", "metrics"), stage_path(".", "gate", "out")
    monitoring, validation = stage_path(".", "monitor", "out-dir"), stage_path(".", "validate", "report-dir")
    metrics, decision = read(metrics_path), read(decision_path)
    package, monitor = read(stage_path(".", "package", "out")), read(monitoring / "summary.json")
    plots = stage_path(".", "evaluate", "plots-dir")
    promotion = read(PROMOTION_RECORD)
    verdict = ("accepted" if decision.get("accepted") else "rejected") if decision else "not run"
    lines = [
        "",
        "Lifecycle finished.",
        f"  test metrics    accuracy {metrics.get('accuracy')}, macro-F1 {metrics.get('macro_f1')}"
        f"  ({metrics_path}, {plots / 'confusion_matrix.png'})",
        f"  gate            {verdict}: {'; '.join(decision.get('reasons', []))}  ({decision_path})",
        f"  package         {package.get('status')}: bento {package.get('bento', '-')}",
        f"  promotion       {'promoted' if promotion.get('promoted') else 'not promoted'}: "
        f"{promotion.get('reason', '-')}  ({PROMOTION_RECORD}; make serve)",
        f"  monitoring      {monitor.get('status', '?').replace('_', ' ')}: {monitor.get('current')}"
        f"  ({monitoring / 'report.html'}, history: {monitor_history() / 'index.html'})",
        f"  validation      {validation / 'report.html'}",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
