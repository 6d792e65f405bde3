"""The Evidently report that says what summary.json says: one verdict, six signals, the same thresholds.

Evidently's DataDriftPreset judges its columns by its own rules and puts its
own "dataset drift" count on top: five columns, a Wasserstein distance on
confidence, no embedding. `mlops monitor` decides on six signals (embedding
included), on the fall of mean confidence and on thresholds raised to each
score's noise floor, so a report built from the preset can disagree with the
verdict that starts a retraining. This report is built from the verdict:
a headline metric (the share of drifted signals, tested against
`drift_share`, named with the verdict), one metric per signal with its score
and a test against the same effective threshold, and, for the columns
Evidently can draw, its own ValueDrift distributions at those thresholds.
The metrics are Evidently metrics (SingleValueMetric subclasses), so the
HTML, the JSON snapshot and `evidently ui` all show the same figures.
"""

from __future__ import annotations

from typing import Any

from evidently.core.metric_types import SingleValueCalculation, SingleValueMetric

DRAWN = "ValueDrift"  # the per-column distribution metrics that accompany the verdict


class MlopsDriftVerdict(SingleValueMetric):
    """The dataset verdict: value = share of drifted signals; drift when it reaches `share_threshold`."""

    status: str
    drifted: int
    total: int
    share_threshold: float
    value: float


class MlopsDriftVerdictCalculation(SingleValueCalculation[MlopsDriftVerdict]):
    def calculate(self, context: Any, current_data: Any, reference_data: Any) -> Any:
        return self.result(self.metric.value)

    def display_name(self) -> str:
        metric = self.metric
        return (f"Verdict: {metric.status.upper().replace('_', ' ')}: {metric.drifted} of {metric.total} signals "
                f"drifted (drift when at least {metric.share_threshold:.0%} do)")


class MlopsDriftSignal(SingleValueMetric):
    """One signal of the verdict: its score, its method, the effective threshold it is judged by."""

    signal: str
    method: str
    score: float
    threshold: float
    noise_floor: float
    effective_threshold: float


class MlopsDriftSignalCalculation(SingleValueCalculation[MlopsDriftSignal]):
    def calculate(self, context: Any, current_data: Any, reference_data: Any) -> Any:
        return self.result(self.metric.score)

    def display_name(self) -> str:
        metric = self.metric
        return (f"Signal {metric.signal}: {metric.method}, drifts at >= {metric.effective_threshold:.4g} "
                f"(threshold {metric.threshold:.4g}, noise floor {metric.noise_floor:.4g})")


def effective(signal: dict[str, Any]) -> float:
    return max(float(signal["threshold"]), float(signal["noise_floor"]))


def verdict_metrics(verdict: dict[str, Any]) -> list[Any]:
    """The headline and one metric per signal, each with the test that decides it in summary.json."""
    from evidently.tests import lt

    signals = verdict["signals"]
    drifted = sum(bool(s["drifted"]) for s in signals.values())
    headline = MlopsDriftVerdict(status=verdict["status"], drifted=drifted, total=len(signals),
                                 share_threshold=float(verdict["drift_share_threshold"]),
                                 value=float(verdict["drifted_share"]),
                                 tests=[lt(float(verdict["drift_share_threshold"]))])
    per_signal = [MlopsDriftSignal(signal=name, method=s["method"], score=float(s["score"]),
                                   threshold=float(s["threshold"]), noise_floor=float(s["noise_floor"]),
                                   effective_threshold=effective(s), tests=[lt(effective(s))])
                  for name, s in signals.items()]
    return [headline, *per_signal]


def verdict_report(verdict: dict[str, Any], reference: Any, current: Any, drawn: dict[str, str]) -> Any:
    """Run the report on the two Evidently datasets; `drawn` maps column -> Evidently drift method."""
    from evidently import Report
    from evidently.metrics import ValueDrift

    distributions = [ValueDrift(column=column, method=method, threshold=effective(verdict["signals"][column]))
                     for column, method in drawn.items()]
    return Report([*verdict_metrics(verdict), *distributions], include_tests=True).run(
        current_data=current, reference_data=reference)


def read_verdict(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The verdict as the report states it, from a snapshot's dict (or its saved JSON): headline and signals,
    each with whether its Evidently test passed."""
    passed = {test["metric_config"]["metric_id"]: test["status"] == "SUCCESS" for test in snapshot.get("tests", [])}
    result: dict[str, Any] = {"signals": {}}
    for metric in snapshot["metrics"]:
        config, kind = metric["config"], metric["config"].get("type", "")
        if kind.endswith(":MlopsDriftVerdict"):
            result |= {"status": config["status"], "drifted_share": metric["value"],
                       "headline_test_passed": passed.get(metric["id"])}
        elif kind.endswith(":MlopsDriftSignal"):
            result["signals"][config["signal"]] = {"score": metric["value"], "threshold": config["effective_threshold"],
                                                   "test_passed": passed.get(metric["id"])}
    return result
