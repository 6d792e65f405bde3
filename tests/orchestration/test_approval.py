"""`promote.approval`: the lifecycle's `approve` task before `promote`, without a running Airflow.

The operator's own methods are called as a worker calls them: `execute` up to
the point where the task parks awaiting input (the request written, with what
the UI and REST API show), `execute_complete` with the answer the API or the
scheduler's timeout sweep hands back.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from airflow.providers.standard.operators import hitl
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG
from airflow.sdk.api.datamodels._generated import DagRunType
from airflow.sdk.exceptions import AirflowSkipException, DownstreamTasksSkipped, TaskAwaitingInput

from mlops.core.pipeline import stage_path
from mlops.core.records import GateDecision
from mlops.orchestration.approval import PromotionApproval, approval_request
from mlops.orchestration.runs import APPROVAL_FILE, record, recorded_files, run_dir
from tests.helpers import ROOT, project_env

DECISION = {"accepted": True, "basis": "better than champion text-classifier:old", "decided_at": "2026-01-02T03:04:05",
            "reasons": ["macro-F1 0.91 vs 0.88: better (95% CI 0.01 to 0.05)", "all checks passed"]}
PACKAGE = {"status": "candidate", "model": "text-classifier:new123", "bento": "text-classifier-svc:b1",
           "serve_variant": "onnx_int8", "metrics": {"accuracy": 0.93, "macro_f1": 0.91}}
CARD = "# Model card: text classifier `abc`\n\nGate decision: **ACCEPTED**.\n"


@pytest.fixture
def project(tmp_path, repo_params):
    """A project after `package`: the gate's decision, its model card, package's result, params.yaml."""
    def write(option_stage: tuple[str, str], text: str) -> None:
        path = tmp_path / stage_path(ROOT, *option_stage)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    write(("gate", "out"), json.dumps(DECISION))
    write(("gate", "card"), CARD)
    write(("package", "out"), json.dumps(PACKAGE))
    return tmp_path


def set_approval(project: Path, repo_params: dict, approval: str, timeout_h: float = 72) -> None:
    repo_params["promote"] |= {"approval": approval, "approval_timeout_h": timeout_h}
    (project / "params.yaml").write_text(yaml.safe_dump(repo_params, sort_keys=False))


def approval_in_dag(project: Path) -> PromotionApproval:
    """The `approve` task wired as in the lifecycle DAG: before `promote`, which also follows `package`."""
    with DAG("lifecycle-approval", schedule=None):
        package = EmptyOperator(task_id="package")
        approve = PromotionApproval(task_id="approve", project=str(project),
                                    decision=str(stage_path(ROOT, "gate", "out")),
                                    card=str(stage_path(ROOT, "gate", "card")),
                                    package=str(stage_path(ROOT, "package", "out")))
        promote = EmptyOperator(task_id="promote", trigger_rule="none_failed_min_one_success")
        package >> approve >> promote
        package >> promote
    return approve


def context_of(task: PromotionApproval, run_type: DagRunType = DagRunType.ASSET_TRIGGERED) -> dict:
    pushed = []
    ti = SimpleNamespace(id="0199-ti", dag_id="lifecycle", run_id="run-1", task_id=task.task_id, map_index=-1,
                         xcom_push=lambda key, value: pushed.append((key, value)))
    return {"run_id": "run-1", "task": task, "ti": ti, "task_instance": ti,
            "dag_run": SimpleNamespace(run_type=run_type), "pushed": pushed}


def answer(option: str, timedout: bool = False) -> dict:
    return {"chosen_options": [option], "params_input": {}, "timedout": timedout,
            "responded_at": datetime(2026, 1, 3, 9, 0, tzinfo=UTC),
            "responded_by_user": None if timedout else {"id": "7", "name": "alice"}}


def test_auto_skips_the_approval_at_run_time(project, repo_params):
    # given promote.approval: auto (the default)
    set_approval(project, repo_params, "auto")
    approve = approval_in_dag(project)
    # when the approve task runs, then it skips itself, so promote follows package alone
    with pytest.raises(AirflowSkipException, match="promote.approval is auto"):
        approve.execute(context_of(approve))


def test_human_does_not_ask_when_the_candidate_is_already_the_champion(project, repo_params):
    # given promote.approval: human, and package found the gate's candidate already champion
    set_approval(project, repo_params, "human")
    (project / stage_path(ROOT, "package", "out")).write_text(json.dumps(
        {"status": "unchanged", "model": "text-classifier:new123", "bento": "text-classifier-svc:b1"}))
    approve = approval_in_dag(project)
    # when the approve task runs, then it skips: promoting changes nothing, no one is asked
    with pytest.raises(AirflowSkipException, match="already the champion"):
        approve.execute(context_of(approve))


def test_human_asks_with_the_gate_decision_and_the_model_card(project, repo_params, monkeypatch):
    # given promote.approval: human with a 24 h timeout
    set_approval(project, repo_params, "human", timeout_h=24)
    requested = {}
    monkeypatch.setattr(hitl, "upsert_hitl_detail", lambda **fields: requested.update(fields))
    approve = approval_in_dag(project)
    # when the approve task runs, it writes the request and parks awaiting a person's input
    with pytest.raises(TaskAwaitingInput):
        approve.execute(context_of(approve))
    # then the request (what the UI and REST API show) is an approval, Reject by default, with the evidence
    assert isinstance(approve, hitl.ApprovalOperator)
    assert requested["options"] == ["Approve", "Reject"] and requested["defaults"] == ["Reject"]
    assert "text-classifier:new123" in requested["subject"] and "accepted" in requested["subject"]
    body = requested["body"]
    assert "**Gate decision: ACCEPTED** (better than champion text-classifier:old)" in body
    assert all(f"- {reason}" in body for reason in DECISION["reasons"])
    assert f"`{stage_path(ROOT, 'gate', 'card')}`" in body and CARD.strip() in body
    assert "started by drift" in body and "within 24 h" in body
    assert approve.response_timeout == timedelta(hours=24)


def test_a_rejection_skips_promote_and_the_record_says_who(project, repo_params):
    # given a run whose approval asked, and a promotion.json that an earlier run left behind
    set_approval(project, repo_params, "human")
    files = recorded_files(project)
    (project / files["promotion"]).parent.mkdir(parents=True, exist_ok=True)
    (project / files["promotion"]).write_text(json.dumps({"promoted": True, "reason": "an earlier run"}))
    approve = approval_in_dag(project)
    context = context_of(approve)
    # when alice answers Reject, then promote is skipped (the task itself succeeds: no exception but the skip)
    with pytest.raises(DownstreamTasksSkipped) as skipped:
        approve.execute_complete(context, answer("Reject"))
    assert list(skipped.value.tasks) == ["promote"]
    # and the run's record names the rejection, not the earlier run's promotion
    outcome = json.loads((run_dir(project, "run-1") / APPROVAL_FILE).read_text())
    assert outcome["approved"] is False and outcome["by"] == "alice"
    assert outcome["reason"].startswith("promotion REJECTED by alice at 2026-01-03T09:00:00+00:00: nothing is promoted")
    summary = record(project, "run-1")
    assert summary["results"][files["promotion"]] == {"promoted": False, "reason": outcome["reason"]}
    assert summary["approval"] == outcome


def test_no_answer_in_time_counts_as_a_rejection(project, repo_params):
    # given promote.approval: human, 12 h
    set_approval(project, repo_params, "human", timeout_h=12)
    approve = approval_in_dag(project)
    # when the scheduler's timeout sweep answers with the default (Reject), then promote is skipped
    with pytest.raises(DownstreamTasksSkipped):
        approve.execute_complete(context_of(approve), answer("Reject", timedout=True))
    outcome = json.loads((run_dir(project, "run-1") / APPROVAL_FILE).read_text())
    assert outcome["timed_out"] is True and outcome["approved"] is False
    assert outcome["reason"].startswith("no answer within 12 h (counted as a rejection)")


def test_an_approval_lets_promote_run(project, repo_params):
    set_approval(project, repo_params, "human")
    approve = approval_in_dag(project)
    result = approve.execute_complete(context_of(approve), answer("Approve"))  # no skip raised
    assert result["chosen_options"] == ["Approve"]
    outcome = json.loads((run_dir(project, "run-1") / APPROVAL_FILE).read_text())
    assert outcome["approved"] is True and outcome["reason"].startswith("promotion APPROVED by alice")
    assert record(project, "run-1")["results"].get(recorded_files(project)["promotion"]) is None  # promote's own


def test_a_run_started_by_hand_asks_too(project, repo_params, monkeypatch):
    set_approval(project, repo_params, "human")
    requested = {}
    monkeypatch.setattr(hitl, "upsert_hitl_detail", lambda **fields: requested.update(fields))
    approve = approval_in_dag(project)
    with pytest.raises(TaskAwaitingInput):
        approve.execute(context_of(approve, DagRunType.MANUAL))
    assert requested["body"].startswith("Lifecycle run `run-1`, started by hand.")


def test_request_of_a_run_started_by_hand_without_card_or_package():
    subject, body = approval_request(GateDecision(**{**DECISION, "accepted": False}), "reports/gate/decision.json",
                                     None, None, "reports/gate/model_card.md", "manual__1", "started by hand",
                                     timedelta(hours=72))
    assert subject.startswith("Promote the candidate to champion? The gate rejected it")
    assert "**Gate decision: REJECTED**" in body and "No model card at `reports/gate/model_card.md`" in body
    assert "within 72 h" in body


APPROVE_PROBE = """
import json
from airflow.dag_processing.dagbag import DagBag
from airflow.providers.standard.operators.hitl import ApprovalOperator
dag = DagBag('dags').dags['lifecycle']
approve, promote = dag.get_task('approve'), dag.get_task('promote')
print(json.dumps({'approval': isinstance(approve, ApprovalOperator), 'defaults': approve.defaults,
                  'response_timeout': approve.response_timeout.total_seconds(),
                  'execution_timeout': approve.execution_timeout.total_seconds(),
                  'approve_up': sorted(approve.upstream_task_ids), 'approve_down': sorted(approve.downstream_task_ids),
                  'promote_up': sorted(promote.upstream_task_ids), 'promote_rule': str(promote.trigger_rule.value)}))
