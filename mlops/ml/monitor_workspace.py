"""The monitoring dashboards over time: one Evidently snapshot per monitoring run in a local workspace.

Every `mlops monitor` run (the pipeline's stage, the monitoring DAG's runs,
hand runs) adds one snapshot to one project in `monitor.workspace`, and
`make monitor-ui` serves that workspace with Evidently's own UI: a line per
drift signal, the share of signals that drifted, each model version's live
accuracy from returning labels and the traffic each run judged, over time.

The figures are the run's summary.json, not recomputed: each enters the
snapshot as one column of a one-row data set, measured by Evidently's
`MeanValue`, so the dashboard shows exactly the numbers the verdict used.
A figure the run did not measure (no verdict below `min_rows`, too few labels)
is left out of that snapshot rather than drawn as zero.

The project is found by name, created on the first run only. A snapshot is
written into a private staging folder beside the others and moved into
place with one rename: a run that fails, or is killed while writing, leaves
no half snapshot for the UI to choke on. A lock file keeps two runs at once
from creating the project twice.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from mlops.core.errors import MlopsError

PROJECT_NAME = "text-classifier monitoring"
PROJECT_DESCRIPTION = ("One snapshot per `mlops monitor` run: the drift signals, the live accuracy of each model "
                       "version from returning labels, and the traffic judged.")
SIGNAL_PREFIX, ACCURACY_PREFIX = "drift score: ", "live accuracy: "
DRIFTED_SHARE, CURRENT_ROWS, LABELLED = "drifted share", "rows judged", "labels: "
LOCK_FILE = ".mlops-monitor.lock"


def figures(summary: dict[str, Any]) -> dict[str, float]:
    """The run's figures the dashboard plots, by column name: what summary.json says, nothing measured again."""
    values: dict[str, float] = {CURRENT_ROWS: float(summary["current_rows"])}
    if summary.get("signals"):
        values[DRIFTED_SHARE] = float(summary["drifted_share"])
        values |= {SIGNAL_PREFIX + name: float(signal["score"]) for name, signal in summary["signals"].items()}
    for version, quality in (summary.get("live_quality") or {}).items():
        window = quality.get("window") or {}
        values[LABELLED + version] = float(window.get("labelled", 0))
        if window.get("status") == "measured":
            values[ACCURACY_PREFIX + version] = float(window["accuracy"])
    return values


def run_snapshot(summary: dict[str, Any]) -> Any:
    """An Evidently snapshot of one monitoring run, timed when the run was, tagged with its verdict."""
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import MeanValue

    values = figures(summary)
    data = Dataset.from_pandas(pd.DataFrame([values]), data_definition=DataDefinition(numerical_columns=list(values)))
    metadata = {"status": str(summary["status"]), "current": str(summary.get("current", ""))}
    if summary.get("model_version"):
        metadata["model_version"] = str(summary["model_version"])
    tags = [str(summary["status"])] + (["live_quality_breach"] if summary.get("live_quality_breach") else [])
    report = Report([MeanValue(column=name) for name in values], metadata=metadata, tags=tags)
    return report.run(current_data=data, timestamp=datetime.fromisoformat(summary["created"]))


def panel_metric(column: str, legend: str) -> Any:
    from evidently.sdk.models import PanelMetric

    return PanelMetric(metric="MeanValue", metric_labels={"column": column}, legend=legend)


def dashboard(signals: list[str], versions: list[str]) -> Any:
    """The project's panels: drift scores, drifted share, live accuracy per version, traffic and labels."""
    from evidently.sdk.models import DashboardModel
    from evidently.sdk.panels import line_plot_panel, text_panel

    panels = [
        text_panel("Monitoring over time", description="One point per `mlops monitor` run. A run without a "
                   "drift verdict (too few rows) or without enough labels has no point in those panels."),
        line_plot_panel("Drift scores", [panel_metric(SIGNAL_PREFIX + s, s) for s in signals],
                        description="Each signal's score (summary.json `signals`); the thresholds and noise floors "
                                    "are in each run's report.", size="half"),
        line_plot_panel("Share of signals drifted", [panel_metric(DRIFTED_SHARE, "drifted share")],
                        description="The dataset drifts when this reaches monitor.drift_share.", size="half"),
        line_plot_panel("Live accuracy per model version",
                        [panel_metric(ACCURACY_PREFIX + v, v) for v in versions],
                        description="Accuracy over each version's newest labelled answers (summary.json "
                                    "`live_quality`, window), where it had enough labels.", size="half"),
        line_plot_panel("Traffic judged", [panel_metric(CURRENT_ROWS, "rows in the window")]
                        + [panel_metric(LABELLED + v, f"labels for {v}") for v in versions],
                        description="Rows in the monitored window and trusted labels per version.", size="half"),
    ]
    return DashboardModel(tabs=[], panels=panels)


def plotted(model: Any) -> tuple[set[str], set[str]]:
    """The signals and model versions a saved dashboard already has lines for."""
    columns = {value.metric_labels.get("column", "") for panel in model.panels for value in panel.values}
    return ({c.removeprefix(SIGNAL_PREFIX) for c in columns if c.startswith(SIGNAL_PREFIX)},
            {c.removeprefix(ACCURACY_PREFIX) for c in columns if c.startswith(ACCURACY_PREFIX)})


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def find_or_create_project(workspace: Any) -> Any:
    """The monitoring project, created only if no project of that name exists."""
    found = workspace.search_project(PROJECT_NAME)
    if len(found) > 1:
        raise MlopsError(f"monitor.workspace: {len(found)} projects named {PROJECT_NAME!r} in {workspace.path}: "
                         "delete all but one")
    return found[0] if found else workspace.create_project(PROJECT_NAME, description=PROJECT_DESCRIPTION)


def add_snapshot(workspace_dir: Path, project_id: Any, snapshot: Any) -> Path:
    """Write the snapshot into a staging workspace inside this one, then rename it into the project: all or none."""
    from evidently.ui.workspace import Workspace

    staging = Path(tempfile.mkdtemp(dir=workspace_dir, prefix=".staging-"))  # not a project id: the UI skips it
    try:
        ref = Workspace(str(staging)).add_run(project_id, snapshot)
        written = Path(str(ref.url))
        if not written.is_file() or staging not in written.parents:
            raise MlopsError(f"monitor.workspace: Evidently wrote the snapshot to {written}, not into the staging "
                             f"folder {staging}: this Evidently version stores snapshots differently")
        target = workspace_dir / written.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(written, target)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def record_run(workspace_dir: Path, summary: dict[str, Any]) -> Path:
    """Add this monitoring run to the workspace's project (created once) and keep its panels current; the path."""
    from evidently.ui.workspace import Workspace

    snapshot = run_snapshot(summary)  # built before anything is written: a bad summary leaves the workspace as it was
    workspace_dir = Path(workspace_dir)
    with locked(workspace_dir):
        workspace = Workspace(str(workspace_dir))
        project = find_or_create_project(workspace)
        saved = workspace.get_dashboard(project.id)
        signals, versions = plotted(saved)
        now = list(summary.get("signals") or {})
        new_signals = now + sorted(signals - set(now))
        new_versions = sorted(versions | set(summary.get("live_quality") or {}))
        if not saved.panels or set(new_signals) != signals or set(new_versions) != versions:
            workspace.save_dashboard(project.id, dashboard(new_signals, new_versions))
        return add_snapshot(workspace_dir, project.id, snapshot)
