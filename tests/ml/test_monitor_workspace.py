"""The Evidently workspace: one snapshot per monitoring run, one project, panels for what the runs measured."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import pytest
import yaml

from mlops.core.errors import MlopsError
from mlops.ml import monitor_workspace as mw
from tests.helpers import ROOT
from tests.stages.test_monitor import live_project, serve_and_label, served_texts  # noqa: F401 (a fixture)


def summary(created, status="no_drift", versions=None):
    """A monitoring run's summary.json as the stage writes it (the parts the workspace reads)."""
    judged = status != "insufficient_data"
    return {"created": created, "status": status, "current": "served traffic", "model_version": "text-classifier:v1",
            "current_rows": 150 if judged else 20, "drift": status == "drift",
            **({"drifted_share": 0.1667, "signals": {"length": {"score": 0.04}, "word_count": {"score": 0.05},
                                                     "embedding": {"score": 0.58}}} if judged else {"signals": {}}),
            "live_quality": versions or {}}


def measured(accuracy, labelled):
    return {"window": {"status": "measured", "accuracy": accuracy, "labelled": labelled}, "serving": True}


def project_of(directory):
    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(directory))
    projects = workspace.list_projects()
    assert [p.name for p in projects] == [mw.PROJECT_NAME]
    return workspace, projects[0]


def test_each_run_adds_one_snapshot_to_one_project_with_a_line_per_signal_and_version(tmp_path):
    """Given three monitoring runs (a verdict with v1's labels, one without a verdict, one with v2's labels too),
    when each is recorded, then the workspace holds one project with three snapshots, and its panels have a line
    for every drift signal and for the live accuracy of both versions."""
    runs = [summary("2026-12-07T08:00:00+00:00", versions={"text-classifier:v1": measured(0.91, 120)}),
            summary("2026-12-07T09:00:00+00:00", status="insufficient_data"),
            summary("2026-12-07T10:00:00+00:00", status="drift",
                    versions={"text-classifier:v1": measured(0.88, 150), "text-classifier:v2": measured(0.93, 40)})]

    written = [mw.record_run(tmp_path / "ws", run) for run in runs]

    workspace, project = project_of(tmp_path / "ws")
    assert sorted(str(s) for s in workspace.list_runs(project.id)) == sorted(p.stem for p in written)
    signals, versions = mw.plotted(workspace.get_dashboard(project.id))
    assert signals == {"length", "word_count", "embedding"}
    assert versions == {"text-classifier:v1", "text-classifier:v2"}
    assert not list((tmp_path / "ws").glob(".staging-*"))


def test_figures_are_the_summarys_numbers_and_leave_out_what_was_not_measured():
    """Given runs with and without a verdict and labels, then the snapshot's figures are summary.json's numbers,
    with nothing for a signal or accuracy the run did not measure."""
    run = summary("2026-12-07T08:00:00+00:00", versions={
        "text-classifier:v1": measured(0.91, 120),
        "text-classifier:v0": {"window": {"status": "insufficient_labels", "labelled": 3}}})
    figures = mw.figures(run)
    assert figures["drift score: embedding"] == 0.58 and figures["drifted share"] == 0.1667
    assert figures["live accuracy: text-classifier:v1"] == 0.91 and figures["rows judged"] == 150
    assert "live accuracy: text-classifier:v0" not in figures and figures["labels: text-classifier:v0"] == 3
    assert set(mw.figures(summary("2026-12-07T09:00:00+00:00", status="insufficient_data"))) == {"rows judged"}


