"""What starts a lifecycle run, the cooldown that lets a burst retrain once, and the count of new trusted labels."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from mlops.loop.retrain import new_trusted_labels
from mlops.orchestration import triggers
from mlops.orchestration.triggers import DRIFT_URI, NEW_LABELS_URI, admit, cooldown_until, triggers_of
from mlops.serving.feedback import record_feedback
from mlops.serving.traffic import TrafficLog, new_ids
from tests.helpers import ROOT

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def event(uri, reasons=None, at=T0):
    return {"asset": uri, "timestamp": at.isoformat(), "extra": {"reasons": reasons} if reasons else {}}


@pytest.mark.parametrize(("run_type", "events", "expected"), [
    ("asset_triggered", [event(DRIFT_URI, ["drift"])], ["drift"]),
    ("asset_triggered", [event(DRIFT_URI)], ["drift"]),  # an event from before reasons existed
    ("asset_triggered", [event(DRIFT_URI, ["live_quality_breach"])], ["live_accuracy"]),
    ("asset_triggered", [event(NEW_LABELS_URI)], ["new_labels"]),
    ("asset_triggered", [event(NEW_LABELS_URI), event(DRIFT_URI, ["live_quality_breach", "drift"])],
     ["drift", "live_accuracy", "new_labels"]),
    ("scheduled", [], ["schedule"]),
    ("manual", [], ["manual"]),
])
def test_each_run_is_named_by_what_started_it(run_type, events, expected):
    assert triggers_of(run_type, events) == expected


def test_the_cooldown_ends_minutes_after_the_last_triggered_start():
    assert cooldown_until(None, T0, 60) is None  # no run before
    assert cooldown_until(T0, T0 + timedelta(minutes=30), 0) is None  # no cooldown
    assert cooldown_until(T0, T0 + timedelta(minutes=30), 60) == T0 + timedelta(minutes=60)
    assert cooldown_until(T0, T0 + timedelta(minutes=61), 60) is None


def test_a_burst_of_events_starts_one_run_and_a_manual_run_is_never_skipped(tmp_path):
    from airflow.sdk.exceptions import AirflowSkipException

    # given a drift event that started a run
    first = admit(tmp_path, "asset_triggered__1", "asset_triggered", [event(DRIFT_URI, ["drift"])], now=T0,
                  cooldown_minutes=60)
    assert first["trigger"] == "drift"
    # when a live-accuracy breach and new labels follow within the cooldown, they are skipped, saying until when
    for minutes, uri, reasons in ((5, DRIFT_URI, ["live_quality_breach"]), (20, NEW_LABELS_URI, None)):
        at = T0 + timedelta(minutes=minutes)
        with pytest.raises(AirflowSkipException, match=r"cooldown: .*asset_triggered__1.*ends at 2026-12-01T11:00"):
            admit(tmp_path, f"asset_triggered__{minutes}", "asset_triggered", [event(uri, reasons, at)], now=at,
                  cooldown_minutes=60)
    # then a manual run inside the cooldown goes through and does not restart it
    assert admit(tmp_path, "manual__1", "manual", [], now=T0 + timedelta(minutes=30),
                 cooldown_minutes=60)["trigger"] == "manual"
    assert json.loads((tmp_path / triggers.LAST_TRIGGERED).read_text())["run_id"] == "asset_triggered__1"
    # and a scheduled run after the cooldown goes through and starts a new one
    later = T0 + timedelta(minutes=61)
    assert admit(tmp_path, "scheduled__1", "scheduled", [], now=later, cooldown_minutes=60)["trigger"] == "schedule"
    assert json.loads((tmp_path / triggers.LAST_TRIGGERED).read_text())["run_id"] == "scheduled__1"


def test_the_cooldown_comes_from_params_and_a_torn_state_file_blocks_nothing(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["loop"]["cooldown_minutes"] = 10
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    info = admit(tmp_path, "a1", "asset_triggered", [event(NEW_LABELS_URI)], now=T0)
    assert info["cooldown_minutes"] == 10
    (tmp_path / triggers.LAST_TRIGGERED).write_text("{torn")
    assert admit(tmp_path, "a2", "asset_triggered", [event(NEW_LABELS_URI, at=T0 + timedelta(minutes=1))],
                 now=T0 + timedelta(minutes=1))["trigger"] == "new_labels"


def test_new_trusted_labels_count_labellers_labels_not_yet_in_the_champions_data(tmp_path, monkeypatch):
    # given served answers, two labelled by a labeller, in a project that has ingested nothing yet
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setenv("MLOPS_FEEDBACK_DIR", str(tmp_path / "fb"))
    ids = new_ids(3)
    TrafficLog(tmp_path / "traffic").append(["parcel lost", "charged twice", "late again"], [
        {"id": i, "label": "billing", "score": 0.3, "model_version": "m:1"} for i in ids], 1.0)
    assert new_trusted_labels(tmp_path)["count"] == 0
    record_feedback(json.dumps([{"id": ids[0], "label": "delivery"}, {"id": ids[1], "label": "billing"}]).encode(),
                    params["validate"]["labels"], 10, tmp_path / "traffic", tmp_path / "fb")
    # then both count, as posted labels no batch holds yet
    counted = new_trusted_labels(tmp_path)
    assert counted["count"] == 2 and counted["posted"] == 2 and counted["in_batches"] == 0
