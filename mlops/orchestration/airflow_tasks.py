"""Airflow tasks of the lifecycle and monitoring DAGs: a command in the project, the run's configuration and
record, the drift verdict and its asset event, the failure callback.

`CommandOperator` runs a command in the project with Airflow's SubprocessHook,
which streams its output into the task log; on a timeout or a kill, the
command's whole process group is stopped, so no orphaned training keeps the
DVC lock. `StageOperator` runs `dvc repro --single-item <stage>` with it, and
`MonitorOperator` runs `mlops monitor` on the served traffic. An mlops command
that refused its input or its params (exit 2, reported through
MLOPS_EXIT_FILE, a problem a person has to fix) fails the task at once,
without retries. Anything else (a killed
process, a full disk, a flaky mount) fails the attempt, and Airflow retries it
with exponential backoff.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow.providers.standard.hooks.subprocess import SubprocessHook
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from mlops.core.environment import traffic_dir
from mlops.core.errors import EXIT_FILE_ENV, REJECTED_EXIT, USER_ERROR_EXIT
from mlops.core.redact import redact, secret_values


def task_env(project: Path | str) -> dict[str, str]:
    """What tasks add to the worker's environment: the project's venv on PATH, offline hub, project homes."""
    venv_bin = Path(project) / ".venv" / "bin"
    bin_dir = venv_bin if venv_bin.is_dir() else Path(sys.executable).parent
    from mlops.core.environment import project_defaults

    defaults = {key: os.environ.get(key, value) for key, value in {**project_defaults(project), **QUIET}.items()}
    return {**defaults, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


# No progress bars in a task log, where every redraw stays as a line: the project's own switch
# (mlops/ml/progress.py), the Hugging Face libraries' and tqdm's default for every other caller
QUIET = {"MLOPS_PROGRESS": "0", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1"}


class DvcOutput:
    """What of `dvc repro`'s output reaches a stage's task log, and how the stage ended for DVC.

    DVC ends every repro that changed something with advice for a person at a
    git prompt ("To track the changes with git, run: git add dvc.lock ...",
    "To enable auto staging ...", "Use `dvc push` ..."): in a task log it buries
    the answer, and the task does neither (the run's record does). That advice
    and blank lines are dropped; everything else, the stage's own output
    included, is kept. DVC's own lines say whether it ran the stage.
    """

    HINT_START = "To track the changes with git, run:"
    HINT_END = "dvc config core.autostage true"
    DROPPED = ("Use `dvc push` to send your updates to remote storage.", "To enable auto staging, run:")

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.in_hint = False
        self.outcome = "ran"  # a stage whose command ran says nothing more specific below

    def keep(self, line: str) -> bool:
        text = line.strip()
        if self.in_hint:
            self.in_hint = text != self.HINT_END
            return False
        if text == self.HINT_START:
            self.in_hint = True
            return False
        if not text or text in self.DROPPED:
            return False
        if text == f"Stage '{self.stage}' didn't change, skipping":
            self.outcome = "unchanged"
        elif text.startswith(f"Stage '{self.stage}' is cached"):
            self.outcome = "restored"
        return True

    def summary(self, seconds: float) -> str:
        """One line on how the stage ended, for the end of its log."""
        return {
            "ran": f"{self.stage}: ran in {seconds:.0f} s; its outputs and dvc.lock are updated",
            "unchanged": f"{self.stage}: up to date (nothing it reads changed since dvc.lock): DVC ran nothing",
            "restored": f"{self.stage}: restored from DVC's run-cache (these deps and params ran before), "
                        f"in {seconds:.0f} s",
        }[self.outcome]


# DVC's error when a stage's dep does not exist: it exits 255 before the stage's command starts, so the command
# reports no exit of its own (the error's path is absolute)
MISSING_DEP = re.compile(r"failed to reproduce '[^']+': \[Errno 2\] No such file or directory: '([^']+)'")


class FilteredLog:
    """A logger that passes the lines a SubprocessHook streams through `keep` and everything else unchanged."""

    def __init__(self, log: Any, keep: Callable[[str], bool]) -> None:
        self.log, self.keep = log, keep

    def info(self, message: str, *args: Any, **kwargs: Any) -> None:
        if message == "%s" and args and not self.keep(str(args[0])):  # the hook logs each output line as "%s"
            return
        self.log.info(message, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.log, name)


class FilteredSubprocessHook(SubprocessHook):
    """Airflow's SubprocessHook (a session of its own, output streamed to the task log), some lines dropped."""

    def __init__(self, keep: Callable[[str], bool]) -> None:
        super().__init__()
        self.keep = keep

    @property
    def log(self) -> Any:
        return FilteredLog(super().log, self.keep)


def isolated() -> bool:
    """MLOPS_WORKSPACE_MODE=isolated: tasks share nothing but the remotes (mlops/orchestration/workspace.py)."""
    from mlops.orchestration.workspace import isolated as is_isolated

    return is_isolated()


def remotes() -> Any:
    from mlops.core.errors import MlopsError
    from mlops.orchestration.workspace import Remotes

    try:
        return Remotes.from_env()
    except MlopsError as error:
        line = redact(f"error: {error}")
        print(line, flush=True)
        raise AirflowFailException(line) from None


@contextlib.contextmanager
def remote_failures() -> Iterator[None]:
    """A remote that cannot be reached fails the task in one line naming it: a network failure is retried
    (the remote may come back), a setting to fix (no such directory, no such branch) fails at once."""
    from mlops.orchestration.workspace import RemoteUnreachable

    try:
        yield
    except RemoteUnreachable as error:
        line = redact(f"error: {error}")
        print(line, flush=True)
        raise (AirflowException if error.transient else AirflowFailException)(line) from None


@dataclass(frozen=True)
class CommandResult:
    """How a command ended: its exit code, its last output line, and what the mlops command in it reported."""

    code: int
    last_line: str
    stage_exit: int | None = None
    stage_error: str | None = None

    def describe(self) -> str:
        return redact(self.stage_error or self.last_line)


def mask_in_task_log() -> None:
    """Register the environment's secrets with Airflow's log masker: a command's output streams into the task
    log line by line, and this is how it comes out redacted there too."""
    from airflow.sdk.log import mask_secret

    for value in secret_values():
        mask_secret(value)


class CommandOperator(BaseOperator):
    """Base of the tasks that run a command in the project, with Airflow's SubprocessHook.

    The hook streams the output into the task log and runs the command in a
    session of its own; on a kill or a timeout, on_kill stops its whole process
    group, so no orphaned training keeps the DVC lock. The mlops command inside
    reports its own exit code and error through MLOPS_EXIT_FILE.
    """

    def __init__(self, *, project: str, env: dict[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.project = project
        self.env = env
        self.hook: SubprocessHook | None = None

    def run_command(self, command: list[str], cwd: Path | None = None,
                    extra_env: dict[str, str] | None = None, keep: Callable[[str], bool] | None = None
                    ) -> CommandResult:
        """`command` in the project (or `cwd`: an isolated task's own directory, with its `extra_env`); with
        `keep`, only the output lines it keeps reach the log."""
        where = str(cwd or self.project)
        mask_in_task_log()
        print(redact(f"$ {' '.join(command)}  (in {where})"), flush=True)
        with tempfile.TemporaryDirectory(prefix="mlops-exit-") as scratch:
            exit_file = Path(scratch) / "exit.json"
            env = {**os.environ, **self.env, **(extra_env or {}), "PYTHONUNBUFFERED": "1",
                   EXIT_FILE_ENV: str(exit_file)}
            self.hook = FilteredSubprocessHook(keep) if keep else SubprocessHook()
            result = self.hook.run_command(command, env=env, cwd=where)
            reported = json.loads(exit_file.read_text(encoding="utf-8")) if exit_file.is_file() else {}
        return CommandResult(result.exit_code, result.output, reported.get("exit"), reported.get("error"))

    def on_kill(self) -> None:
        if self.hook is not None and self.hook.sub_process is not None and self.hook.sub_process.poll() is None:
            self.hook.send_sigterm()


class StageOperator(CommandOperator):
    """`dvc repro --single-item <stage>`; with `switch` (a boolean params.yaml key), a stage the run's params
    turn off still runs (it writes the marker the next stage reads), then its task ends as skipped, saying why."""

    ui_color = "#945dd6"

    def __init__(self, *, stage: str, project: str, env: dict[str, str], switch: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(project=project, env=env, **kwargs)
        self.stage = stage
        self.switch = switch
        from mlops.orchestration.report_links import stage_links

        self.operator_extra_links = stage_links(project, stage)  # its files, one button each (report_links.py)

    def get_openlineage_facets_on_start(self) -> Any:
        """The stage's deps and outs, for Airflow's OpenLineage provider (mlops/orchestration/lineage.py)."""
        from mlops.orchestration.lineage import stage_datasets

        return stage_datasets(self.project, self.stage)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The same, versioned by the hashes dvc.lock records now that the stage ran."""
        return self.get_openlineage_facets_on_start()

    def execute(self, context: Any) -> None:
        if isolated():
            return self.execute_isolated(context["run_id"])
        self.check(self.run_stage(["dvc", "repro", "--single-item", self.stage]))
        self.skip_if_switched_off(Path(self.project))

    def run_stage(self, command: list[str], cwd: Path | None = None,
                  extra_env: dict[str, str] | None = None) -> CommandResult:
        """The DVC command, its git and push advice left out of the log, and one line on how the stage ended."""
        import time

        output = DvcOutput(self.stage)
        started = time.monotonic()
        result = self.run_command(command, cwd=cwd, extra_env=extra_env, keep=output.keep)
        if result.code == 0:
            print(output.summary(time.monotonic() - started), flush=True)
        return result

    def execute_isolated(self, run_id: str) -> None:
        """The stage in a directory of its own: its deps pulled, `dvc repro`, its outputs and lock entry pushed."""
        from mlops.orchestration import workspace

        with remote_failures():
            space = workspace.prepare_stage(remotes(), run_id, self.stage)
        self.check(self.run_stage(workspace.stage_command(self.stage), cwd=space.path, extra_env=space.env))
        with remote_failures():
            workspace.publish_stage(space, self.stage)
        try:
            self.skip_if_switched_off(space.path)
        finally:
            workspace.finish(space)

    def skip_if_switched_off(self, where: Path) -> None:
        """Skipped, the reason in the log, when the run's params.yaml (in `where`) sets `switch` false."""
        if self.switch is None:
            return
        import yaml

        from mlops.core.dotted import get_dotted

        params = yaml.safe_load((where / "params.yaml").read_text(encoding="utf-8")) or {}
        if get_dotted(params, self.switch, True) is False:
            reason = (f"{self.stage}: {self.switch} is false in this run's params: the stage wrote its marker "
                      f"only, and the stages after it go on without it")
            print(reason, flush=True)
            raise AirflowSkipException(reason)

    def check(self, result: CommandResult) -> None:
        if result.code == 0:
            return
        message = f"stage {self.stage} failed (dvc exit {result.code}): {result.describe()}"
        if result.stage_exit == USER_ERROR_EXIT:
            raise AirflowFailException(message)  # the stage refused its input: a person must fix it
        missing = MISSING_DEP.search(result.last_line) if result.stage_exit is None else None
        if missing:  # DVC did not start the stage: a dep is missing, which no retry brings back
            raise AirflowFailException(redact(f"stage {self.stage} failed (dvc exit {result.code}): its input "
                                              f"{missing.group(1)} does not exist, so DVC did not run it"))
        raise AirflowException(message)


class MonitorOperator(CommandOperator):
    """`mlops monitor` on the served traffic (or the run's `current` param), into this run's own folder.

    Writes reports/monitoring-runs/<run id>/{summary.json,report.html}. With no
    `current` param and no traffic log yet (the service never ran), the task is
    skipped: there is nothing to monitor, and no verdict.
    """

    ui_color = "#e8a33d"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from mlops.orchestration.report_links import monitoring_links

        self.operator_extra_links = monitoring_links()  # this run's report and summary

    def execute(self, context: Any) -> dict[str, str]:
        from mlops.orchestration.runs import monitoring_run_dir

        given = (context.get("params") or {}).get("current")
        current = Path(given) if given else traffic_dir(self.project)
        if not given and not current.exists():
            raise AirflowSkipException(f"no traffic log at {current} yet (the service has not served): "
                                       f"nothing to monitor")
        out_dir = monitoring_run_dir(Path(self.project), context["run_id"])
        result = self.run_command(["mlops", "monitor", "--current", str(current), "--out-dir", str(out_dir)])
        if result.code == USER_ERROR_EXIT:
            raise AirflowFailException(f"mlops monitor refused its input (exit 2): {result.describe()}")
        if result.code != 0:
            raise AirflowException(f"mlops monitor failed (exit {result.code}): {result.describe()}")
        return {"summary": str(out_dir / "summary.json"), "report": str(out_dir / "report.html")}


def configure(project: str, params: dict[str, Any], dag_run: Any, run_id: str,
              triggering_asset_events: Any = None, **_: Any) -> dict[str, Any]:
    """The run's first task: validate the trigger params with the whole params file, then apply them.

    First its trigger and the cooldown (mlops/orchestration/triggers.py: a triggered run in the cooldown is
    skipped); then the trigger, and the event(s) that started it, into the run's record.
    """
    from mlops.core.errors import MlopsError
    from mlops.orchestration import triggers
    from mlops.orchestration.runs import configure as apply_run

    conf = dict(getattr(dag_run, "conf", None) or {})
    events = asset_events(triggering_asset_events)
    started = triggers.admit(Path(project), run_id, triggers.run_type_of(dag_run, events), events)
    if isolated():  # the run's params and record go to its git branch, from which every later task starts
        from mlops.orchestration.workspace import RemoteUnreachable, start_run

        def apply(path: Path) -> dict[str, Any]:
            overrides = apply_run(path, run_id, dict(params), conf_keys=list(conf))
            triggers.started_run(path, run_id, started, events)
            return overrides

        with remote_failures():
            try:
                return start_run(remotes(), run_id, apply)
            except RemoteUnreachable:
                raise
            except MlopsError as error:
                raise AirflowFailException(redact(f"error: {error}")) from None
    try:
        overrides = apply_run(Path(project), run_id, dict(params), conf_keys=list(conf))
    except MlopsError as error:
        raise AirflowFailException(redact(f"error: {error}")) from None  # bad params never get better by retrying
    triggers.started_run(Path(project), run_id, started, events)
    return overrides


def asset_events(triggering_asset_events: Any) -> list[dict[str, Any]]:
    """The context's `triggering_asset_events` (asset -> its events) as plain, JSON-ready dicts."""
    events = []
    for asset, consumed in dict(triggering_asset_events or {}).items():
        for event in consumed:
            timestamp = getattr(event, "timestamp", None)
            events.append({
                "asset": getattr(getattr(event, "asset", None), "uri", None) or getattr(asset, "uri", str(asset)),
                "timestamp": timestamp.isoformat() if hasattr(timestamp, "isoformat") else timestamp,
                "source_dag_id": getattr(event, "source_dag_id", None),
                "source_run_id": getattr(event, "source_run_id", None),
                "source_task_id": getattr(event, "source_task_id", None),
                "extra": dict(getattr(event, "extra", None) or {}),
            })
    return sorted(events, key=lambda event: str(event["timestamp"]))


def write_on_run_branch(run_id: str, task: str, write: Callable[[Path], Any]) -> Any:
    """Isolated mode: `write(path)` in a fresh checkout of the run's branch, then the run's record folder
    committed and pushed to it (fast-forward only); the record lives there, not on any worker."""
    from mlops.orchestration import workspace
    from mlops.orchestration.runs import run_dir

    with remote_failures():
        space = workspace.prepare(remotes(), run_id, task, inputs=(), registry=False)
        result = write(space.path)
        workspace.publish(space, git_files=[str(run_dir(space.path, run_id).relative_to(space.path))],
                          message=f"{task} of run {run_id}")
    workspace.finish(space)
    return result


def record(project: str, run_id: str, outlet_events: Any = None, **_: Any) -> dict[str, Any]:
    """The run's last task: its record, and its verdict as an event of the verdict asset (and this task's XCom);
    with MLOPS_DVC_PUSH=1 (the compose stack), `dvc push` to the remote."""
    from mlops.orchestration.runs import record as write_record

    if isolated():  # the record is written from the run's branch, and committed to it
        summary = write_on_run_branch(run_id, "record", lambda path: write_record(path, run_id))
        return announce_verdict(project, run_id, summary, outlet_events)
    summary = write_record(Path(project), run_id)
    verdict = announce_verdict(project, run_id, summary, outlet_events)
    if os.environ.get("MLOPS_DVC_PUSH") == "1":
        result = subprocess.run(["dvc", "push"], cwd=project, capture_output=True, text=True, timeout=3600)
        print(redact(result.stdout + result.stderr), flush=True)
        if result.returncode != 0:
            error = redact(result.stderr).strip()[-2000:]
            raise AirflowException(f"dvc push failed (exit {result.returncode}): {error}")
    return verdict


def announce_verdict(project: str, run_id: str, summary: dict[str, Any], outlet_events: Any) -> dict[str, Any]:
    """The run's verdict (mlops/orchestration/verdict.py) as the `extra` of an event of VERDICT_ASSET; the
    project's Airflow plugin copies its note into the run's note when the run succeeds."""
    from mlops.orchestration.assets import VERDICT_ASSET
    from mlops.orchestration.runs import recorded_files, run_dir
    from mlops.orchestration.verdict import run_verdict

    verdict = run_verdict(summary, recorded_files(Path(project)), str(run_dir(Path("."), run_id) / "run.json"))
    if outlet_events is not None:
        outlet_events[VERDICT_ASSET].extra = verdict
    print(redact(f"record: verdict: {verdict['headline']}"), flush=True)
    return verdict


class RecordOperator(PythonOperator):
    """The `record` task: a PythonOperator (`record` above) with links to the run's record."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from mlops.orchestration.report_links import record_links

        self.operator_extra_links = record_links()


def restore(project: str, **_: Any) -> None:
    """The run's very last task, whatever happened before: params.yaml back to its bytes before the run."""
    from mlops.orchestration.runs import restore_params

    if isolated():
        print("restore_params: isolated workspaces: the run's params live on its git branch only; nothing to "
              "restore", flush=True)
        return
    if not restore_params(Path(project)):
        print("restore_params: this run changed no parameters; params.yaml untouched", flush=True)


class PromoteOperator(CommandOperator):
    """`mlops promote` after the gate's branch and `package`: the candidate's Bento is started, checked, promoted
    (directly, or through a canary with `promote.strategy: canary`, mlops/serving/canary_rollout.py).

    A candidate that fails infra validation fails this task at once (exit 2, no
    retries): the decision in reports/promotion.json names the check, and the
    champion is unchanged. A candidate the gate rejected never gets here (the
    `gate_decision` branch skips packaging and this task); should one, its
    exit 3 skips the task: a rejection is an outcome, not a failure.
    """

    ui_color = "#3fa34d"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from mlops.core.registry import PROMOTION_RECORD
        from mlops.orchestration.report_links import ReportLink

        self.operator_extra_links = (ReportLink("Promotion decision", PROMOTION_RECORD),)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """For Airflow's OpenLineage provider: the package promoted from, and the champion model and Bento."""
        from mlops.orchestration.lineage import promotion_datasets

        home = self.env.get("BENTOML_HOME") or str(Path(self.project) / ".bentoml")
        return promotion_datasets(self.project, home)

    def execute(self, context: Any) -> None:
        space = None
        if isolated():  # the registry, package's result and the scored test split, from the remotes
            from mlops.core.pipeline import stage_path
            from mlops.core.registry import PROMOTION_RECORD
            from mlops.orchestration import workspace

            inputs = [str(stage_path(self.project, "package", "out")),
                      str(stage_path(self.project, "gate", "scored-test"))]
            with remote_failures():
                space = workspace.prepare(remotes(), context["run_id"], "promote", inputs, registry=True)
        result = self.run_command(["mlops", "promote"], cwd=space and space.path, extra_env=space and space.env)
        if space is not None and result.code in (0, USER_ERROR_EXIT, REJECTED_EXIT):
            with remote_failures():  # the decision and the registry, even for a refused candidate
                workspace.publish(space, git_files=[PROMOTION_RECORD], message=f"promote of run {context['run_id']}")
            workspace.finish(space)
        if result.code == REJECTED_EXIT:  # the gate_decision branch skips this task first; if not, a skip too
            raise AirflowSkipException(f"REJECTED by the gate, nothing promoted (exit {REJECTED_EXIT}): "
                                       f"{result.describe()}")
        if result.code == USER_ERROR_EXIT:
            raise AirflowFailException(f"mlops promote refused the candidate (exit 2): {result.describe()}")
        if result.code != 0:
            raise AirflowException(f"mlops promote failed (exit {result.code}): {result.describe()}")


def on_failure(context: Any) -> None:
    """Task failure callback: a one-paragraph summary in the log and in reports/runs/<run id>/failure.md (in
    isolated mode on the run's branch, where the rest of the run's record is; the worker's disk does not last)."""
    from mlops.orchestration.runs import failure_summary, run_id_of

    task = context.get("task")
    project = getattr(task, "project", None) or (getattr(task, "op_kwargs", None) or {}).get("project")
    paragraph = None
    if isolated():
        try:
            paragraph = write_on_run_branch(run_id_of(context), "failure",
                                            lambda path: failure_summary(path, context))
        except Exception as error:  # noqa: BLE001 - a callback that fails loses the summary: keep it local
            print(redact(f"failure summary: not committed to the run's branch ({error}); written on this worker"),
                  flush=True)
    if paragraph is None:
        paragraph = failure_summary(Path(project or os.getcwd()), context)
    print(redact(f"FAILURE SUMMARY: {paragraph}"), flush=True)


def read_decision(project: str, decision: str, run_id: str | None) -> tuple[dict[str, Any] | None, str]:
    """The gate's decision, from the project or (isolated) the run's branch; None if there is none."""
    if isolated() and run_id:
        from mlops.orchestration.workspace import read_run_file, run_branch

        with remote_failures():
            text = read_run_file(remotes(), run_id, decision)
        return (json.loads(text) if text else None), f"{decision} on {run_branch(run_id)}"
    path = Path(project) / decision
    return (json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None), str(path)


def gate_passed(project: str, decision: str, run_id: str | None = None, **_: Any) -> bool:
    """The branch after `gate`: True lets packaging run; False skips it, and the log says why."""
    verdict, where = read_decision(project, decision, run_id)
    if verdict is None:
        raise AirflowFailException(f"the gate wrote no decision at {where}")
    state = "ACCEPTED" if verdict["accepted"] else "REJECTED: packaging and deployment are skipped"
    print(f"gate {state} ({verdict['basis']})", flush=True)
    for reason in verdict["reasons"]:
        print(f"  - {reason}", flush=True)
    if verdict.get("next_step"):
        print(f"next step: {verdict['next_step']}", flush=True)
    return bool(verdict["accepted"])


def read_monitoring_summary(project: str, run_id: str) -> tuple[dict[str, Any], Path]:
    from mlops.orchestration.runs import monitoring_run_dir

    path = monitoring_run_dir(Path(project), run_id) / "summary.json"
    if not path.is_file():
        raise AirflowFailException(f"mlops monitor wrote no summary at {path}")
    return json.loads(path.read_text(encoding="utf-8")), path


def drift_detected(project: str, run_id: str, **_: Any) -> bool:
    """The monitoring DAG's branch: True (announce, retrain) for the verdict "drift" or a live quality breach."""
    from mlops.core.errors import MlopsError
    from mlops.orchestration.runs import drift_status, drifted_signals, retrain_reasons

    summary, path = read_monitoring_summary(project, run_id)
    try:
        status = drift_status(summary)
        reasons = retrain_reasons(summary)
    except MlopsError as error:
        raise AirflowFailException(f"{path}: {error}") from None
    rows = f"{summary.get('current_rows', '?')} current rows vs {summary.get('reference_rows', '?')} reference"
    verdict = {"drift": "DRIFT: announcing it, which starts a lifecycle run (retraining)",
               "no_drift": "no drift: nothing to do",
               "insufficient_data": "insufficient data: no verdict, no retraining"}[status]
    if reasons and status != "drift":  # no drift, but the labels say the serving model is worse than the gate
        verdict = {"no_drift": "no drift", "insufficient_data": "insufficient data: no drift verdict"}[status] + (
            ", but a live quality breach (below)")
    print(f"monitoring: {verdict} ({rows}); report {path.parent / 'report.html'}", flush=True)
    for name, signal_ in (summary.get("signals") or {}).items():
        if isinstance(signal_, dict):
            mark = "DRIFTED" if signal_.get("drifted") else "ok"
            print(f"  {name}: score {signal_.get('score')} (threshold {signal_.get('threshold')}) {mark}", flush=True)
    drifted = drifted_signals(summary)
    if status == "drift":
        print(f"  drifted: {', '.join(drifted) or 'none named'}", flush=True)
    if "live_quality_breach" in reasons:
        print(f"monitoring: LIVE QUALITY BREACH: {summary['live_quality_breach'].get('reason')}; announcing it, "
              "which starts a lifecycle run (retraining)", flush=True)
    return bool(reasons)


def announce_drift(project: str, run_id: str, outlet_events: Any, **_: Any) -> dict[str, Any]:
    """Emit the drift asset's event, its `extra` naming the report and the reasons (drift, a live quality
    breach); the lifecycle DAG is scheduled on it."""
    from mlops.orchestration.assets import DRIFT_ASSET
    from mlops.orchestration.runs import drifted_signals, retrain_reasons

    summary, path = read_monitoring_summary(project, run_id)
    extra = {"report": str((path.parent / "report.html").resolve()), "summary": str(path.resolve()),
             "drifted": sorted(drifted_signals(summary)), "monitoring_run_id": run_id,
             "reasons": retrain_reasons(summary)}
    if summary.get("live_quality_breach"):
        extra["live_quality_breach"] = summary["live_quality_breach"]
    outlet_events[DRIFT_ASSET].extra = extra
    print(f"announce_drift: event of {DRIFT_ASSET.uri} with {json.dumps(extra)}", flush=True)
    return extra