def test_a_snapshot_that_fails_while_written_leaves_none_behind(tmp_path, monkeypatch):
    """Given one recorded run, when Evidently fails halfway through writing the next snapshot, then the project
    still has exactly one snapshot, no half file and no staging folder."""
    from evidently.ui.storage.local.base import LocalState

    mw.record_run(tmp_path / "ws", summary("2026-12-07T08:00:00+00:00"))

    def half_written(self, project_id, snapshot_id, snapshot):
        self.location.makedirs(self._snapshot_dir(project_id))
        with self.location.open(self._snapshot_path(project_id, snapshot_id), "w") as handle:
            handle.write('{"metrics": [')
        raise OSError("disk full")

    monkeypatch.setattr(LocalState, "write_snapshot", half_written)
    with pytest.raises(OSError, match="disk full"):
        mw.record_run(tmp_path / "ws", summary("2026-12-07T09:00:00+00:00"))

    monkeypatch.undo()
    workspace, project = project_of(tmp_path / "ws")
    assert len(workspace.list_runs(project.id)) == 1
    for path in (tmp_path / "ws").rglob("*.json"):
        json.loads(path.read_text())  # every file the UI reads parses
    assert not list((tmp_path / "ws").glob(".staging-*"))


def test_a_summary_that_cannot_be_recorded_writes_nothing(tmp_path):
    """Given a summary without its time, when it is recorded, then it fails before the workspace exists."""
    broken = summary("2026-12-07T08:00:00+00:00")
    del broken["created"]
    with pytest.raises(KeyError):
        mw.record_run(tmp_path / "ws", broken)
    assert not (tmp_path / "ws").exists()


def test_two_projects_of_the_name_are_refused_by_name(tmp_path):
    """Given a workspace where someone created a second project of the monitoring project's name, when a run is
    recorded, then it fails naming the duplicate instead of choosing one."""
    from evidently.ui.workspace import Workspace

    mw.record_run(tmp_path / "ws", summary("2026-12-07T08:00:00+00:00"))
    Workspace(str(tmp_path / "ws")).create_project(mw.PROJECT_NAME)
    with pytest.raises(MlopsError, match="2 projects named"):
        mw.record_run(tmp_path / "ws", summary("2026-12-07T09:00:00+00:00"))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url, body=None):
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_make_monitor_ui_serves_one_snapshot_per_monitoring_run(live_project, repo_params):  # noqa: F811
    """Given three `mlops monitor` runs over served traffic with 200 labels (100 right), when `make monitor-ui`
    serves the workspace params.yaml names on a free loopback port, then Evidently's REST API lists one project
    with exactly three snapshots, and its series give the live accuracy 0.5 and 200 rows judged for each run."""
    from mlops.stages import monitor

    project, settings = live_project
    served_texts(300, seed=1).to_parquet(project / "reference.parquet")
    serve_and_label(project, 200, right=100)
    for _ in range(3):
        monitor.run(settings, monitor.MonitorIO(reference=project / "reference.parquet",
                                                scored_test=project / "unused.parquet", out_dir=project / "out"),
                    current=str(project / "logs" / "traffic"))
    (project / "params.yaml").write_text(yaml.safe_dump(repo_params))
    port = free_port()

    server = subprocess.Popen(["make", "-s", "-C", str(ROOT), "monitor-ui", f"PORT={port}",
                               f"PARAMS={project / 'params.yaml'}"], start_new_session=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}/api"
    try:
        for _ in range(120):
            try:
                projects = get(f"{base}/projects")
                break
            except OSError:
                assert server.poll() is None, server.stdout.read()
                time.sleep(0.5)
        else:
            pytest.fail("evidently ui did not answer within 60 s")
        assert [p["name"] for p in projects] == [mw.PROJECT_NAME]
        snapshots = get(f"{base}/projects/{projects[0]['id']}/snapshots")
        assert len(snapshots) == 3 and {s["metadata"]["model_version"] for s in snapshots} == {"text-classifier:v1"}
        filters = [{"tags": [], "metadata": {}, "metric": "evidently:metric_v2:MeanValue",
                    "metric_labels": {"column": column}}
                   for column in ("live accuracy: text-classifier:v1", "rows judged")]
        series = get(f"{base}/v2/snapshots/{projects[0]['id']}/data_series_batch", {"series_filter": filters})
        values = {s["params"]["column"]: s["values"] for s in series["series"]}
        assert values == {"live accuracy: text-classifier:v1": [0.5] * 3, "rows judged": [200] * 3}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert "127.0.0.1" in server.stdout.read()
