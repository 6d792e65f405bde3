"""Triggered runs: parameter overrides, the run record, the failure summary, and the DAG's trigger form."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from mlops.core.errors import MlopsError
from mlops.core.params import apply_overrides, nest
from mlops.core.settings import parse_settings
from mlops.orchestration.failures import failure_summary
from mlops.orchestration.runs import (
    TRIGGER_PARAMS,
    configure,
    overrides_of,
    record,
    recorded_files,
    run_dir,
)
from tests.helpers import ROOT, project_env


@pytest.fixture
def project(tmp_path):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    return tmp_path


def test_every_trigger_param_maps_to_a_params_key(repo_params):
    from mlops.core.dotted import get_dotted

    for name, (key, schema, _) in TRIGGER_PARAMS.items():
        assert get_dotted(repo_params, key, None) is not None or key == "train.max_train_samples", name
        assert schema["type"] in ("string", "integer", "number"), name


def test_nest_and_overrides_of():
    assert nest({"train.epochs": 1, "train.lr": 0.1, "seed": 3}) == {"train": {"epochs": 1, "lr": 0.1}, "seed": 3}
    assert overrides_of({"epochs": 2, "base_model": None, "seed": 0}) == {"train.epochs": 2, "seed": 0}
    with pytest.raises(MlopsError, match="unknown trigger parameter.*epoch; known"):
        overrides_of({"epochs": 2}, conf_keys=["epoch"])


def test_apply_overrides_keeps_comments_and_validates(project):
    params = project / "params.yaml"
    apply_overrides({"train.epochs": 1, "model.base": "some/dir"}, params)
    text = params.read_text()
    assert "# Every knob of the lifecycle" in text
    settings = parse_settings(yaml.safe_load(text))
    assert settings.train.epochs == 1 and settings.model.base == "some/dir"
    before = params.read_text()
    with pytest.raises(MlopsError, match=r"train\.batch_size"):
        apply_overrides({"train.batch_size": 0}, params)
    with pytest.raises(MlopsError, match=r"train\.epoch: unknown key"):
        apply_overrides({"train.epoch": 3}, params)
    assert params.read_text() == before  # a refused override changes nothing


def test_configure_then_record_keep_the_run_apart(project):
    run_id = "manual__2026-11-22T11:00:00+00:00"
    overrides = configure(project, run_id, {"epochs": 3, "seed": 5, "base_model": None}, conf_keys=["epochs", "seed"])
    assert overrides == {"train.epochs": 3, "seed": 5}
    folder = run_dir(project, run_id)
    assert folder.name == "manual__2026-11-22T11_00_00_00_00"
    assert yaml.safe_load((folder / "params.yaml").read_text())["train"]["epochs"] == 3
    (project / "metrics").mkdir()
    (project / "metrics/train.json").write_text(json.dumps({"epochs": 3.0}))
    summary = record(project, run_id)
    assert summary["params"]["seed"] == 5 and summary["results"]["metrics/train.json"]["epochs"] == 3
    assert json.loads((folder / "run.json").read_text())["overrides"] == overrides
    assert (folder / "metrics__train.json").is_file()
    with pytest.raises(MlopsError, match=r"gate\.min_accuracy"):
        configure(project, "other", {"min_accuracy": 2})


def test_configure_logs_the_value_of_every_trigger_parameter(project, repo_params, capsys):
    # given a trigger that sets epochs only
    configure(project, "manual__1", {"epochs": 3}, conf_keys=["epochs"])
    # then the log shows what the trigger form does not: each value the run uses, and where it came from
    line = next(line for line in capsys.readouterr().out.splitlines() if "trigger parameters this run uses" in line)
    assert "epochs=3 (train.epochs, given)" in line
    assert f"seed={repo_params['seed']!r} (seed, params.yaml)" in line
    assert "max_train_samples=not set (train.max_train_samples, params.yaml)" in line
    assert all(f"{name}=" in line for name in TRIGGER_PARAMS)


def test_failure_summary_is_one_paragraph_naming_task_and_cause(project):
    context = {
        "run_id": "r1", "ti": SimpleNamespace(task_id="validate", try_number=3),
        "task": SimpleNamespace(retries=2),
        "exception": RuntimeError("stage validate failed\nRunning stage\nerror: validate: 3 rows < min_rows 50\n"
                                  "ERROR: failed to reproduce 'validate': exited with 2"),
        "params": {"epochs": 1, "seed": None},
    }
    paragraph = failure_summary(project, context)
    assert "\n" not in paragraph
    assert "`validate`" in paragraph and "error: validate: 3 rows < min_rows 50" in paragraph
    assert "epochs=1" in paragraph and "seed" not in paragraph
    assert (run_dir(project, "r1") / "failure.md").read_text().strip() == paragraph


SECRET_ENV = {"MLOPS_API_KEY": "api-k3y-value", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG",
              "MLOPS_GIT_REMOTE": "https://bot:git-t0ken-xyz@git.example/org/p.git"}


def test_failure_summary_and_the_runs_record_hold_no_secret(project, monkeypatch):
    """A stage's error may quote a URL with credentials or a secret of the environment: failure.md, the
    printed lines and every file of the run's record mask them."""
    for key, value in SECRET_ENV.items():
        monkeypatch.setenv(key, value)
    # given a failure whose error text carries secrets (as a git or S3 client prints them), and a trigger
    # parameter with a token in its URL
    context = {
        "run_id": "r1", "ti": SimpleNamespace(task_id="ingest", try_number=1), "task": SimpleNamespace(retries=0),
        "exception": RuntimeError("error: fetch https://user:pw-1234@data.example/x.csv failed with key "
                                  "api-k3y-value, AWS secret wJalrXUtnFEMI/K7MDENG, password git-t0ken-xyz"),
        "params": {"data_source": "https://reader:tok-5678@data.example/x.csv"},
    }
    # when the summary is written
    paragraph = failure_summary(project, context)
    failure = (run_dir(project, "r1") / "failure.md").read_text()
    # then neither it nor what it returns (printed by the callback) holds any of them
    for text in (paragraph, failure):
        assert "https://***@data.example/x.csv failed" in text and "data_source='https://***@data.example" in text
        for secret in ("pw-1234", "tok-5678", "reader", *SECRET_ENV.values(), "git-t0ken-xyz"):
            assert secret not in text, secret
    # and a record copies a stage's summary with its secrets masked
    (project / "metrics").mkdir()
    (project / "metrics/train.json").write_text(json.dumps({"epochs": 1, "note": "pushed with api-k3y-value"}))
    summary = record(project, "r1")
    assert summary["results"]["metrics/train.json"]["note"] == "pushed with api-k3y-value"  # read, not changed
    for path in run_dir(project, "r1").iterdir():
        assert "api-k3y-value" not in path.read_text(), path.name
    assert json.loads((run_dir(project, "r1") / "metrics__train.json").read_text())["note"] == "pushed with ***"


