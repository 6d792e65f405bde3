"""The Airflow tasks that run a command in the run's workspace: a DVC stage, `mlops monitor`, `mlops promote`.

`StageOperator` runs `dvc repro --single-item <stage>`, `MonitorOperator`
runs `mlops monitor` on the served traffic, `PromoteOperator` runs `mlops
promote`. Each asks the run's workspace (mlops/orchestration/task_workspace.py)
where to run and what to publish. An mlops command that refused its input or
its params (exit 2, a problem a person has to fix) fails the task at once,
without retries. Anything else (a killed process, a full disk, a flaky mount)
fails the attempt, and Airflow retries it with exponential backoff.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from mlops.core.dotted import get_dotted
from mlops.core.environment import traffic_dir
from mlops.core.errors import REJECTED_EXIT, USER_ERROR_EXIT
from mlops.core.pipeline import stage_path
from mlops.core.redact import redact
from mlops.core.registry import PROMOTION_RECORD
from mlops.orchestration.lineage import promotion_datasets, stage_datasets
from mlops.orchestration.report_links import ReportLink, monitoring_links, stage_links
from mlops.orchestration.runs import monitoring_run_dir
from mlops.orchestration.task_commands import MISSING_DEP, CommandOperator, CommandResult, DvcOutput
from mlops.orchestration.task_workspace import workspace_for


class StageOperator(CommandOperator):
    """`dvc repro --single-item <stage>`; with `switch` (a boolean params.yaml key), a stage the run's params
    turn off still runs (it writes the marker the next stage reads), then its task ends as skipped, saying why."""

    ui_color = "#945dd6"

    def __init__(self, *, stage: str, project: str, env: dict[str, str], switch: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(project=project, env=env, **kwargs)
        self.stage = stage
        self.switch = switch

        self.operator_extra_links = stage_links(project, stage)  # its files, one button each (report_links.py)

    def get_openlineage_facets_on_start(self) -> Any:
        """The stage's deps and outs, for Airflow's OpenLineage provider (mlops/orchestration/lineage.py)."""

        return stage_datasets(self.project, self.stage)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The same, versioned by the hashes dvc.lock records now that the stage ran."""
        return self.get_openlineage_facets_on_start()

    def execute(self, context: Any) -> None:
        """The stage where the run's workspace puts it: its deps in place, `dvc repro`, its outputs published."""
        space = workspace_for(self.project)
        checkout = space.open_stage(context.get("run_id", ""), self.stage)  # shared: no run id needed
        self.check(self.run_stage(space.stage_command(self.stage), cwd=checkout.path, extra_env=checkout.env))
        space.publish_stage(checkout, self.stage)
        try:
            self.skip_if_switched_off(checkout.path)
        finally:
            space.finish(checkout)

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

    def skip_if_switched_off(self, where: Path) -> None:
        """Skipped, the reason in the log, when the run's params.yaml (in `where`) sets `switch` false."""
        if self.switch is None:
            return
        import yaml


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

        self.operator_extra_links = monitoring_links()  # this run's report and summary

    def execute(self, context: Any) -> dict[str, str]:

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

        self.operator_extra_links = (ReportLink("Promotion decision", PROMOTION_RECORD),)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """For Airflow's OpenLineage provider: the package promoted from, and the champion model and Bento."""

        home = self.env.get("BENTOML_HOME") or str(Path(self.project) / ".bentoml")
        return promotion_datasets(self.project, home)

    def execute(self, context: Any) -> None:

        space = workspace_for(self.project)  # the registry, package's result and the scored test split in place
        inputs = [str(stage_path(self.project, "package", "out")), str(stage_path(self.project, "gate", "scored-test"))]
        run_id = context.get("run_id", "")
        checkout = space.open_task(run_id, "promote", inputs)
        result = self.run_command(["mlops", "promote"], cwd=checkout.path, extra_env=checkout.env)
        if result.code in (0, USER_ERROR_EXIT, REJECTED_EXIT):  # the decision and the registry, even when refused
            space.publish(checkout, git_files=[PROMOTION_RECORD], message=f"promote of run {run_id}")
            space.finish(checkout)
        if result.code == REJECTED_EXIT:  # the gate_decision branch skips this task first; if not, a skip too
            raise AirflowSkipException(f"REJECTED by the gate, nothing promoted (exit {REJECTED_EXIT}): "
                                       f"{result.describe()}")
        if result.code == USER_ERROR_EXIT:
            raise AirflowFailException(f"mlops promote refused the candidate (exit 2): {result.describe()}")
        if result.code != 0:
            raise AirflowException(f"mlops promote failed (exit {result.code}): {result.describe()}")
