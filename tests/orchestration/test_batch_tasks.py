"""The batch_predict DAG: its parameters are checked, and its task runs `mlops predict` on the given file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import ROOT, project_env

PROBE = """
import copy
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag('dags')
dag = bag.dags.get('batch_predict')
refused = []
for conf in ({'input': ''}, {'input': 'a.xlsx'}, {'input': 3}, {'input': 'a.csv', 'output': 'b.txt'},
             {'input': 'a.csv', 'model': ''}, {'input': '/etc/a.csv'}, {'input': '../a.csv'},
             {'input': 'data/../../a.csv'}, {'input': 'a.csv', 'output': '/tmp/o.csv'},
             {'input': 'a.csv', 'output': 'reports/../../o.csv'}, {'input': 'a.csv', 'model': '/models/m'},
             {'input': 'a.csv', 'model': 'text-classifier:abc/../x'},
             {'input': 'a.csv'}, {'input': 'd/a.parquet', 'output': 'o.jsonl'}, {'input': 'data/x..y.csv'},
             {'input': 'a.csv', 'model': 'text-classifier:abc123'}):
    params = copy.deepcopy(dag.params)
    try:
        params.update(conf)
        params.validate()
    except Exception:
        refused.append(conf)
print(json.dumps({'errors': {k: str(v) for k, v in bag.import_errors.items()}, 'schedule': dag.schedule,
                  'tasks': [t.task_id for t in dag.tasks], 'refused': refused}))