def test_configure_prints_and_records_a_data_source_without_its_credentials(project, capsys):
    text = (project / "params.yaml").read_text().replace("hosts: []", "hosts: [data.example]")
    (project / "params.yaml").write_text(text)
    configure(project, "r1", {"data_source": "https://reader:tok-5678@data.example/x.csv"}, conf_keys=["data_source"])
    printed = capsys.readouterr().out
    assert "data.source.path='https://***@data.example/x.csv'" in printed and "tok-5678" not in printed
    assert yaml.safe_load((project / "params.yaml").read_text())["data"]["source"]["path"] == (
        "https://reader:tok-5678@data.example/x.csv")  # what the stages read is the real URL
    for name in ("params.yaml", "overrides.json"):
        recorded = (run_dir(project, "r1") / name).read_text()
        assert "https://***@data.example/x.csv" in recorded and "tok-5678" not in recorded


DAG_PROBE = """
import copy, json, time
from airflow.dag_processing.dagbag import DagBag
started = time.perf_counter()
bag = DagBag('dags')
fill = time.perf_counter() - started
dag = bag.dags['lifecycle']
refused = {}
for name, value in json.loads(__import__('sys').argv[1]).items():
    params = copy.deepcopy(dag.params)
    try:
        params.update({name: value})
        params.validate()
    except Exception as error:
        refused[name] = str(error).splitlines()[0]
print(json.dumps({'fill': fill, 'errors': {k: str(v) for k, v in bag.import_errors.items()}, 'refused': refused,
                  'queues': {t.task_id: t.queue for t in dag.tasks}, 'retries': dag.default_args['retries'],
                  'backoff': dag.default_args['retry_exponential_backoff'],
                  'timeouts': {t.task_id: t.execution_timeout.total_seconds() for t in dag.tasks},
                  'params': sorted(dag.params),
                  'heavy': sorted(m for m in ('torch', 'transformers', 'evidently', 'bentoml', 'great_expectations',
                                              'sklearn', 'onnxruntime') if m in __import__('sys').modules)}))
"""


