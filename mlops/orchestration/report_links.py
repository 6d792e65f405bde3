"""Links from a task in the Airflow UI to the files it wrote: the decision, the model card, the plots, the reports.

Airflow 3 computes an operator's extra links on the worker when the task
ends (`get_link`, stored as an XCom the UI reads), so a link needs nothing
from the API server but its address (`[api] base_url`). The files are the
project's own, under reports/, plots/ and metrics/; the project's Airflow
plugin (mlops/orchestration/airflow_plugin.py) serves them, read-only, at
`<base_url>/reports/<project-relative path>`, behind Airflow's own login.

A stage's files are the workspace's: a later run replaces them, so a stage
task's link shows the latest run's file. The run's own copies of its JSON
results (decision, package, metrics) are in its record, which the `record`
task's *Run record* link opens. Paths come from dvc.yaml (`stage_path`), never
written a second time here.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import attrs
from airflow.sdk import BaseOperatorLink

from mlops.core.pipeline import stage_path
from mlops.orchestration.runs import MONITORING_RUNS_DIR, RUNS_DIR, safe_name

REPORTS_PREFIX = "/reports"  # where the plugin's app is mounted on the API server
SERVED_DIRS = ("reports", "plots", "metrics")  # the project's folders it serves, nothing else
RUN = "{run}"  # in a link's path: the run's record folder name (runs.safe_name of its run id)
# The links of each stage's task: (name, (stage, option of its dvc.yaml command, file inside))
STAGE_LINKS = {
    "validate": (("Validation report", ("validate", "report-dir", "report.html")),),
    "evaluate": (("Evaluation plots", ("evaluate", "plots-dir", "")),
                 ("Evaluation metrics", ("evaluate", "metrics", ""))),
    "gate": (("Gate decision", ("gate", "out", "")), ("Model card", ("gate", "card", ""))),
    "package": (("Package result", ("package", "out", "")), ("Model card", ("gate", "card", ""))),
    "monitor": (("Drift report", ("monitor", "out-dir", "report.html")),
                ("Drift summary", ("monitor", "out-dir", "summary.json"))),
}


def base_url() -> str:
    """The API server's address as the workers know it (`[api] base_url`), without a trailing slash; empty (a
    link relative to the UI's host) when it is not set."""
    from airflow.sdk.configuration import conf

    return (conf.get("api", "base_url", fallback="") or "").rstrip("/")


def report_url(path: str | Path) -> str:
    """The address at which the plugin serves a project-relative `path`."""
    return f"{base_url()}{REPORTS_PREFIX}/{quote(Path(path).as_posix())}"


@attrs.define()
class ReportLink(BaseOperatorLink):
    """A button on a task's page opening one project file (or folder); `{run}` in `path` is the run's folder."""

    label: str
    path: str

    @property
    def name(self) -> str:
        return self.label

    @property
    def xcom_key(self) -> str:
        """One key per link of a task (the default, the class name, would be the same for all of them)."""
        return "_link_mlops_" + re.sub(r"[^a-z0-9]+", "_", self.label.lower()).strip("_")

    def get_link(self, operator: object, *, ti_key: object) -> str:

        return report_url(self.path.replace(RUN, safe_name(str(getattr(ti_key, "run_id", "")))))


def stage_links(project: Path | str, stage: str) -> tuple[ReportLink, ...]:
    """The links of a stage's task, its paths as dvc.yaml gives them (none for a stage without files to show)."""

    links = []
    for label, (name, option, inside) in STAGE_LINKS.get(stage, ()):
        path = stage_path(project, name, option)
        links.append(ReportLink(label, (path / inside if inside else path).as_posix()))
    return tuple(links)


def record_links() -> tuple[ReportLink, ...]:
    """The `record` task's: the run's own record, and its folder (copies of the run's decision and results)."""

    return (ReportLink("Run record", (RUNS_DIR / RUN / "run.json").as_posix()),
            ReportLink("Run record folder", (RUNS_DIR / RUN).as_posix()))


def monitoring_links() -> tuple[ReportLink, ...]:
    """The monitoring DAG's `monitor` task writes into a folder of its run: its report and summary."""

    return (ReportLink("Drift report", (MONITORING_RUNS_DIR / RUN / "report.html").as_posix()),
            ReportLink("Drift summary", (MONITORING_RUNS_DIR / RUN / "summary.json").as_posix()))
