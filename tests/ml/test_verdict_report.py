"""The Evidently report states the verdict: headline, six signals, effective thresholds (no model needed)."""

import json

import numpy as np
import pandas as pd
import pytest

from mlops.ml.descriptors import DESCRIPTORS
from mlops.ml.verdict_report import read_verdict, verdict_report
from mlops.stages.monitor import REPORT_COLUMNS, SIGNALS, to_dataset


def window(rows, shift, seed):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.normal(50 + shift, 5, rows) for name in DESCRIPTORS})
    return frame.assign(prediction=rng.choice(["a", "b"], rows), confidence=rng.uniform(0.5, 1, rows))[REPORT_COLUMNS]


def verdict_of(drifted):
    signals = {name: {"score": 0.31 if name in drifted else 0.02, "method": "m", "threshold": 0.1,
                      "noise_floor": 0.2, "drifted": name in drifted} for name in SIGNALS}
    share = round(len(drifted) / len(SIGNALS), 4)
    return {"status": "drift" if share >= 1 / 3 else "no_drift", "drift": share >= 1 / 3, "drifted_share": share,
            "drift_share_threshold": 1 / 3, "signals": signals}


@pytest.mark.parametrize("drifted", [set(), {"embedding", "confidence", "text_length"}])
def test_saved_snapshot_states_the_verdict(tmp_path, drifted):
    verdict = verdict_of(drifted)
    drawn = {name: "wasserstein" for name in DESCRIPTORS} | {"prediction": "jensenshannon"}
    snapshot = verdict_report(verdict, to_dataset(window(300, 0, 1)), to_dataset(window(300, 0, 2)), drawn)
    snapshot.save_json(str(tmp_path / "report.json"))
    snapshot.save_html(str(tmp_path / "report.html"))
    stated = read_verdict(json.loads((tmp_path / "report.json").read_text()))
    assert stated["status"] == verdict["status"] and stated["headline_test_passed"] is (not verdict["drift"])
    assert set(stated["signals"]) == set(SIGNALS)
    assert {name: s["test_passed"] for name, s in stated["signals"].items()} == {
        name: name not in drifted for name in SIGNALS}
    assert all(s["threshold"] == 0.2 for s in stated["signals"].values())  # the noise floor, above 0.1
    html = (tmp_path / "report.html").read_text()
    assert f"Verdict: {verdict['status'].upper().replace('_', ' ')}: {len(drifted)} of 6 signals drifted" in html
    assert "Signal embedding" in html
