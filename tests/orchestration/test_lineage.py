"""OpenLineage: each stage task reports its dvc.yaml deps and outs (versioned by dvc.lock), promote its model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, project_env

TINY_DVC_YAML = """\
stages:
  first:
    cmd: cp data/raw.txt data/first.txt
    deps:
      - data/raw.txt
    outs:
      - data/first.txt
  second:
    cmd: mkdir -p out && cp data/first.txt out/second.txt
    deps:
      - data/first.txt
    outs:
      - out
"""

# a DAG of StageOperators over the tiny dvc.yaml, as dags/lifecycle.py builds them
TINY_DAG = """
from pathlib import Path
from airflow.sdk import DAG
from mlops.core.pipeline import load_stage_graph
from mlops.orchestration.airflow_tasks import StageOperator, task_env

project = Path(__file__).resolve().parents[1]
with DAG(dag_id="tiny_lineage", schedule=None, catchup=False) as dag:
    tasks = {stage.name: StageOperator(task_id=stage.name, stage=stage.name, project=str(project),
                                       env=task_env(project), retries=0) for stage in load_stage_graph(project)}
    tasks["first"] >> tasks["second"]
"""
RUN_ONCE = """
import sys
from airflow.dag_processing.dagbag import DagBag
run = DagBag(sys.argv[1]).dags["tiny_lineage"].test()
print("STATE", run.state)
"""


def tiny_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "dvc.yaml").write_text(TINY_DVC_YAML)
    (project / "params.yaml").write_text("{}\n")
    (project / "data/raw.txt").write_text("one line\n")
    (project / "dags").mkdir()
    (project / "dags/tiny_lineage.py").write_text(TINY_DAG)
    env = project_env(project)
    for command in (["git", "init", "-q"], [str(Path(sys.executable).parent / "dvc"), "init", "-q"]):
        subprocess.run(command, cwd=project, env=env, check=True, capture_output=True)
    return project


@pytest.mark.slow  # a fresh Airflow database and one dag.test() run of two DVC stages
def test_each_stage_task_emits_start_and_complete_with_its_dvc_paths_and_hashes(tmp_path):
    # given a two-stage project and an Airflow whose OpenLineage transport is a file
    project = tiny_project(tmp_path)
    events_file = tmp_path / "lineage.jsonl"
    env = project_env(project) | {
        "AIRFLOW_HOME": str(tmp_path / "airflow-home"), "PYTHONPATH": str(ROOT),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(events_file),
                                                       "append": True}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "tests"}
    migrated = subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], env=env,
                              capture_output=True, text=True, timeout=300)
    assert migrated.returncode == 0, migrated.stdout[-3000:] + migrated.stderr[-3000:]
    # when the DAG runs
    result = subprocess.run([sys.executable, "-c", RUN_ONCE, str(project / "dags")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "STATE success" in result.stdout, result.stdout[-3000:] + result.stderr[-3000:]
    # then each stage task sent one START and one COMPLETE event
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    tasks = [e for e in events if e["job"]["name"] in ("tiny_lineage.first", "tiny_lineage.second")]
    pairs = sorted((e["job"]["name"], e["eventType"]) for e in tasks)
    assert pairs == [("tiny_lineage.first", "COMPLETE"), ("tiny_lineage.first", "START"),
                     ("tiny_lineage.second", "COMPLETE"), ("tiny_lineage.second", "START")], pairs
    complete = {e["job"]["name"].split(".")[1]: e for e in tasks if e["eventType"] == "COMPLETE"}
    lock = __import__("yaml").safe_load((project / "dvc.lock").read_text())["stages"]

    def named(datasets):
        return {d["name"]: d["facets"].get("version", {}).get("datasetVersion") for d in datasets}

    # with its dvc.yaml deps and outs, named by their DVC paths in the project's namespace, hashed as dvc.lock says
    first, second = complete["first"], complete["second"]
    assert named(first["inputs"]) == {"data/raw.txt": lock["first"]["deps"][0]["md5"]}
    assert named(first["outputs"]) == {"data/first.txt": lock["first"]["outs"][0]["md5"]}
    assert named(second["inputs"]) == {"data/first.txt": lock["first"]["outs"][0]["md5"]}  # one dataset, joined
    assert named(second["outputs"]) == {"out": lock["second"]["outs"][0]["md5"]}
    assert named(second["outputs"])["out"].endswith(".dir")
    assert {d["namespace"] for d in first["inputs"] + second["outputs"]} == {"dvc://project"}


def test_promote_reports_the_package_and_the_champion_model(tmp_path):
    from mlops.orchestration.lineage import promotion_datasets

    # given a project whose registry has a champion
    project = tmp_path / "project"
    project.mkdir()
    (project / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    home = project / ".bentoml"
    home.mkdir()
    (home / "registry.json").write_text(json.dumps({"champion": {"model": "text-classifier:abc", "digest": "d1",
                                                                 "bento": "text-classifier-service:b1"}}))
    # when promote's lineage is asked for
    lineage = promotion_datasets(project, home)
    # then it read the package's result and wrote the champion model (versioned by its digest) and its Bento
    assert [d.name for d in lineage.inputs] == ["reports/package.json"]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("bentoml", "text-classifier:abc"),
                                                                 ("bentoml", "text-classifier-service:b1")]
    assert lineage.outputs[0].facets["version"].datasetVersion == "d1"
    # and with no registry yet, only the package
    assert promotion_datasets(project, tmp_path / "none").outputs == []