"""


@pytest.mark.slow  # parses the DAGs in a fresh interpreter (seconds)
def test_the_lifecycle_dag_asks_before_promote(tmp_path):
    env = project_env(ROOT) | {"AIRFLOW_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", APPROVE_PROBE], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"approval": True, "defaults": ["Reject"], "response_timeout": 72 * 3600.0,
                      "execution_timeout": 600.0, "approve_up": ["package"], "approve_down": ["promote"],
                      "promote_up": ["approve", "package"], "promote_rule": "none_failed_min_one_success"}


DAG_TEST = """
import json, sys, threading, time
from pathlib import Path
from types import SimpleNamespace

import yaml
from sqlalchemy import select
from airflow.dag_processing.dagbag import DagBag

project, cases = Path(sys.argv[1]), json.loads(sys.argv[2])
dag = DagBag('dags').dags['lifecycle']


def respond(answer):
    # what PATCH /api/v2/dags/lifecycle/dagRuns/<run>/taskInstances/approve/-1/hitlDetails runs, as alice
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    alice = SimpleNamespace(get_id=lambda: '7', get_name=lambda: 'alice')
    while True:
        with create_session() as session:
            ti = session.scalars(select(TaskInstance).where(TaskInstance.task_id == 'approve',
                                                            TaskInstance.state == 'awaiting_input')).first()
            if ti is not None:
                update_hitl_detail(dag_id='lifecycle', dag_run_id=ti.run_id, task_id='approve', map_index=-1,
                                   update_hitl_detail_payload=UpdateHITLDetailPayload(chosen_options=[answer]),
                                   user=alice, session=session)
                return
        time.sleep(0.2)


