"""What the model does, on the service's `/metrics`, named by Prometheus conventions.

- `mlops_predictions_total{label, model_version}`: answers given, per predicted label (counter);
- `mlops_prediction_confidence{model_version}`: the answers' scores (histogram);
- `mlops_model_info{model_version, precision}`: 1 for the model being served (info-style gauge);
- `mlops_drift_detected`, `mlops_drift_status{status}`, `mlops_drift_drifted_share`,
  `mlops_drift_signal_score{signal}`, `mlops_drift_signal_threshold{signal}`,
  `mlops_drift_signal_drifted{signal}`, `mlops_drift_last_run_timestamp_seconds`: the newest
  monitoring run's verdict and per-signal scores (its summary.json), re-read every `refresh_s` seconds;
- `mlops_live_accuracy{model_version}`, `mlops_live_accuracy_upper{model_version}`,
  `mlops_live_labelled{model_version}`, `mlops_live_quality_breach`: the same run's live quality (the
  window's accuracy, the upper bound of its 95% interval and its trusted-label count, per model version;
  accuracy is NaN while a version has too few labels for a figure), and 1 when that run found a breach.
  Read from the summary, never computed on the request path: labels are joined and judged by `mlops monitor`.

The monitoring runs are looked for under $MLOPS_PROJECT_DIR (`make serve` sets it; `bentoml serve <bento>`
runs in the Bento's own folder, not the project), else the working directory.

BentoML serves `/metrics` from prometheus_client's multiprocess files; its own `bentoml.metrics` module
is a deprecated alias of prometheus_client that must not be touched before the worker has set
PROMETHEUS_MULTIPROC_DIR, so the metrics are created in the service's `__init__` (inside the worker),
from prometheus_client directly, as BentoML's deprecation notice says. Gauges use the `mostrecent`
multiprocess mode: every worker reports the same value, and /metrics shows one series, not one per pid.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlops.core.environment import project_dir

STATUSES = ("drift", "no_drift", "insufficient_data")  # of `mlops monitor`'s summary.json
CONFIDENCE_BUCKETS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
SUMMARIES = ("reports/monitoring/summary.json", "reports/monitoring-runs/*/summary.json")  # dvc stage; DAG runs


def latest_summary(project: Path) -> Path | None:
    """The newest monitoring summary.json of the project (the dvc stage's or a monitoring DAG run's)."""
    found = [path for pattern in SUMMARIES for path in Path(project).glob(pattern) if path.is_file()]
    return max(found, key=lambda path: path.stat().st_mtime) if found else None


class ModelMetrics:
    """The service's model metrics; `observe` after each answer, drift gauges refreshed in the background."""

    def __init__(self, version: str, precision: str, project: Path | None = None, registry: Any = None,
                 refresh_s: float = 30.0) -> None:
        from prometheus_client import REGISTRY, Counter, Gauge, Histogram

        registry = registry or REGISTRY
        self.version = version
        self.project = Path(project) if project else project_dir()
        self.refresh_s = refresh_s
        self.seen: tuple[str, float] | None = None

        def gauge(name: str, documentation: str, labels: tuple[str, ...] = ()) -> Any:
            return Gauge(name, documentation, labels, registry=registry, multiprocess_mode="mostrecent")

        self.predictions = Counter("mlops_predictions", "Answers given, by predicted label.",
                                   ("label", "model_version"), registry=registry)
        self.confidence = Histogram("mlops_prediction_confidence", "Score (top probability) of each answer.",
                                    ("model_version",), buckets=CONFIDENCE_BUCKETS, registry=registry)
        self.precision = precision
        self.info = gauge("mlops_model_info", "The model being served (1; 0 once a swap replaced it).",
                          ("model_version", "precision"))
        self.info.labels(model_version=version, precision=precision).set(1)
        self.drift_detected = gauge("mlops_drift_detected", "1 if the newest monitoring run found drift, else 0.")
        self.drift_status = gauge("mlops_drift_status", "1 for the newest monitoring run's verdict.", ("status",))
        self.drifted_share = gauge("mlops_drift_drifted_share", "Share of the signals that drifted, newest run.")
        self.signal_score = gauge("mlops_drift_signal_score", "Each signal's drift score, newest run.", ("signal",))
        self.signal_threshold = gauge("mlops_drift_signal_threshold",
                                      "Each signal's effective threshold (threshold or noise floor).", ("signal",))
        self.signal_drifted = gauge("mlops_drift_signal_drifted", "1 if the signal drifted, newest run.", ("signal",))
        self.last_run = gauge("mlops_drift_last_run_timestamp_seconds", "When the newest monitoring run wrote.")
        self.live_accuracy = gauge("mlops_live_accuracy", "Accuracy of the served answers on trusted labels, "
                                   "monitoring window, newest run (NaN: too few labels).", ("model_version",))
        self.live_accuracy_upper = gauge("mlops_live_accuracy_upper", "Upper bound of the live accuracy's 95% "
                                         "interval, newest run (NaN: too few labels).", ("model_version",))
        self.live_labelled = gauge("mlops_live_labelled", "Trusted labels in the monitoring window, newest run.",
                                   ("model_version",))
        self.live_breach = gauge("mlops_live_quality_breach", "1 if the newest run found the serving version's "
                                 "live accuracy below gate.min_accuracy, else 0.")

    def observe(self, answers: Iterable[dict[str, Any]], serving: str | None = None) -> None:
        """Count each answer by label and record its score, under the version that produced it (a canary's answers
        under the canary's). `serving` is the champion the service serves now (a hot swap changes it): what
        `mlops_model_info` names, which a canary's answers do not move."""
        if serving is not None and serving != self.version:  # a promotion or rollback swapped the model in
            self.info.labels(model_version=self.version, precision=self.precision).set(0)
            self.info.labels(model_version=serving, precision=self.precision).set(1)
            self.version = serving
        for answer in answers:
            version = answer.get("model_version") or self.version
            self.predictions.labels(label=answer["label"], model_version=version).inc()
            self.confidence.labels(model_version=version).observe(answer["score"])

    def refresh_drift(self) -> bool:
        """Read the newest monitoring summary into the drift gauges if it changed; True when it did."""
        path = latest_summary(self.project)
        if path is None:
            return False
        stamp = (str(path), path.stat().st_mtime)
        if stamp == self.seen:
            return False
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # being written, or not ours: the next refresh reads it
            return False
        status = summary.get("status")
        self.drift_detected.set(1 if status == "drift" else 0)
        for name in STATUSES:
            self.drift_status.labels(status=name).set(1 if name == status else 0)
        self.drifted_share.set(float(summary.get("drifted_share") or 0.0))
        for name, signal in (summary.get("signals") or {}).items():
            self.signal_score.labels(signal=name).set(float(signal["score"]))
            effective = max(float(signal["threshold"]), float(signal.get("noise_floor") or 0.0))
            self.signal_threshold.labels(signal=name).set(effective)
            self.signal_drifted.labels(signal=name).set(1 if signal.get("drifted") else 0)
        self.refresh_live(summary)
        self.last_run.set(stamp[1])
        self.seen = stamp
        return True

    def refresh_live(self, summary: dict[str, Any]) -> None:
        """The summary's live quality (`live_quality`, per model version) into the live gauges."""
        nan = float("nan")
        for version, figures in (summary.get("live_quality") or {}).items():
            window = (figures or {}).get("window") or {}
            measured = window.get("status") == "measured"
            self.live_accuracy.labels(model_version=version).set(float(window["accuracy"]) if measured else nan)
            self.live_accuracy_upper.labels(model_version=version).set(
                float(window["accuracy_ci"][1]) if measured else nan)
            self.live_labelled.labels(model_version=version).set(float(window.get("labelled") or 0))
        self.live_breach.set(1 if summary.get("live_quality_breach") else 0)

    def start(self) -> ModelMetrics:
        """Refresh the drift gauges now and then every `refresh_s` seconds, in a daemon thread."""
        self.refresh_drift()
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(self.refresh_s):
                try:
                    self.refresh_drift()
                except Exception as error:  # a bad file must not end the refreshing
                    print(f"model metrics: could not read the monitoring summary: {error}", flush=True)

        threading.Thread(target=loop, name="drift-metrics", daemon=True).start()
        self.stop = stop
        return self