"""


@pytest.mark.slow  # parses the DAGs in a fresh interpreter (seconds)
def test_dag_imports_and_its_schema_refuses_bad_parameters(tmp_path):
    env = project_env(ROOT) | {"AIRFLOW_HOME": str(tmp_path / "airflow-home")}
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == {} and report["schedule"] is None and report["tasks"] == ["predict"]
    assert report["refused"] == [{"input": ""}, {"input": "a.xlsx"}, {"input": 3},
                                 {"input": "a.csv", "output": "b.txt"}, {"input": "a.csv", "model": ""},
                                 {"input": "/etc/a.csv"}, {"input": "../a.csv"}, {"input": "data/../../a.csv"},
                                 {"input": "a.csv", "output": "/tmp/o.csv"},
                                 {"input": "a.csv", "output": "reports/../../o.csv"},
                                 {"input": "a.csv", "model": "/models/m"},
                                 {"input": "a.csv", "model": "text-classifier:abc/../x"}]


@pytest.fixture
def project(tmp_path):
    project = tmp_path / "project"
    (project / "bin").mkdir(parents=True)
    (project / "data").mkdir()
    (project / "data" / "new.csv").write_text("text\nhello\n")
    return project


def operator_with(project, body):
    """A BatchPredictOperator whose `mlops` is a bash script with `body` (its arguments logged to args.txt)."""
    from mlops.orchestration.batch_tasks import BatchPredictOperator

    script = project / "bin" / "mlops"
    script.write_text(f"#!/usr/bin/env bash\necho \"$@\" > {project / 'args.txt'}\n{body}\n")
    script.chmod(0o755)
    return BatchPredictOperator(task_id="predict", project=str(project),
                                env={"PATH": f"{project / 'bin'}:/usr/bin:/bin"})


def test_task_runs_mlops_predict_into_the_runs_folder(project):
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    context = {"run_id": "manual__2026-12-01T10:00:00+00:00", "params": {"input": "data/new.csv"}}
    result = operator_with(project, "echo 'predict: 1 rows'").execute(context)
    expected = project / "reports/batch/manual__2026-12-01T10_00_00_00_00/predictions.csv"
    assert result == {"output": str(expected)}
    assert (project / "args.txt").read_text().split() == [
        "predict", "--input", str(project / "data/new.csv"), "--output", str(expected), "--no-progress"]
    operator_with(project, "").execute({**context, "params": {"input": "data/new.csv", "output": "data/o.parquet",
                                                              "model": "text-classifier:abc"}})
    assert (project / "args.txt").read_text().split()[4:] == [str(project / "data/o.parquet"), "--no-progress",
                                                              "--model", "text-classifier:abc"]
    with pytest.raises(AirflowFailException, match="refused its input"):
        operator_with(project, "echo 'error: input: no text column'; exit 2").execute(context)
    with pytest.raises(AirflowException) as caught:  # retried by Airflow
        operator_with(project, "exit 1").execute(context)
    assert not isinstance(caught.value, AirflowFailException)


@pytest.mark.parametrize("params, message", [
    ({}, "param `input`: give the file"),
    ({"input": "data/missing.csv"}, "no such file"),
    ({"input": "data/new.txt"}, "unsupported format '.txt'"),
    ({"input": "data/new.csv", "output": "reports/out.xlsx"}, "param `output` reports/out.xlsx: unsupported format"),
    ({"input": "data/new.csv", "output": "data/new.csv"}, "is the input file"),
    ({"input": "data/new.csv", "model": " "}, "param `model`"),
])
def test_bad_parameters_fail_at_once_without_running_anything(project, params, message):
    from airflow.sdk.exceptions import AirflowFailException

    (project / "data" / "new.txt").write_text("x")
    with pytest.raises(AirflowFailException, match=message):
        operator_with(project, "").execute({"run_id": "r", "params": params})
    assert not (project / "args.txt").exists()


ALLOWED_OUTPUT = r"give a path inside reports/ or data/ \(not data/feedback/\)"


@pytest.mark.parametrize("params, message", [
    ({"input": "/etc/passwd.csv"}, r"^param `input` /etc/passwd.csv: outside the folders it may use; give a path "
                                   r"inside data/$"),
    ({"input": "../new.csv"}, r"^param `input` \.\./new.csv: outside the folders it may use"),
    ({"input": "data/link/new.csv"}, r"^param `input` data/link/new.csv: outside the folders it may use"),
    ({"input": "data/new.csv", "output": "/tmp/out.csv"}, r"^param `output` /tmp/out.csv: outside the folders"),
    ({"input": "data/new.csv", "output": "reports/../../out.csv"}, "outside the folders it may use; " + ALLOWED_OUTPUT),
    ({"input": "data/new.csv", "output": ".bentoml/registry.json"}, "outside the folders it may use"),
    ({"input": "data/new.csv", "output": "data/../.bentoml/registry.json"}, "outside the folders it may use"),
    ({"input": "data/new.csv", "output": "data/link/registry.json"}, "outside the folders it may use"),
    ({"input": "data/new.csv", "output": "data/feedback/batch-20260101T000000Z-served.csv"},
     r"^param `output` data/feedback/batch-20260101T000000Z-served.csv: inside a folder it may not use; "
     + ALLOWED_OUTPUT),
    ({"input": "data/new.csv", "output": "data/fb-link/batch.csv"}, "inside a folder it may not use"),
    ({"input": "data/new.csv", "model": "/tmp/some-model-dir"}, "param `model`: a model tag"),
])
def test_paths_outside_the_allowed_folders_fail_at_once_without_running_anything(project, params, message):
    """No trigger can overwrite the registry, add a self-labelled feedback batch, or read outside data/."""
    from airflow.sdk.exceptions import AirflowFailException

    # given the registry in .bentoml/, the feedback batches folder, and links inside data/ to both
    (project / ".bentoml").mkdir()
    (project / ".bentoml" / "registry.json").write_text("{}")
    (project / "data" / "feedback").mkdir()
    (project / "data" / "link").symlink_to(project / ".bentoml")
    (project / "data" / "fb-link").symlink_to(project / "data" / "feedback")
    (project / ".bentoml" / "new.csv").write_text("text\nhello\n")
    # when a run is triggered with a path that leads out of them, the task fails before running anything
    with pytest.raises(AirflowFailException, match=message) as raised:
        operator_with(project, "").execute({"run_id": "r", "params": params})
    assert "\n" not in str(raised.value)
    assert not (project / "args.txt").exists()
    assert (project / ".bentoml" / "registry.json").read_text() == "{}"


def test_the_feedback_batches_folder_comes_from_params(project, repo_params):
    """A project whose feedback.batches_dir is elsewhere refuses that folder, and data/feedback is then fine."""
    import yaml

    repo_params["feedback"]["batches_dir"] = "data/labels"
    (project / "params.yaml").write_text(yaml.safe_dump(repo_params))
    context = {"run_id": "r", "params": {"input": "data/new.csv", "output": "data/labels/batch.csv"}}
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match=r"\(not data/labels/\)"):
        operator_with(project, "").execute(context)
    result = operator_with(project, "").execute({**context, "params": {"input": "data/new.csv",
                                                                       "output": "data/feedback/x.csv"}})
    assert result == {"output": str(project / "data/feedback/x.csv")}
