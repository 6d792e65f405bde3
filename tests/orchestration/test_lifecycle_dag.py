"""How the lifecycle DAG looks in the Airflow UI: one DAG version whatever params.yaml holds, docs that render
whole, a trigger form in plain words, a graph of task groups with only the edges that order something."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
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


@pytest.mark.slow  # parses the DAG in two fresh processes
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


DOCS_PROBE = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag('dags')
print(json.dumps({'errors': {k: str(v) for k, v in bag.import_errors.items()},
                  'dags': {dag_id: {'doc_md': dag.doc_md, 'tasks': {t.task_id: t.doc_md for t in dag.tasks},
                                    'params': {name: dag.params.get_param(name).dump() for name in dag.params}}
                           for dag_id, dag in bag.dags.items()}}, default=str))
"""


@pytest.fixture(scope="module")
def parsed_dags(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every DAG as the DAG processor parses it: parsed once for this module's tests, which only read it."""
    return all_dags(tmp_path_factory.mktemp("dags"))


def all_dags(tmp_path: Path) -> dict:
    env = project_env(ROOT) | {"AIRFLOW_HOME": str(tmp_path / "airflow-home")}
    result = subprocess.run([sys.executable, "-c", DOCS_PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    return report["dags"]


def rendered_words(markdown_text: str) -> set[str]:
    """The words a reader sees once the Markdown is rendered: text and code, not tags (nor what a tag swallowed)."""
    import re
    from html.parser import HTMLParser

    import markdown

    seen: list[str] = []

    class Text(HTMLParser):
        def handle_data(self, data: str) -> None:
            seen.append(data)

    parser = Text(convert_charrefs=True)
    parser.feed(markdown.markdown(markdown_text))
    return set(re.findall(r"\w+", " ".join(seen)))


@pytest.mark.slow  # parses the DAGs in a fresh interpreter (seconds)
def test_every_dag_and_task_doc_renders_every_word(parsed_dags):
    import re

    dags = parsed_dags
    assert {"lifecycle", "monitoring", "batch_predict"} <= set(dags)
    for dag_id, dag in dags.items():
        docs = {f"{dag_id} (DAG)": dag["doc_md"], **{f"{dag_id}.{task}": doc for task, doc in dag["tasks"].items()}}
        for where, doc in docs.items():
            assert doc and doc.strip(), f"{where} has no doc_md"
            lost = set(re.findall(r"\w+", doc)) - rendered_words(doc)
            assert not lost, f"{where}: rendering loses {sorted(lost)}"


@pytest.mark.slow  # parses the DAGs in a fresh interpreter (seconds)
def test_task_docs_say_what_a_stage_reads_writes_and_when_it_is_skipped(parsed_dags):
    tasks = parsed_dags["lifecycle"]["tasks"]
    assert "models/candidate" in tasks["train"] and "data/split/train.parquet" in tasks["train"]
    assert all("**Reads**" in tasks[stage] and "**Writes**" in tasks[stage] for stage in ("ingest", "train", "gate"))
    assert "distill.enabled" in tasks["distill"]
    assert all("**Skipped**" in doc for doc in tasks.values())


@pytest.mark.slow  # parses the DAGs in a fresh interpreter (seconds)
def test_trigger_forms_speak_plain_text(parsed_dags):
    for dag_id, dag in parsed_dags.items():
        for name, param in dag["params"].items():
            description, schema = param["description"] or "", param["schema"]
            assert "`" not in description, f"{dag_id}.{name}: Markdown in a plain-text description"
            assert "None" not in description and "(now" not in description, f"{dag_id}.{name}: {description}"
            shown = schema.get("values_display") or {}
            for choice in schema.get("enum") or []:
                label = shown.get("null" if choice is None else str(choice), "null" if choice is None else choice)
                assert label not in ("null", "None"), f"{dag_id}.{name} offers {label!r}"


GRAPH_PROBE = """
import json
from airflow.dag_processing.dagbag import DagBag
dag = DagBag('dags').dags['lifecycle']
print(json.dumps({'groups': {t.task_id: t.task_group.group_id for t in dag.tasks},
                  'rules': {t.task_id: str(t.trigger_rule.value) for t in dag.tasks},
                  'switches': {t.task_id: getattr(t, 'switch', None) for t in dag.tasks}}))
"""


@pytest.mark.slow  # parses the DAGs in a fresh interpreter (seconds)
def test_the_graph_is_drawn_in_task_groups_with_unprefixed_ids(tmp_path):
    env = project_env(ROOT) | {"AIRFLOW_HOME": str(tmp_path / "airflow-home")}
    result = subprocess.run([sys.executable, "-c", GRAPH_PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    groups = report["groups"]
    assert {task: groups[task] for task in ("generate", "ingest", "validate", "split")} == dict.fromkeys(
        ("generate", "ingest", "validate", "split"), "data")
    assert {groups[task] for task in ("train", "distill", "optimize", "evaluate")} == {"model"}
    assert {groups[task] for task in ("gate", "gate_decision", "package", "approve", "promote")} == {"release"}
    assert groups["monitor"] == "monitoring"
    assert {groups[task] for task in ("configure", "record", "restore_params")} == {None}
    # distill is switched off at run time; optimize, after it, runs when it was skipped
    assert report["switches"]["distill"] == "distill.enabled" and report["rules"]["optimize"] == "none_failed"
    assert report["rules"]["train"] == "all_success"


def switchable_stage(tmp_path: Path, enabled: bool):
    from mlops.orchestration.airflow_tasks import StageOperator

    project = tmp_path / f"enabled-{enabled}"
    (project / "bin").mkdir(parents=True)
    (project / "params.yaml").write_text(yaml.safe_dump({"distill": {"enabled": enabled}}))
    script = project / "bin" / "dvc"
    script.write_text("#!/usr/bin/env bash\necho \"distill: $*\" > ran.txt\n")
    script.chmod(0o755)
    return project, StageOperator(task_id="distill", stage="distill", project=str(project), switch="distill.enabled",
                                  env={"PATH": f"{project / 'bin'}:/usr/bin:/bin"})


def test_a_stage_switched_off_by_the_runs_params_runs_then_ends_skipped(tmp_path, capsys):
    from airflow.sdk.exceptions import AirflowSkipException

    # given distill.enabled false in the run's params.yaml
    project, operator = switchable_stage(tmp_path, enabled=False)
    # when its task runs, then the stage still ran (its marker is what optimize reads) and the task is skipped
    with pytest.raises(AirflowSkipException, match="distill.enabled is false"):
        operator.execute({})
    assert (project / "ran.txt").is_file()
    assert "distill: distill.enabled is false in this run's params" in capsys.readouterr().out
    # and switched on, it just succeeds
    project, operator = switchable_stage(tmp_path, enabled=True)
    operator.execute({})
    assert (project / "ran.txt").is_file()


@pytest.mark.slow  # parses the DAGs in a fresh interpreter (seconds)
def test_every_trigger_field_has_a_schema_that_names_it_and_bounds_its_values(parsed_dags):
    """The API server checks a triggered run's conf against these schemas; its refusal names the field, which the
    form shows above the fields (Airflow 3.3's form itself checks only required fields)."""
    import jsonschema

    params = parsed_dags["lifecycle"]["params"]
    assert set(params) == {"data_source", "data_format", "generated_rows", "base_model", "max_length", "epochs",
                           "batch_size", "learning_rate", "max_train_samples", "seed", "min_accuracy",
                           "min_macro_f1"}
    for name, param in params.items():
        schema = param["schema"]
        assert param["value"] is None and schema["title"] == name, name  # empty: as params.yaml says
        kind = [t for t in schema["type"] if t != "null"]
        assert "null" in schema["type"] and len(kind) == 1, name
        jsonschema.validate(None, schema)
        if "enum" in schema:
            assert None in schema["enum"] and schema["values_display"]["null"] == "as params.yaml says", name
        elif kind[0] in ("integer", "number"):
            assert "minimum" in schema or "exclusiveMinimum" in schema, name
        else:
            assert schema["minLength"] == 1 and schema["pattern"], name
    # given values a person might type, then the schema refuses the bad ones
    refused = {"epochs": -1, "batch_size": 0, "learning_rate": 2, "min_accuracy": 1.5, "seed": -1, "data_format": "xml",
               "generated_rows": 10, "data_source": " data/x.csv", "base_model": "", "max_length": 1.5}
    for name, value in refused.items():
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(value, params[name]["schema"])
    for name, value in {"epochs": 0.5, "data_source": "data/my file.csv", "data_format": "csv", "seed": 0}.items():
        jsonschema.validate(value, params[name]["schema"])