@pytest.mark.slow  # parses the DAGs in a fresh interpreter (seconds)
def test_dag_imports_fast_with_trigger_form_retries_timeouts_and_gpu_queue(tmp_path):
    bad = {"epochs": 0, "data_format": "xml", "batch_size": "big", "min_accuracy": 1.5, "max_length": 4}
    env = project_env(ROOT) | {"AIRFLOW_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", DAG_PROBE, json.dumps(bad)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"lifecycle DAG file parsed (DagBag fill) in {report['fill']:.3f}s")
    assert report["errors"] == {}
    # Parsing stays fast because the DAG file imports no ML library (the scheduler re-parses it every few minutes,
    # under core.dagbag_import_timeout): checked by what was imported, not by a clock.
    assert report["heavy"] == []
    assert report["params"] == sorted(TRIGGER_PARAMS)
    for name in bad:
        assert f"Invalid input for param {name}" in report["refused"].get(name, ""), (name, report["refused"])
    assert report["queues"]["train"] == report["queues"]["distill"] == "gpu"  # the stages that train
    assert {queue for task, queue in report["queues"].items() if task not in ("train", "distill")} == {"default"}
    assert report["retries"] >= 1 and report["backoff"] is True
    assert all(0 < seconds <= 8 * 3600 for seconds in report["timeouts"].values())



def stage_operator(tmp_path, name: str, body: str):
    """A StageOperator for `train` whose `dvc` is a bash script with `body`."""
    from mlops.orchestration.airflow_tasks import StageOperator

    project = tmp_path / name
    (project / "bin").mkdir(parents=True)
    script = project / "bin" / "dvc"
    script.write_text(f"#!/usr/bin/env bash\n{body}\n")
    script.chmod(0o755)
    return StageOperator(task_id="train", stage="train", project=str(project),
                         env={"PATH": f"{project / 'bin'}:/usr/bin:/bin"})


def test_stage_streams_output_and_fails_without_retry_on_a_user_error(tmp_path, capsys):
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    stage_operator(tmp_path, "ok", """echo "Running stage '$3'"; echo 'train: 10 rows'""").execute({})
    out = capsys.readouterr().out
    assert "$ dvc repro --single-item train" in out and "Running stage 'train'" in out and "train: 10 rows" in out
    # the stage's mlops command reports its own exit through MLOPS_EXIT_FILE; DVC's message is not read
    refused = """echo '{"exit": 2, "error": "error: train: bad"}' > "$MLOPS_EXIT_FILE"; echo ERROR; exit 255"""
    with pytest.raises(AirflowFailException, match="error: train: bad"):  # no retry: a person must fix it
        stage_operator(tmp_path, "refused", refused).execute({})
    crashed = """echo "ERROR: failed to reproduce 'train': exited with 2"; exit 255"""  # killed: no report
    with pytest.raises(AirflowException) as caught:  # Airflow retries this one
        stage_operator(tmp_path, "crashed", crashed).execute({})
    assert not isinstance(caught.value, AirflowFailException)


DVC_RAN = r"""echo "Running stage 'train':"; echo "> mlops train"; echo 'train: 10 rows, macro-F1 0.9'; echo
echo 'Updating lock file '"'"'dvc.lock'"'"''; echo; echo 'To track the changes with git, run:'; echo
printf '\tgit add dvc.lock plots/.gitignore\n'; echo; echo 'To enable auto staging, run:'; echo
printf '\tdvc config core.autostage true\n'; echo 'Use `dvc push` to send your updates to remote storage.'"""


