"""docker/grafana: the Grafana dashboard over the service's /metrics, checked statically.

Every series a panel queries must exist on /metrics: the exposition is rendered from the service's own
metrics code (ModelMetrics), fed one answer and a monitoring summary shaped as `mlops monitor` writes it,
so a renamed metric breaks this test instead of leaving a panel silently empty.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from mlops.serving.model_metrics import ModelMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "docker" / "grafana" / "mlops-dashboard.json"
PROMQL_WORDS = {"sum", "by", "rate", "histogram_quantile", "time", "le", "label", "model_version"}


def served_series(tmp_path: Path) -> set[str]:
    """The series names /metrics exposes once the service has answered and a monitoring run has written."""
    run = tmp_path / "reports" / "monitoring"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({
        "status": "drift", "drift": True, "drifted_share": 0.5,
        "signals": {"text_length": {"score": 0.3, "method": "m", "threshold": 0.1, "noise_floor": 0.2,
                                    "drifted": True}},
        "live_quality": {"m:1": {"window": {"status": "measured", "labelled": 200, "accuracy": 0.5,
                                            "accuracy_ci": [0.43, 0.57]}}},
        "live_quality_breach": True}), encoding="utf-8")
    registry = CollectorRegistry()
    metrics = ModelMetrics("m:1", "fp32", project=tmp_path, registry=registry)
    metrics.observe([{"label": "sports", "score": 0.9}])
    assert metrics.refresh_drift() is True
    text = generate_latest(registry).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def queried_series(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are neither functions, keywords nor labels."""
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)  # label matchers and ranges
    return {word for word in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr) if word not in PROMQL_WORDS}


def test_every_series_the_dashboard_queries_exists_on_metrics(tmp_path):
    # given the dashboard and the /metrics the service's code renders
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exposed = served_series(tmp_path)
    # when each panel's queries are read
    queried = {panel["title"]: set().union(*(queried_series(t["expr"]) for t in panel["targets"]))
               for panel in dashboard["panels"]}
    # then every panel queries something, and all of it is on /metrics
    assert queried and all(queried.values()), queried
    missing = {title: names - exposed for title, names in queried.items() if names - exposed}
    assert not missing, f"series not on /metrics: {missing}; exposed: {sorted(exposed)}"
    # and the drift signals, live accuracy per version and traffic volume each have a panel
    everything = set().union(*queried.values())
    assert {"mlops_drift_signal_score", "mlops_live_accuracy", "mlops_predictions_total"} <= everything
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


def test_a_series_missing_from_metrics_is_caught(tmp_path):
    # given a query naming a series the service never exposes, then the check names it
    assert queried_series("rate(mlops_predictions_totl[5m])") - served_series(tmp_path) == {"mlops_predictions_totl"}
