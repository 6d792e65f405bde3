"""The monitoring history page: read from archived summary.json files, rendered newest first with a plot."""

import json

import pytest

from mlops.ml.monitor_history import read_history, render_history

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def signal(score, threshold, drifted):
    return {"score": score, "threshold": threshold, "drifted": drifted}


def archive(history, name, summary):
    folder = history / name
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


@pytest.fixture
def history(tmp_path):
    """Three archived runs: no drift, drift on text length, and one with too few rows for a verdict."""
    root = tmp_path / "history"
    archive(root, "20261130T100000Z", {
        "created": "2026-11-30T10:00:00+00:00", "status": "no_drift", "drift": False, "current_rows": 500,
        "current": "logs/traffic (newest 500)",
        "signals": {"text_length": signal(0.05, 0.1, False), "prediction": signal(0.01, 0.1, False)}})
    archive(root, "20261130T110000Z", {
        "created": "2026-11-30T11:00:00+00:00", "status": "drift", "drift": True, "current_rows": 480,
        "current": "<b>batch</b> & more",
        "signals": {"text_length": signal(0.3, 0.1, True), "prediction": signal(0.02, 0.1, False)}})
    archive(root, "20261130T120000Z", {
        "created": "2026-11-30T12:00:00+00:00", "status": "insufficient_data", "drift": False,
        "current_rows": 12, "current": "logs/traffic", "signals": {}})
    return root


def test_history_is_read_oldest_first(history):
    entries = read_history(history)
    assert [name for name, _ in entries] == ["20261130T100000Z", "20261130T110000Z", "20261130T120000Z"]
    assert [summary["status"] for _, summary in entries] == ["no_drift", "drift", "insufficient_data"]


def test_a_run_being_archived_and_stray_folders_are_skipped(history):
    (history / "20261130T130000Z").mkdir()
    (history / "20261130T130000Z" / "summary.json").write_text('{"created": "2026-11-30T1')  # half-written
    (history / "notes").mkdir()  # no summary.json
    assert [name for name, _ in read_history(history)] == ["20261130T100000Z", "20261130T110000Z",
                                                           "20261130T120000Z"]


def test_missing_history_folder_reads_as_empty(tmp_path):
    assert read_history(tmp_path / "never") == []


def test_index_lists_runs_newest_first_with_counts_and_links(history):
    page = render_history(history).read_text()
    assert "<p>3 reports, 1 with dataset drift." in page
    created = [page.index(f"2026-11-30T{hour}:00:00+00:00") for hour in ("12", "11", "10")]
    assert created == sorted(created)  # newest first
    assert 'href="20261130T110000Z/report.html"' in page and 'href="20261130T110000Z/summary.json"' in page


def test_index_shows_each_verdict_and_marks_drifted_signals(history):
    page = render_history(history).read_text()
    assert ">DRIFT</span>" in page and ">no drift</span>" in page and ">no verdict</span>" in page
    assert "&#9650; text_length 0.3</span>" in page  # the drifted signal, marked
    assert "<span>prediction 0.02</span>" in page  # a quiet one, unmarked
    assert "<td>&ndash;</td>" in page  # no signals in the run without a verdict


def test_index_escapes_what_came_from_the_run(history):
    page = render_history(history).read_text()
    assert "&lt;b&gt;batch&lt;/b&gt; &amp; more" in page
    assert "<b>batch</b>" not in page


def test_plot_is_written_when_a_run_has_signals(history):
    render_history(history)
    assert (history / "drift_over_time.png").read_bytes().startswith(PNG_MAGIC)
    assert '<img src="drift_over_time.png"' in (history / "index.html").read_text()


def test_no_plot_without_a_judged_run(tmp_path):
    root = tmp_path / "history"
    archive(root, "20261130T120000Z", {"created": "2026-11-30T12:00:00+00:00", "status": "insufficient_data",
                                       "drift": False, "current_rows": 3, "signals": {}})
    page = render_history(root).read_text()
    assert not (root / "drift_over_time.png").exists()
    assert "<img" not in page and "<p>1 reports, 0 with dataset drift." in page


def test_rendering_leaves_no_temporary_files(history):
    render_history(history)
    assert sorted(p.name for p in history.iterdir() if p.is_file()) == ["drift_over_time.png", "index.html"]


def live(accuracy, low, high, labelled):
    return {"window": {"status": "measured", "labelled": labelled, "accuracy": accuracy, "accuracy_ci": [low, high]},
            "cumulative": {"status": "measured", "labelled": labelled, "accuracy": accuracy,
                           "accuracy_ci": [low, high]}}


def test_live_accuracy_per_version_is_listed_and_plotted_and_a_breach_marked(history):
    """Given two runs with live quality (one a breach of v2) beside runs without, then the index shows each
    version's live accuracy, marks the breach, counts it, and plots live accuracy over time."""
    archive(history, "20261130T130000Z", {
        "created": "2026-11-30T13:00:00+00:00", "status": "no_drift", "drift": False, "current_rows": 500,
        "signals": {"text_length": signal(0.05, 0.1, False)},
        "live_quality": {"m:v1": live(0.9, 0.86, 0.93, 300),
                         "m:v2": {"window": {"status": "insufficient_labels", "labelled": 12, "min_labels": 30,
                                             "needed": 18}}},
        "live_labels": {"min_accuracy": 0.8}})
    archive(history, "20261130T140000Z", {
        "created": "2026-11-30T14:00:00+00:00", "status": "no_drift", "drift": False, "current_rows": 500,
        "signals": {"text_length": signal(0.05, 0.1, False)},
        "live_quality": {"m:v2": live(0.5, 0.43, 0.57, 200)}, "live_labels": {"min_accuracy": 0.8},
        "live_quality_breach": {"model_version": "m:v2", "accuracy": 0.5}})

    page = render_history(history).read_text()

    assert "Live quality breaches: 1." in page
    assert "<span>m:v1: 0.900 [0.860, 0.930] n=300</span>" in page and "m:v2: 12 labels, 30 needed" in page
    assert '&#9660; m:v2: 0.500 [0.430, 0.570] n=200</span>' in page
    assert (history / "live_accuracy_over_time.png").read_bytes().startswith(PNG_MAGIC)
    assert '<img src="live_accuracy_over_time.png"' in page


def test_no_live_plot_without_measured_live_accuracy(history):
    page = render_history(history).read_text()
    assert not (history / "live_accuracy_over_time.png").exists() and "live_accuracy_over_time" not in page