report = []
for approval, answer in cases:
    params = yaml.safe_load((project / 'params.yaml').read_text())
    params['promote']['approval'] = approval  # read by the approve task at run time: the same parsed DAG
    (project / 'params.yaml').write_text(yaml.safe_dump(params, sort_keys=False))
    if answer:
        threading.Thread(target=respond, args=(answer,), daemon=True).start()
    # every task but approve is marked successful without running: no stage, no Bento
    run = dag.test(mark_success_pattern=r'^(?!approve$).*')
    report.append({'run': str(run.state), 'tasks': {ti.task_id: str(ti.state) for ti in run.get_task_instances()
                                                    if ti.task_id in ('package', 'approve', 'promote', 'record')}})
print(json.dumps(report))
"""


@pytest.mark.slow  # three real DAG runs (dag.test) against a fresh Airflow database
def test_dag_runs_skip_or_wait_for_the_approval(tmp_path, project, repo_params):
    # given the lifecycle DAG on a project after `package`, with a fresh Airflow database
    (project / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    set_approval(project, repo_params, "auto")
    env = project_env(project) | {"AIRFLOW_HOME": str(tmp_path / "airflow-home"), "MLOPS_PROJECT_DIR": str(project),
                                  "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags")}
    migrated = subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], env=env,
                              capture_output=True, text=True, timeout=300)
    assert migrated.returncode == 0, migrated.stdout[-3000:] + migrated.stderr[-3000:]
    # when a run goes with approval auto, then with human answered Reject, then with human answered Approve
    cases = [["auto", None], ["human", "Reject"], ["human", "Approve"]]
    result = subprocess.run([sys.executable, "-c", DAG_TEST, str(project), json.dumps(cases)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    auto, rejected, approved = json.loads(result.stdout.strip().splitlines()[-1])
    # then auto skips the approval and promotes; a Reject skips promote and the run still succeeds
    assert auto == {"run": "success", "tasks": {"package": "success", "approve": "skipped", "promote": "success",
                                                "record": "success"}}
    assert rejected == {"run": "success", "tasks": {"package": "success", "approve": "success",
                                                    "promote": "skipped", "record": "success"}}
    assert approved == {"run": "success", "tasks": {"package": "success", "approve": "success",
                                                    "promote": "success", "record": "success"}}
    answers = sorted(json.loads(path.read_text())["reason"].split(" at ")[0]
                     for path in (project / "reports/runs").glob(f"*/{APPROVAL_FILE}"))
    assert answers == ["promotion APPROVED by alice", "promotion REJECTED by alice"]
