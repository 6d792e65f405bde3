"""How the lifecycle DAG looks in the Airflow UI: one DAG version whatever params.yaml holds, docs that render
whole, a trigger form in plain words, a graph of task groups with only the edges that order something."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers import ROOT, project_env

SERIALIZED_PROBE = """
import json
from airflow.dag_processing.dagbag import DagBag
from airflow.models.serialized_dag import SerializedDagModel
from airflow.serialization.serialized_objects import DagSerialization
bag = DagBag('dags')
dag = bag.dags['lifecycle']
data = DagSerialization.to_dict(dag)
print(json.dumps({'errors': {k: str(v) for k, v in bag.import_errors.items()},
                  'hash': SerializedDagModel.hash(data),
                  'params': {name: dag.params.get_param(name).dump() for name in dag.params},
                  'doc_md': dag.doc_md, 'task_docs': {t.task_id: t.doc_md for t in dag.tasks},
                  'edges': {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}}, default=str))
"""


def serialized_lifecycle(tmp_path: Path, params: dict) -> dict:
    """The lifecycle DAG as the DAG processor stores it, parsed for a project whose params.yaml is `params`."""
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    shutil.copy(ROOT / "dvc.yaml", project / "dvc.yaml")
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = project_env(ROOT) | {"AIRFLOW_HOME": str(tmp_path / "airflow-home"), "MLOPS_PROJECT_DIR": str(project)}
    result = subprocess.run([sys.executable, "-c", SERIALIZED_PROBE], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_changing_params_yaml_makes_no_new_dag_version(tmp_path, repo_params):
    # given the DAG parsed with the shipped params.yaml
    before = serialized_lifecycle(tmp_path, repo_params)
    # when a run's `configure` has applied overrides (another data source, other training values)
    repo_params["data"]["source"]["path"] = "data/mine.csv"
    repo_params["train"].update({"epochs": 7, "max_train_samples": 100})
    repo_params["distill"]["enabled"] = not repo_params["distill"]["enabled"]
    repo_params["gate"]["min_accuracy"] = 0.123
    after = serialized_lifecycle(tmp_path, repo_params)
    # then the DAG processor stores the same DAG: same params, docs, graph, hash
    assert before["errors"] == after["errors"] == {}
    assert after["params"] == before["params"]
    assert after["doc_md"] == before["doc_md"] and after["task_docs"] == before["task_docs"]
    assert after["edges"] == before["edges"]
    assert after["hash"] == before["hash"]
