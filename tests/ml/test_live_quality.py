"""Live quality from returning labels: labellers' labels and served batch rows judge the served answers, per model
version, in the monitor's window and cumulatively; client suggestions never count; too few labels give no verdict."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mlops.core.batch_files import write_batch
from mlops.core.settings import parse_settings
from mlops.core.stats import wilson_interval
from mlops.ml.live_quality import assess, describe, insert_section, macro_f1, render_table
from mlops.serving.credentials import Identity
from mlops.serving.feedback import record_feedback
from mlops.serving.traffic import TrafficLog, new_ids

LABELS = ["billing", "delivery", "technical", "account", "feedback"]
CLIENT, LABELLER = Identity("shop-frontend", "client"), Identity("alice", "labeller")
V1, V2 = "text-classifier:v1", "text-classifier:v2"


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_FEEDBACK_DIR", str(tmp_path / "logs" / "feedback"))
    monkeypatch.setenv("MLOPS_TRAFFIC_DIR", str(tmp_path / "logs" / "traffic"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def settings_with(repo_params, **monitor):
    repo_params["validate"]["labels"] = LABELS
    repo_params["monitor"].update(monitor)
    return parse_settings(repo_params)


def serve(project, count, version=V1):
    """`count` answers as the service logs them (one request); (id, the answer's label) each."""
    ids, labels = new_ids(count), [LABELS[i % len(LABELS)] for i in range(count)]
    TrafficLog(project / "logs" / "traffic").append(
        [f"message {i} about {label}" for i, label in enumerate(labels)],
        [{"id": i, "label": label, "score": 0.9, "model_version": version} for i, label in zip(ids, labels,
                                                                                                  strict=True)], 2.0)
    return list(zip(ids, labels, strict=True))


def flipped(label):
    return LABELS[(LABELS.index(label) + 1) % len(LABELS)]


def post(pairs, identity=LABELLER):
    for start in range(0, len(pairs), 200):
        body = json.dumps([{"id": i, "label": label} for i, label in pairs[start:start + 200]]).encode()
        record_feedback(body, LABELS, 256, identity=identity)


def judge(project, settings, serving=None, now=None):
    return assess(settings, project / "logs" / "feedback", project / "logs" / "traffic", serving, now)


def test_half_right_labels_give_accuracy_one_half_and_suggestions_are_ignored(project, repo_params):
    """Given 200 served answers, a labeller marking 100 right and 100 wrong, and a client calling all 200 right,
    when live quality is assessed, then accuracy is 0.5 with its Wilson interval and the client counts for
    nothing."""
    served = serve(project, 200)
    post([(i, label) for i, label in served[:100]] + [(i, flipped(label)) for i, label in served[100:]])
    post(served, CLIENT)

    result = judge(project, settings_with(repo_params))

    window = result["live_quality"][V1]["window"]
    low, high = wilson_interval(100, 200)
    assert window["status"] == "measured" and window["labelled"] == 200 and window["correct"] == 100
    assert window["accuracy"] == 0.5 and window["accuracy_ci"] == [round(low, 4), round(high, 4)]
    assert result["live_quality"][V1]["cumulative"]["accuracy"] == 0.5 and result["live_quality"][V1]["serving"]
    assert result["live_labels"]["trusted"] == 200 and result["live_labels"]["suggestions_ignored"] == 200
    per_class = window["per_class"]
    assert set(per_class) == set(LABELS) and sum(c["labelled"] for c in per_class.values()) == 200
    assert all(c["recall"] == 0.5 and c["recall_ci"][0] < 0.5 < c["recall_ci"][1] for c in per_class.values())
    assert 0 < window["macro_f1"] < 1


def test_the_upper_bound_below_min_accuracy_is_a_breach(project, repo_params):
    """Given half the answers wrong and gate.min_accuracy 0.8, then the serving version is in breach; given 80%
    right, the interval reaches 0.8 and there is none."""
    served = serve(project, 200)
    post([(i, label) for i, label in served[:100]] + [(i, flipped(label)) for i, label in served[100:]])
    settings = settings_with(repo_params)
    assert settings.gate.min_accuracy == 0.8

    breach = judge(project, settings)["live_quality_breach"]
    assert breach["model_version"] == V1 and breach["accuracy"] == 0.5 and breach["min_accuracy"] == 0.8
    assert breach["accuracy_ci"][1] < 0.8 and "below gate.min_accuracy 0.8" in breach["reason"]

    post([(i, label) for i, label in served[100:160]])  # relabelled: now 160 of 200 right
    result = judge(project, settings)
    assert result["live_quality"][V1]["window"]["accuracy"] == 0.8 and "live_quality_breach" not in result


def test_too_few_labels_say_how_many_are_needed(project, repo_params):
    served = serve(project, 50)
    post([(i, flipped(label)) for i, label in served[:12]])  # all wrong, but only 12

    result = judge(project, settings_with(repo_params, live_min_labels=30))

    window = result["live_quality"][V1]["window"]
    assert window == {"labelled": 12, "status": "insufficient_labels", "min_labels": 30, "needed": 18,
                      "served_from": window["served_from"], "served_to": window["served_to"]}
    assert "live_quality_breach" not in result
    assert describe(result) == f"{V1} (serving): 12 labels, 30 needed (18 more): no verdict"


def test_the_window_is_the_newest_labels_by_served_time(project, repo_params):
    """Given 100 answers labelled right, then 100 served later labelled wrong, the window of 100 rows holds the
    later ones; a window of one hour, seen two hours later, holds none."""
    first, later = serve(project, 100), serve(project, 100)
    post([(i, flipped(label)) for i, label in later] + [(i, label) for i, label in first])  # labelled out of order

    result = judge(project, settings_with(repo_params, window_rows=100))
    assert result["live_quality"][V1]["window"]["accuracy"] == 0.0
    assert result["live_quality"][V1]["window"]["labelled"] == 100
    assert result["live_quality"][V1]["cumulative"]["accuracy"] == 0.5

    result = judge(project, settings_with(repo_params, window_rows=100, window_hours=1),
                   now=datetime.now(UTC) + timedelta(hours=2))
    assert result["live_quality"][V1]["window"]["labelled"] == 0
    assert result["live_quality"][V1]["cumulative"]["labelled"] == 200 and "live_quality_breach" not in result


def test_each_version_is_judged_apart_and_only_the_serving_one_breaches(project, repo_params):
    old, new = serve(project, 60, V1), serve(project, 60, V2)
    post([(i, label) for i, label in old] + [(i, flipped(label)) for i, label in new])
    settings = settings_with(repo_params)

    result = judge(project, settings)  # no version named: the newest labelled one serves
    assert result["live_quality"][V1]["window"]["accuracy"] == 1.0 and not result["live_quality"][V1]["serving"]
    assert result["live_quality"][V2]["window"]["accuracy"] == 0.0 and result["live_quality"][V2]["serving"]
    assert result["live_quality_breach"]["model_version"] == V2
    assert "live_quality_breach" not in judge(project, settings, serving=V1)  # a rollback to v1 serves


def test_imported_batch_rows_count_when_their_ids_were_served(project, repo_params):
    """Given an operator's batch of 40 served ids (right), 5 ids never served and one id a labeller labelled
    wrong, then the batch's 40 count with the answers the traffic log holds, the 5 are unmatched and the
    labeller's record of the shared id is counted once."""
    served = serve(project, 50)
    post([(served[0][0], flipped(served[0][1]))])
    rows = [(i, label) for i, label in served[:40]] + [(i, "billing") for i in new_ids(5)]
    write_batch(pd.DataFrame({"id": [i for i, _ in rows], "text": "t", "label": [label for _, label in rows]}),
                project / "data" / "feedback", "import")

    result = judge(project, settings_with(repo_params))

    counts = result["live_labels"]
    assert counts["from_feedback_log"] == 1 and counts["from_batches"] == 39 and counts["unmatched"] == 5
    window = result["live_quality"][V1]["window"]
    assert window["labelled"] == 40 and window["correct"] == 39


def test_macro_f1_matches_scikit_learn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    truth = pd.Series(rng.choice(LABELS[:4], 300))
    predicted = pd.Series(np.where(rng.random(300) < 0.6, truth, rng.choice(LABELS, 300)))
    expected = f1_score(truth, predicted, labels=sorted(set(truth) | set(predicted)), average="macro",
                        zero_division=0)
    assert macro_f1(truth, predicted) == round(float(expected), 4)


def test_the_table_goes_to_the_top_of_the_report(project, repo_params):
    served = serve(project, 40)
    post([(i, flipped(label)) for i, label in served])
    section = render_table(judge(project, settings_with(repo_params)))
    assert "Live quality" in section and "LIVE QUALITY BREACH" in section and V1 in section
    assert "0.000 [0.000, 0.088] n=40" in section

    page = insert_section('<!doctype html><html><body class="x"><div id="root"></div></body></html>', section)
    assert page.index('<body class="x">') < page.index("Live quality") < page.index('<div id="root">')
    assert insert_section("<p>No verdict</p>", section).startswith("<p>No verdict</p>")
