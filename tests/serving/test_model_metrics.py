"""The model's metrics on /metrics: predictions by label, confidence, the served version, the latest drift."""

from __future__ import annotations

import json
import os
import time

from prometheus_client import CollectorRegistry, generate_latest

from mlops.serving.model_metrics import ModelMetrics


def exposition(registry) -> str:
    return generate_latest(registry).decode()


def summary(status: str, scores: dict[str, float]) -> dict:
    return {"status": status, "drift": status == "drift", "drifted_share": 0.5 if status == "drift" else 0.0,
            "signals": {name: {"score": score, "method": "m", "threshold": 0.1, "noise_floor": 0.2,
                               "drifted": score >= 0.2} for name, score in scores.items()}}


def test_predictions_confidence_and_model_info(tmp_path):
    registry = CollectorRegistry()
    metrics = ModelMetrics("text-classifier:abc", "fp32", project=tmp_path, registry=registry)
    metrics.observe([{"label": "billing", "score": 0.92}, {"label": "billing", "score": 0.55},
                     {"label": "delivery", "score": 0.35}])
    text = exposition(registry)
    assert 'mlops_predictions_total{label="billing",model_version="text-classifier:abc"} 2.0' in text
    assert 'mlops_predictions_total{label="delivery",model_version="text-classifier:abc"} 1.0' in text
    assert 'mlops_prediction_confidence_count{model_version="text-classifier:abc"} 3.0' in text
    assert 'mlops_prediction_confidence_bucket{le="0.6",model_version="text-classifier:abc"} 2.0' in text
    assert 'mlops_model_info{model_version="text-classifier:abc",precision="fp32"} 1.0' in text
    assert metrics.refresh_drift() is False  # no monitoring run yet: no drift series
    assert "mlops_drift_detected 0.0" in exposition(registry) and "mlops_drift_signal_score{" not in text


def test_drift_gauges_follow_the_newest_monitoring_run(tmp_path):
    registry = CollectorRegistry()
    metrics = ModelMetrics("m:1", "int8", project=tmp_path, registry=registry)
    stage = tmp_path / "reports/monitoring/summary.json"
    stage.parent.mkdir(parents=True)
    stage.write_text(json.dumps(summary("no_drift", {"confidence": 0.05, "embedding": 0.51})))
    assert metrics.refresh_drift() is True and metrics.refresh_drift() is False  # unchanged: not re-read
    text = exposition(registry)
    assert "mlops_drift_detected 0.0" in text and 'mlops_drift_status{status="no_drift"} 1.0' in text
    assert 'mlops_drift_signal_score{signal="embedding"} 0.51' in text
    assert 'mlops_drift_signal_threshold{signal="embedding"} 0.2' in text  # the noise floor, above 0.1
    assert 'mlops_drift_signal_drifted{signal="embedding"} 1.0' in text

    run = tmp_path / "reports/monitoring-runs/scheduled__x/summary.json"
    run.parent.mkdir(parents=True)
    run.write_text(json.dumps(summary("drift", {"confidence": 0.4, "embedding": 0.9})))
    later = time.time() + 5
    os.utime(run, (later, later))
    assert metrics.refresh_drift() is True
    text = exposition(registry)
    assert "mlops_drift_detected 1.0" in text and 'mlops_drift_status{status="drift"} 1.0' in text
    assert 'mlops_drift_status{status="no_drift"} 0.0' in text and "mlops_drift_drifted_share 0.5" in text
    assert 'mlops_drift_signal_score{signal="confidence"} 0.4' in text
    stamp = next(line for line in text.splitlines() if line.startswith("mlops_drift_last_run_timestamp_seconds "))
    assert abs(float(stamp.split()[1]) - later) < 1

    run.write_text("{not json")
    os.utime(run, (later + 5, later + 5))
    assert metrics.refresh_drift() is False and "mlops_drift_detected 1.0" in exposition(registry)  # kept


def test_live_quality_gauges_come_from_the_summary(tmp_path):
    """Given a monitoring summary with live quality for two versions (one measured and in breach, one with too
    few labels), then /metrics shows each version's live accuracy, its upper bound and its label count."""
    registry = CollectorRegistry()
    metrics = ModelMetrics("text-classifier:v2", "fp32", project=tmp_path, registry=registry)
    stage = tmp_path / "reports/monitoring/summary.json"
    stage.parent.mkdir(parents=True)
    live = {"text-classifier:v2": {"serving": True, "window": {
                "status": "measured", "labelled": 200, "correct": 100, "accuracy": 0.5,
                "accuracy_ci": [0.4314, 0.5686]}},
            "text-classifier:v1": {"serving": False, "window": {
                "status": "insufficient_labels", "labelled": 12, "min_labels": 30, "needed": 18}}}
    stage.write_text(json.dumps(summary("no_drift", {"embedding": 0.5}) | {
        "live_quality": live, "live_quality_breach": {"model_version": "text-classifier:v2"}}))
    assert metrics.refresh_drift() is True
    text = exposition(registry)
    assert 'mlops_live_accuracy{model_version="text-classifier:v2"} 0.5' in text
    assert 'mlops_live_accuracy_upper{model_version="text-classifier:v2"} 0.5686' in text
    assert 'mlops_live_labelled{model_version="text-classifier:v2"} 200.0' in text
    assert 'mlops_live_labelled{model_version="text-classifier:v1"} 12.0' in text
    assert 'mlops_live_accuracy{model_version="text-classifier:v1"} NaN' in text
    assert "mlops_live_quality_breach 1.0" in text

    later = time.time() + 5
    live["text-classifier:v2"]["window"] |= {"correct": 190, "accuracy": 0.95, "accuracy_ci": [0.91, 0.97]}
    stage.write_text(json.dumps(summary("no_drift", {"embedding": 0.5}) | {"live_quality": live}))
    os.utime(stage, (later, later))
    assert metrics.refresh_drift() is True
    text = exposition(registry)
    assert 'mlops_live_accuracy{model_version="text-classifier:v2"} 0.95' in text
    assert "mlops_live_quality_breach 0.0" in text


def test_model_info_names_the_champion_through_a_canary_and_moves_on_a_swap(tmp_path):
    # given a service serving m:1, with a canary m:2 answering some of its requests
    registry = CollectorRegistry()
    metrics = ModelMetrics("m:1", "fp32", project=tmp_path, registry=registry)
    # when answers of both versions come in while m:1 is the champion
    metrics.observe([{"label": "a", "score": 0.9, "model_version": "m:2"},
                     {"label": "a", "score": 0.8, "model_version": "m:1"}], serving="m:1")
    metrics.observe([{"label": "b", "score": 0.7, "model_version": "m:2"}], serving="m:1")
    text = exposition(registry)
    # then each answer counts under its own version, and the info gauge still names the champion alone
    assert 'mlops_predictions_total{label="a",model_version="m:2"} 1.0' in text
    assert 'mlops_predictions_total{label="b",model_version="m:2"} 1.0' in text
    assert 'mlops_model_info{model_version="m:1",precision="fp32"} 1.0' in text
    assert 'mlops_model_info{model_version="m:2"' not in text
    # when a promotion swaps m:2 in, the gauge moves to it
    metrics.observe([{"label": "a", "score": 0.9, "model_version": "m:2"}], serving="m:2")
    text = exposition(registry)
    assert 'mlops_model_info{model_version="m:2",precision="fp32"} 1.0' in text
    assert 'mlops_model_info{model_version="m:1",precision="fp32"} 0.0' in text
