"""The tasks' extra links: the URL each one gives for a run, as the worker stores it when the task ends."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mlops.orchestration.airflow_tasks import PromoteOperator, RecordOperator, StageOperator
from mlops.orchestration.report_links import monitoring_links
from tests.helpers import ROOT

RUN = SimpleNamespace(dag_id="lifecycle", run_id="manual__2026-12-01T10:00:00+00:00", task_id="gate", map_index=-1)
BASE = "http://127.0.0.1:8080"


@pytest.fixture(autouse=True)
def base_url(monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE + "/")


def links(operator) -> dict[str, str]:
    return {link.name: link.get_link(operator, ti_key=RUN) for link in operator.operator_extra_links}


def stage(name: str) -> StageOperator:
    return StageOperator(task_id=name, stage=name, project=str(ROOT), env={})


def test_stage_tasks_link_to_their_files_as_dvc_yaml_names_them():
    assert links(stage("gate")) == {"Gate decision": f"{BASE}/reports/reports/gate/decision.json",
                                    "Model card": f"{BASE}/reports/reports/gate/model_card.md"}
    assert links(stage("evaluate")) == {"Evaluation plots": f"{BASE}/reports/plots",
                                        "Evaluation metrics": f"{BASE}/reports/metrics/evaluate.json"}
    assert links(stage("validate")) == {"Validation report": f"{BASE}/reports/reports/validation/report.html"}
    assert links(stage("monitor")) == {"Drift report": f"{BASE}/reports/reports/monitoring/report.html",
                                       "Drift summary": f"{BASE}/reports/reports/monitoring/summary.json"}
    assert links(stage("package"))["Package result"] == f"{BASE}/reports/reports/package.json"
    assert links(stage("train")) == {}  # nothing of its own to show


def test_run_links_name_the_runs_own_folder():
    record = RecordOperator(task_id="record", python_callable=print)
    folder = "manual__2026-12-01T10_00_00_00_00"  # runs.safe_name of the run id
    assert links(record) == {"Run record": f"{BASE}/reports/reports/runs/{folder}/run.json",
                             "Run record folder": f"{BASE}/reports/reports/runs/{folder}"}
    monitor = SimpleNamespace(operator_extra_links=monitoring_links())
    assert links(monitor)["Drift report"] == f"{BASE}/reports/reports/monitoring-runs/{folder}/report.html"
    promote = PromoteOperator(task_id="promote", project=str(ROOT), env={})
    assert links(promote) == {"Promotion decision": f"{BASE}/reports/reports/promotion.json"}


def test_each_link_of_a_task_has_its_own_xcom_key():
    # the UI reads each link's URL from the XCom of its key: two links under one key would show one URL twice
    for operator in (stage("gate"), stage("evaluate"), stage("package"), stage("monitor")):
        keys = [link.xcom_key for link in operator.operator_extra_links]
        assert len(set(keys)) == len(keys) and all(key.startswith("_link_mlops_") for key in keys)