def test_a_stage_log_ends_with_one_summary_line_not_dvcs_advice(tmp_path, capsys):
    # given a stage that DVC ran, followed by DVC's git and push advice
    stage_operator(tmp_path, "ran", DVC_RAN).execute({})
    out = capsys.readouterr().out
    # then the stage's output is there, the advice is not, and the log ends with one line saying how it went
    assert "train: 10 rows, macro-F1 0.9" in out and "Running stage 'train'" in out
    assert "git add" not in out and "autostage" not in out and "dvc push" not in out
    assert out.strip().splitlines()[-1].startswith("train: ran in ")
    # and a stage DVC found up to date says so
    stage_operator(tmp_path, "unchanged", """echo "Stage 'train' didn't change, skipping"
echo 'Data and pipelines are up to date.'""").execute({})
    assert "train: up to date (nothing it reads changed since dvc.lock): DVC ran nothing" in capsys.readouterr().out


def test_tasks_switch_progress_bars_off(tmp_path):
    from mlops.orchestration.airflow_tasks import task_env

    env = task_env(tmp_path)
    assert env["MLOPS_PROGRESS"] == "0" and env["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"


def test_killed_stage_takes_its_process_group_with_it(tmp_path):
    import threading
    import time

    from airflow.sdk.exceptions import AirflowException

    marker = tmp_path / "child.pid"
    operator = stage_operator(tmp_path, "slow", f"sleep 300 & echo $! > {marker}; wait")
    outcome = []

    def run() -> None:
        try:
            operator.execute({})
            outcome.append("finished")
        except AirflowException:
            outcome.append("failed")

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 20
    while not marker.is_file() or not marker.read_text().strip():
        assert time.monotonic() < deadline, "fake stage did not start"
        time.sleep(0.1)
    child = int(marker.read_text())
    operator.on_kill()  # what Airflow calls when the task is killed
    thread.join(timeout=30)
    assert not thread.is_alive() and outcome == ["failed"]

    def running(pid: int) -> bool:  # a zombie (killed, not yet reaped by init) does not run
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
        except (OSError, IndexError):
            return False

    deadline = time.monotonic() + 10
    while running(child):  # the stage's own children are gone too
        assert time.monotonic() < deadline, f"stage child {child} survived the kill"
        time.sleep(0.2)


def test_a_runs_overrides_apply_to_that_run_only(project):
    """configure keeps params.yaml's bytes, restore puts them back; a run that died is restored by the next one."""
    from mlops.orchestration.runs import restore_params

    params = project / "params.yaml"
    before = params.read_bytes()
    configure(project, "run-1", {"epochs": 1, "seed": 7}, conf_keys=["epochs", "seed"])
    assert yaml.safe_load(params.read_text())["train"]["epochs"] == 1  # the stages see the run's value
    record(project, "run-1")
    assert yaml.safe_load((run_dir(project, "run-1") / "params.yaml").read_text())["seed"] == 7  # the record keeps it
    assert restore_params(project) and params.read_bytes() == before
    assert not restore_params(project)  # nothing kept: nothing to do

    configure(project, "run-2", {"epochs": 3}, conf_keys=["epochs"])  # ... and its worker dies before restoring
    configure(project, "run-3", {"seed": 9}, conf_keys=["seed"])  # the next run starts from the original file
    assert yaml.safe_load(params.read_text())["train"]["epochs"] != 3
    restore_params(project)
    assert params.read_bytes() == before
    with pytest.raises(MlopsError, match=r"gate\.min_accuracy"):
        configure(project, "bad", {"min_accuracy": 2})
    restore_params(project)
    assert params.read_bytes() == before


def test_a_missing_local_data_source_fails_configure_without_retry(project, capsys):
    from airflow.sdk.exceptions import AirflowFailException

    from mlops.orchestration.airflow_tasks import configure as configure_task

    # given a trigger naming a local file that does not exist
    params = project / "params.yaml"
    before = params.read_bytes()
    (project / "data").mkdir()
    (project / "data/other.csv").write_text("text,label\nsecret words,a\n")
    conf = {"data_source": "data/mine.csv"}
    # when the run's configure task runs, then it fails at once (AirflowFailException: no retry), naming the path
    with pytest.raises(AirflowFailException, match=r"data.source.path data/mine.csv: no such file") as caught:
        configure_task(str(project), conf, SimpleNamespace(conf=conf), "manual__1")
    assert "secret words" not in str(caught.value)
    assert params.read_bytes() == before  # and params.yaml is back as it was
    # while the generated corpus, which the generate stage writes, need not exist yet, and an existing file passes
    assert configure(project, "manual__2", {"data_source": "data/generated/corpus.csv"}, conf_keys=["data_source"])
    assert configure(project, "manual__3", {"data_source": "data/other.csv"}, conf_keys=["data_source"])


def test_a_stage_whose_input_is_missing_fails_without_retry(tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    # given DVC refusing to start ingest: its dep is gone (it exits 255 before the stage's command reports anything)
    missing = """echo "ERROR: failed to reproduce 'ingest': [Errno 2] No such file or directory: '/p/data/mine.csv'"
exit 255"""
    # then the task fails at once, naming the file
    with pytest.raises(AirflowFailException, match=r"its input /p/data/mine.csv does not exist"):
        stage_operator(tmp_path, "missing", missing).execute({})


@pytest.mark.parametrize("data_source, message", [
    ("https://attacker.example/corpus.csv", r"^data.source.path: https host 'attacker.example' is not allowed "
                                            r"\(data.allowed_sources.hosts: none\)$"),
    ("ftp://files.example/corpus.csv", r"^data.source.path: scheme 'ftp' is not allowed"),
    ("/etc/passwd", r"^data.source.path /etc/passwd: outside the project, and not in data.allowed_sources.paths"),
    ("../../corpus.csv", r"^data.source.path ../../corpus.csv: outside the project"),
])
def test_configure_refuses_a_data_source_outside_the_allow_list(project, data_source, message):
    """A trigger's data_source is checked before any stage fetches it; params.yaml is left as it was."""
    params = project / "params.yaml"
    before = params.read_bytes()
    with pytest.raises(MlopsError, match=message):
        configure(project, "run-1", {"data_source": data_source}, conf_keys=["data_source"])
    assert params.read_bytes() == before
    assert not (project / "reports" / "runs" / "params.before-run.yaml").exists()
    assert not run_dir(project, "run-1").exists()
    (project / "data").mkdir()
    (project / "data/export.csv").write_text("text,label\nhello,a\n")
    assert configure(project, "run-2", {"data_source": "data/export.csv"}, conf_keys=["data_source"]) == {
        "data.source.path": "data/export.csv"}  # inside the project: fine


def test_configure_refuses_a_params_file_whose_own_source_is_not_allowed(project):
    text = (project / "params.yaml").read_text().replace("path: data/generated/corpus.csv",
                                                         "path: https://example.com/corpus.csv")
    (project / "params.yaml").write_text(text)
    with pytest.raises(MlopsError, match="host 'example.com' is not allowed"):
        configure(project, "run-1", {})


def test_record_of_a_rejected_model_names_no_package_or_promotion(project):
    # given a run whose gate rejected the model, and package/promotion files an earlier run left behind
    files = recorded_files(project)
    for name, content in (("gate", {"accepted": False}), ("package", {"status": "candidate", "model": "old:1"}),
                          ("promotion", {"promoted": True})):
        (project / files[name]).parent.mkdir(parents=True, exist_ok=True)
        (project / files[name]).write_text(json.dumps(content))
    # when the run is recorded
    summary = record(project, "rejected-run")
    # then the earlier run's package and promotion are not reported as this run's
    assert summary["results"][files["package"]] == {"status": "skipped", "reason": "the gate rejected the model"}
    assert summary["results"][files["promotion"]]["promoted"] is False
    assert not (run_dir(project, "rejected-run") / files["package"].replace("/", "__")).exists()
