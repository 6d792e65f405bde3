"""The lifecycle DAG: the stages of dvc.yaml, run by Airflow, with trigger parameters.

Tasks and their order are read from dvc.yaml when the file is parsed, never
written out a second time here, and never from a value in params.yaml: a run's
trigger parameters change that file, and the DAG (its graph, docs and trigger
form) must stay one DAG version whatever it holds. Each stage task runs `dvc repro --single-item <stage>`
in the project, so DVC still decides whether the stage is stale,
caches its outputs and records dvc.lock, exactly as `dvc repro` on a laptop.

Trigger the DAG with parameters (the UI's trigger form, or REST `conf`):
each field defaults to null, "as params.yaml says". Airflow checks every
value against its JSON schema when the run is triggered; the first task,
`configure`, merges the given ones into params.yaml once the whole merged
file passed the strict settings (a bad value or combination fails there,
naming the key), `record` writes the run's record under
`reports/runs/<run id>/` (with the parameters the run used) and its verdict (REJECTED / PROMOTED / NOT
PROMOTED, as an asset event and the run's note: mlops/orchestration/verdict.py), and the last task, `restore_params`,
which runs whatever happened before it, puts params.yaml back byte for byte:
a trigger's parameters apply to that run only. One run is active at a time;
later ones queue, so two runs never write the same workspace at once (DVC
also locks it).

After `gate`, the `gate_decision` branch lets `refit` and `package` run only
for an accepted model; a rejected one skips them, and the branch's log lists
the gate's reasons. `package` only builds the candidate; `promote` (not a DVC
stage: `mlops promote`) starts its Bento, checks it and makes it champion.
Between them, `approve` waits for a person's Approve or Reject when
params.yaml says `promote.approval: human` (the gate's decision and the model
card are in the request; Reject or no answer skips `promote`), and skips
itself with `auto` (mlops/orchestration/approval.py).

The DAG runs on any of: drift or a live accuracy breach (an event of the drift asset,
`mlops.orchestration.assets.DRIFT_ASSET`, which the `monitoring` DAG emits), enough new
trusted labels (`loop.min_new_labels`, an event of `NEW_LABELS_ASSET`, also from the
`monitoring` DAG), `loop.schedule` (a cron schedule, when set: an AssetOrTimeSchedule), or a
person. Each starts a run with params.yaml as it is; its `configure` task names the trigger
(drift | live_accuracy | new_labels | schedule | manual) in the run's record
(`reports/runs/<run id>/started-by.json`, `trigger` in run.json) with the triggering
event(s) (`trigger.json`, `triggered_by` in run.json). A triggered run within
`loop.cooldown_minutes` of the last one is skipped by `configure`, saying so; a manual
trigger, with or without parameters, never is (mlops/orchestration/triggers.py).

Stage tasks retry transient failures with exponential backoff; a stage that
refuses its input (exit 2) fails at once. Every task has a timeout, and a
failed task writes a one-paragraph summary to its log and to
`reports/runs/<run id>/failure.md`, and alerts the `mlops_alerts` webhook
connection when there is one (so does a rejected model). `train` goes to the `gpu` queue, so that
under the CeleryExecutor GPU machines run training and CPU workers the rest.

With MLOPS_WORKSPACE_MODE=isolated on the workers (docs/how-to/share-nothing.md), each task
works in a directory of its own, cloned from the run's git branch and fed by the DVC remote, so the
workers need no disk in common (mlops/orchestration/workspace.py).
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

from airflow.providers.standard.operators.python import PythonOperator, ShortCircuitOperator
from airflow.sdk import DAG, Param, TaskGroup

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project these files lie in: its mlops package

from mlops.core.environment import environment, project_dir  # noqa: E402

PROJECT = project_dir(default=Path(__file__).resolve().parents[1])

from mlops.core.pipeline import load_stage_graph, reduced_upstream, stage_path  # noqa: E402
from mlops.orchestration.airflow_tasks import (  # noqa: E402
    PromoteOperator,
    RecordOperator,
    StageOperator,
    configure,
    gate_passed,
    on_failure,
    record,
    restore,
    task_env,
)
from mlops.orchestration.alerts import RejectedModelNotifier, WebhookNotifier  # noqa: E402
from mlops.orchestration.approval import PromotionApproval  # noqa: E402
from mlops.orchestration.assets import VERDICT_ASSET  # noqa: E402
from mlops.orchestration.runs import GPU_STAGES, SWITCHES, TRIGGER_PARAMS  # noqa: E402
from mlops.orchestration.task_docs import stage_doc  # noqa: E402
from mlops.orchestration.triggers import lifecycle_schedule  # noqa: E402

GPU_QUEUE = environment().gpu_queue
# every other task: default_args; the refit trains as long as a feedback retrain does
TIMEOUTS = {"train": timedelta(hours=8), "distill": timedelta(hours=8), "refit": timedelta(hours=8)}
GATE = "gate"  # stages after the gate run only if it accepted (its decision: the gate command's --out)
PACKAGE = "package"  # builds the candidate; `promote` follows it
KEEP = "as params.yaml says"  # what an empty trigger field means
# The graph's task groups (prefix_group_id=False: task ids stay as they are; a group id may not be a task's, hence
# "monitoring"); a stage dvc.yaml adds later and no group names stands on its own
GROUPS = {
    "data": ("Generate, ingest, validate and split the labelled data", ("generate", "ingest", "validate", "split")),
    "model": ("Train the candidate, distill a student, build the serving variants, evaluate",
              ("train", "distill", "optimize", "evaluate")),
    "release": ("The gate's decision, the refit on every label, packaging, a person's approval, promotion",
                ("gate", "gate_decision", "refit", "package", "approve", "promote")),
    "monitoring": ("Drift of the candidate's scored data against the reference", ("monitor",)),
}


def trigger_params() -> dict[str, Param]:
    """The trigger form, from TRIGGER_PARAMS alone: a value read from params.yaml here would make a new DAG
    version whenever a run changes that file (`configure` prints the values a run starts from)."""
    params = {}
    for name, (key, schema, help_text) in TRIGGER_PARAMS.items():
        nullable = {**schema, "type": ["null", schema["type"]]}
        if "enum" in schema:  # null must be a choice to pass the schema; the form shows it in words
            nullable["enum"] = [None, *schema["enum"]]
            nullable["values_display"] = {"null": KEEP, **{str(value): str(value) for value in schema["enum"]}}
        params[name] = Param(
            None, **nullable,
            title=name,  # what the API server's message names when a value fails the schema, and the conf key
            description=f"{help_text} Sets {key} in params.yaml for this run; empty keeps the value there.",
        )
    return params


with DAG(
    dag_id="lifecycle",
    description="ingest -> validate -> split -> train -> distill -> optimize -> evaluate -> gate -> refit -> "
                "package -> monitor (from dvc.yaml); "
                "started by hand, drift, a live accuracy breach, new labels or loop.schedule",
    schedule=lifecycle_schedule(PROJECT),  # DRIFT_ASSET | NEW_LABELS_ASSET, or with them loop.schedule
    catchup=False,
    max_active_runs=1,
    max_active_tasks=1,
    tags=["mlops", "dvc"],
    params=trigger_params(),
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
        "execution_timeout": timedelta(hours=1),
        # alert: see mlops/orchestration/alerts.py
        "on_failure_callback": [on_failure, WebhookNotifier("task_failed", str(PROJECT))],
    },
    doc_md=__doc__,
) as dag:
    env = task_env(PROJECT)
    configure_task = PythonOperator(
        task_id="configure", python_callable=configure, op_kwargs={"project": str(PROJECT)},
        retries=0, execution_timeout=timedelta(minutes=5),
        doc_md="Name the run's trigger and apply the cooldown (`mlops.orchestration.triggers`), validate the "
               "trigger parameters with params.yaml and apply them (`mlops.orchestration.runs.configure`); in a "
               "triggered run, record the triggering event(s) and collect the posted labels."
               "\n\n**Reads** the trigger parameters and `params.yaml`.\n\n"
               "**Writes** `params.yaml` (its bytes kept in `reports/runs/params.before-run.yaml`) and "
               "`reports/runs/<run id>/` (`params.yaml`, `overrides.json`); its log names the value of every "
               "trigger parameter.\n\n**Skipped** when a drift, live accuracy, new labels or scheduled run "
               "comes within "
               "`loop.cooldown_minutes` of the last such run (never when triggered by hand); a bad value "
               "fails it at once, without retries.",
    )
    record_task = RecordOperator(
        task_id="record", python_callable=record, op_kwargs={"project": str(PROJECT)},
        execution_timeout=timedelta(minutes=5), trigger_rule="none_failed_min_one_success",
        outlets=[VERDICT_ASSET],
        doc_md="Write this run's record (`mlops.orchestration.runs.record`) and its verdict "
               "(`mlops.orchestration.verdict`).\n\n**Reads** the metrics, gate "
               "decision, package and promotion results the run left in the project.\n\n**Writes** "
               "`reports/runs/<run id>/run.json` and copies of those files; an event of the "
               f"`{VERDICT_ASSET.uri}` asset whose extra is the verdict (REJECTED / PROMOTED / NOT PROMOTED, the "
               "scores, the next step), which becomes the run's note.\n\n**Skipped** only when every "
               "task before it was skipped.",
    )
    groups = {name: TaskGroup(name, tooltip=tooltip, prefix_group_id=False)  # task ids stay the stages' names
              for name, (tooltip, _) in GROUPS.items()}
    group_of = {task: groups[name] for name, (_, members) in GROUPS.items() for task in members}
    stages = load_stage_graph(PROJECT)
    upstream_of = reduced_upstream(stages)  # only the edges that order something: the graph stays readable
    tasks = {}
    for stage in stages:
        tasks[stage.name] = StageOperator(
            task_id=stage.name, stage=stage.name, project=str(PROJECT), env=env, switch=SWITCHES.get(stage.name),
            **({"queue": GPU_QUEUE} if stage.name in GPU_STAGES else {}),
            **({"task_group": group_of[stage.name]} if stage.name in group_of else {}),
            # after a stage its params switch off (skipped, its marker written), the next one still runs
            **({"trigger_rule": "none_failed"} if set(upstream_of[stage.name]) & set(SWITCHES) else {}),
            execution_timeout=TIMEOUTS.get(stage.name, timedelta(hours=1)),
            doc_md=stage_doc(stage),
        )
    gate_decision = ShortCircuitOperator(
        task_id="gate_decision", python_callable=gate_passed, retries=0, task_group=group_of["gate_decision"],
        op_kwargs={"project": str(PROJECT), "decision": str(stage_path(PROJECT, GATE, "out"))},
        ignore_downstream_trigger_rules=False,
        on_success_callback=RejectedModelNotifier(str(PROJECT), str(stage_path(PROJECT, GATE, "out"))),
        doc_md=f"Branch on the gate's decision: a rejected model skips packaging, and this task's log says "
               f"why.\n\n**Reads** `{stage_path(PROJECT, GATE, 'out')}`.\n\n**Writes** nothing.\n\n"
               f"**Skipped** never; it skips `refit`, `package`, `approve` and `promote` for a rejected model.",
    )
    for stage in stages:
        for upstream in upstream_of[stage.name]:
            if upstream == GATE:
                tasks[GATE] >> gate_decision >> tasks[stage.name]
            else:
                tasks[upstream] >> tasks[stage.name]
        if not stage.upstream:
            configure_task >> tasks[stage.name]
    approve_task = PromotionApproval(
        task_id="approve", project=str(PROJECT), retries=0, execution_timeout=timedelta(minutes=10),
        task_group=group_of["approve"],
        decision=str(stage_path(PROJECT, GATE, "out")), card=str(stage_path(PROJECT, PACKAGE, "card")),
        package=str(stage_path(PROJECT, PACKAGE, "out")),
        doc_md="`promote.approval: human`: wait for a person's Approve (promote runs) or Reject (it is skipped; "
               "also after `promote.approval_timeout_h` with no answer), shown the gate's decision and the "
               "model card package stored (the gate's, with the refit's section).\n\n**Reads** the run's "
               "`params.yaml`, the gate's decision, that model card and package's result.\n\n**Writes** "
               "`reports/runs/<run id>/approval.json`.\n\n**Skipped** with "
               "`promote.approval: auto` (promote follows package), when package left the champion unchanged, "
               "and when the gate rejected the model.",
    )
    # none_failed_min_one_success: `approve` skipped by `auto` lets promote follow package; a Reject skips
    # promote itself; a rejected gate skips package, approve and so promote.
    promote_task = PromoteOperator(
        # two hours: with promote.strategy: canary it waits for the canary's verdict (promote.canary_timeout_s)
        task_id="promote", project=str(PROJECT), env=env, retries=0, execution_timeout=timedelta(hours=2),
        trigger_rule="none_failed_min_one_success", task_group=group_of["promote"],
        doc_md="`mlops promote`: start the candidate Bento, check it, make it champion "
               "(`mlops.serving.promotion`), directly or, with `promote.strategy: canary`, after a canary.\n\n"
               "**Reads** package's result and the scored test split.\n\n"
               "**Writes** `reports/promotion.json` and the registry's champion.\n\n**Skipped** when the gate "
               "rejected the model or a person rejected the promotion; a candidate that fails its checks fails "
               "it at once.",
    )
    # A teardown of `configure`: it runs whatever happened after it, and, unlike a plain all_done leaf,
    # its own success does not turn a failed run into a successful one.
    restore_task = PythonOperator(
        task_id="restore_params", python_callable=restore, op_kwargs={"project": str(PROJECT)},
        retries=2, execution_timeout=timedelta(minutes=5),
        doc_md="Put params.yaml back as it was before this run's overrides "
               "(`mlops.orchestration.runs.restore_params`).\n\n**Reads** "
               "`reports/runs/params.before-run.yaml`.\n\n**Writes** `params.yaml`, byte for byte as before the "
               "run.\n\n**Skipped** never: it runs whatever happened before it.",
    ).as_teardown(setups=configure_task)
    tasks[PACKAGE] >> approve_task >> promote_task >> record_task >> restore_task
    tasks[PACKAGE] >> promote_task
    downstream = {upstream for stage in stages for upstream in stage.upstream}
    for stage in stages:
        if stage.name not in downstream and stage.name != PACKAGE:
            tasks[stage.name] >> record_task
