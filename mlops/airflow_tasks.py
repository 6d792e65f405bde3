"""Airflow tasks of the lifecycle DAG: a DVC stage, the run's configuration and record, the failure callback.

`StageOperator` runs `dvc repro --single-item <stage>` in the project and
streams the stage's own output into the task log line by line. A stage that
exits with status 2 refused its input or its params (an mlops error a person
has to fix): the task fails at once, without retries. Anything else (a killed
process, a full disk, a flaky mount) fails the attempt, and Airflow retries it
with exponential backoff. On a timeout or a kill, the stage's whole process
group is stopped, so no orphaned training keeps the DVC lock.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections import deque
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

USER_ERROR_EXIT = 2  # mlops.cli: a problem the user can fix


class StageOperator(BaseOperator):
    ui_color = "#945dd6"

    def __init__(self, *, stage: str, project: str, env: dict[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stage = stage
        self.project = project
        self.env = env
        self._process: subprocess.Popen[str] | None = None

    def execute(self, context: Any) -> None:
        command = ["dvc", "repro", "--single-item", self.stage]
        print(f"$ {' '.join(command)}  (in {self.project})", flush=True)
        tail: deque[str] = deque(maxlen=40)
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(command, cwd=self.project, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True)
        self._process = process
        try:
            assert process.stdout is not None
            for line in process.stdout:
                print(line.rstrip("\n"), flush=True)
                tail.append(line.rstrip("\n"))
            code = process.wait()
        finally:
            self.stop_stage()
        if code == 0:
            return
        output = "\n".join(tail)
        stage_exit = re.search(r"exited with (-?\d+)", output)
        message = f"stage {self.stage} failed (dvc exit {code}):\n{output}"
        if stage_exit and int(stage_exit.group(1)) == USER_ERROR_EXIT:
            raise AirflowFailException(message)
        raise AirflowException(message)

    def stop_stage(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(process.pid, sig)
                process.wait(timeout=wait)
                return
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                continue

    def on_kill(self) -> None:
        self.stop_stage()


def configure(project: str, params: dict[str, Any], dag_run: Any, run_id: str, **_: Any) -> dict[str, Any]:
    """The run's first task: validate the trigger params with the whole params file, then apply them."""
    from mlops.errors import MlopsError
    from mlops.runs import configure as apply_run

    conf = dict(getattr(dag_run, "conf", None) or {})
    try:
        return apply_run(Path(project), run_id, dict(params), conf_keys=list(conf))
    except MlopsError as error:
        raise AirflowFailException(f"error: {error}") from None  # bad params never get better by retrying


def record(project: str, run_id: str, **_: Any) -> None:
    """The run's last task: its record; with MLOPS_DVC_PUSH=1 (the compose stack), `dvc push` to the remote."""
    from mlops.runs import record as write_record

    write_record(Path(project), run_id)
    if os.environ.get("MLOPS_DVC_PUSH") == "1":
        result = subprocess.run(["dvc", "push"], cwd=project, capture_output=True, text=True, timeout=3600)
        print(result.stdout + result.stderr, flush=True)
        if result.returncode != 0:
            raise AirflowException(f"dvc push failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}")


def on_failure(context: Any) -> None:
    """Task failure callback: a one-paragraph summary in the log and in reports/runs/<run id>/failure.md."""
    from mlops.runs import failure_summary

    task = context.get("task")
    project = getattr(task, "project", None) or (getattr(task, "op_kwargs", None) or {}).get("project")
    paragraph = failure_summary(Path(project or os.getcwd()), context)
    print(f"FAILURE SUMMARY: {paragraph}", flush=True)


def gate_passed(project: str, decision: str, **_: Any) -> bool:
    """The branch after `gate`: True lets packaging run; False skips it, and the log says why."""
    import json

    path = Path(project) / decision
    if not path.is_file():
        raise AirflowFailException(f"the gate wrote no decision at {path}")
    verdict = json.loads(path.read_text(encoding="utf-8"))
    state = "ACCEPTED" if verdict["accepted"] else "REJECTED: packaging and deployment are skipped"
    print(f"gate {state} ({verdict['basis']})", flush=True)
    for reason in verdict["reasons"]:
        print(f"  - {reason}", flush=True)
    return bool(verdict["accepted"])
