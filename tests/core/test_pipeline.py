"""dvc.yaml is the one definition of the lifecycle; the DAG must mirror it exactly."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlops.core.errors import MlopsError
from mlops.core.pipeline import load_stage_graph, load_stages, reduced_upstream
from tests.helpers import ROOT, project_env

STAGES = ["generate", "ingest", "validate", "split", "train", "distill", "optimize", "evaluate", "gate", "refit",
          "package", "monitor"]


def test_stage_graph_from_dvc_yaml():
    stages = {stage.name: stage for stage in load_stages(ROOT)}
    assert list(stages) == STAGES
    assert stages["ingest"].upstream == ("generate",)  # through ${data.source.path}
    assert set(stages["gate"].upstream) == {"split", "train", "optimize", "evaluate"}
    assert set(stages["monitor"].upstream) == {"train", "evaluate"}
    assert set(stages["distill"].upstream) == {"split", "train"}
    assert set(stages["optimize"].upstream) == {"train", "distill"}
    assert "data/generated/corpus.csv" in stages["ingest"].deps


def test_stage_graph_for_the_dag_reads_no_parameter_values(tmp_path):
    # given dvc.yaml alone: no params.yaml to resolve ${data.source.path} or ${evaluate.behaviour_suite} with
    (tmp_path / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    stages = {stage.name: stage for stage in load_stage_graph(tmp_path)}
    resolved = {stage.name: stage for stage in load_stages(ROOT)}
    # then the graph has every stage, commands as written, and a templated dep waits for every earlier stage
    assert list(stages) == STAGES
    assert stages["ingest"].upstream == ("generate",)
    assert set(stages["evaluate"].upstream) == set(STAGES[:STAGES.index("evaluate")])
    for name, stage in stages.items():  # at least the edges the current values give
        assert set(resolved[name].upstream) <= set(stage.upstream), name
        assert stage.cmd == resolved[name].cmd  # no template in a command today


def test_every_stage_is_a_cli_subcommand():
    from mlops.cli import cli

    for stage in load_stages(ROOT):
        assert stage.cmd.startswith(f"mlops {stage.name} ")
        assert stage.name in cli.commands


def test_undefined_template_is_named(tmp_path):
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"a": {"cmd": "x", "deps": ["${nope.path}"]}}}))
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    with pytest.raises(MlopsError, match=r"\$\{nope.path\}, which params.yaml does not define"):
        load_stages(tmp_path)


@pytest.mark.slow  # parses the DAGs in a fresh interpreter (seconds)
def test_dag_imports_without_errors_and_mirrors_dvc_yaml(tmp_path):
    script = (
        "import json; from airflow.dag_processing.dagbag import DagBag; bag = DagBag('dags'); "
        "dag = bag.dags.get('lifecycle'); errors = {k: str(v) for k, v in bag.import_errors.items()}; "
        "print(json.dumps({'errors': errors, "
        "'tasks': {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks} if dag else None, "
        "'max_active_runs': dag.max_active_runs if dag else None}))"
    )
    env = project_env(ROOT) | {"AIRFLOW_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    assert report["max_active_runs"] == 1
    stages = load_stage_graph(ROOT)
    reduced = reduced_upstream(stages)  # only the edges that order something
    # A stage after the gate waits for the `gate_decision` branch instead of the gate itself.
    expected = {stage.name: sorted(u if u != "gate" else "gate_decision" for u in reduced[stage.name])
                or ["configure"] for stage in stages}
    downstream = {upstream for stage in stages for upstream in stage.upstream}
    # Around the stages: `configure` applies the trigger params first, `promote` follows `package` (promotion
    # is not a DVC stage) and `approve` (a person's approval, when promote.approval is human), `record` writes
    # the run's record, and `restore_params`, the teardown of `configure`, puts params.yaml back last.
    leaves = [stage.name for stage in stages if stage.name not in downstream and stage.name != "package"]
    expected |= {"configure": [], "record": sorted([*leaves, "promote"]), "gate_decision": ["gate"],
                 "approve": ["package"], "promote": ["approve", "package"], "restore_params": ["configure", "record"]}
    assert report["tasks"] == expected
    assert report["tasks"]["refit"] == ["gate_decision"]  # not train, optimize, evaluate: gate follows those
    assert report["tasks"]["package"] == ["refit"]  # a rejected model skips the refit and packaging alike


def test_reduced_upstream_keeps_only_edges_that_order_something():
    stages = load_stage_graph(ROOT)
    reduced = reduced_upstream(stages)
    assert reduced["package"] == ("refit",) and reduced["refit"] == ("gate",) and reduced["gate"] == ("evaluate",)
    assert reduced["optimize"] == ("distill",) and reduced["monitor"] == ("evaluate",)
    assert reduced["generate"] == ()

    def ancestors(graph: dict, name: str) -> set[str]:
        found = set()
        for parent in graph[name]:
            found |= {parent} | ancestors(graph, parent)
        return found

    full = {stage.name: stage.upstream for stage in stages}
    for stage in stages:  # every ordering kept, and no edge that another path implies
        assert ancestors(reduced, stage.name) == ancestors(full, stage.name), stage.name
        for parent in reduced[stage.name]:
            others = set(reduced[stage.name]) - {parent}
            assert not any(parent in ancestors(reduced, other) for other in others), (stage.name, parent)


def test_gate_decision_branch(tmp_path, capsys):
    from mlops.orchestration.airflow_tasks import gate_passed

    decision = tmp_path / "reports/gate/decision.json"
    decision.parent.mkdir(parents=True)
    decision.write_text(json.dumps({"accepted": False, "basis": "first run",
                                    "reasons": ["min_accuracy: observed 0.5 vs 0.8"]}))
    assert gate_passed(str(tmp_path), "reports/gate/decision.json") is False
    printed = capsys.readouterr().out
    assert "REJECTED: packaging and deployment are skipped" in printed and "min_accuracy: observed 0.5" in printed
    decision.write_text(json.dumps({"accepted": True, "basis": "first run", "reasons": ["all checks passed"]}))
    assert gate_passed(str(tmp_path), "reports/gate/decision.json") is True


def test_dvc_yaml_declares_outputs_of_every_stage():
    spec = yaml.safe_load((Path(ROOT) / "dvc.yaml").read_text())
    # nothing appended by tools (dvclive writes its own sections by default); `artifacts` names the model for GTO
    assert list(spec) == ["stages", "artifacts"]
    assert spec["artifacts"]["text-classifier"]["path"] == "models/candidate"
    for name, body in spec["stages"].items():
        assert body.get("outs") or body.get("metrics"), name
        assert any(dep.startswith("mlops/") for dep in body["deps"]), f"{name} must depend on its code"


def mlops_imports(path: Path) -> set[Path]:
    """The project modules `path` imports, at module level or inside functions; not those under
    `if TYPE_CHECKING:`, which only annotations read (a stage annotates with `Settings` but runs on its sections)."""
    import ast

    tree = ast.parse(path.read_text())
    typing_only = {id(inner) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING"
                   for inner in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        for name in names:
            if name.split(".")[0] == "mlops" and (ROOT / (name.replace(".", "/") + ".py")).is_file():
                found.add(ROOT / (name.replace(".", "/") + ".py"))
    return found


def import_closure(module: Path) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(mlops_imports(current))
    return {str(path.relative_to(ROOT)) for path in seen}


def section_modules(params: tuple[str, ...]) -> set[str]:
    """The modules defining the params.yaml sections a stage lists (`gate`, `feedback.queue_dir` -> gate, feedback),
    with their common base: a stage depends on the code of its own parameters, and on no other section's."""
    sections = {key.split(".")[0].rstrip("_") for key in params}
    modules = {f"mlops/core/sections/{name}.py" for name in sections
               if (ROOT / "mlops" / "core" / "sections" / f"{name}.py").is_file()}
    return modules | {"mlops/core/sections/base.py"} if modules else modules


def required_deps(stage_name: str, params: tuple[str, ...]) -> set[str]:
    """What a stage's deps must list of the project's code: every module it imports, its sections' definitions."""
    return import_closure(ROOT / "mlops" / "stages" / f"{stage_name}.py") | section_modules(params)


def test_each_stage_depends_on_every_module_it_imports_and_no_other():
    """A change to shared code re-runs exactly the stages whose code reaches it, and a change to a section of the
    settings exactly the stages that list that section's parameters."""
    from mlops.core.pipeline import inside, load_stage_graph

    params_of = {stage.name: stage.params for stage in load_stage_graph(ROOT)}
    for stage in load_stages(ROOT):
        module = ROOT / "mlops" / "stages" / f"{stage.name}.py"
        assert module.is_file(), f"stage {stage.name} has no module at mlops/stages/{stage.name}.py"
        closure = required_deps(stage.name, params_of[stage.name])
        missing = sorted(path for path in closure if not any(inside(path, dep) for dep in stage.deps))
        assert not missing, (f"dvc.yaml: stage {stage.name} imports (or reads the parameters of) {missing} but does "
                             "not list them in deps")
        extra = [dep for dep in stage.deps if dep.startswith("mlops/") and dep.endswith(".py") and dep not in closure]
        assert not extra, f"dvc.yaml: stage {stage.name} lists {extra} but never imports them"
        stale = [dep for dep in stage.deps if dep.startswith("mlops/") and not (ROOT / dep).exists()]
        assert not stale, f"dvc.yaml: stage {stage.name} depends on missing {stale}"


@pytest.mark.parametrize("construct", ["foreach", "matrix", "vars"])
def test_unsupported_dvc_yaml_constructs_are_refused_by_name(tmp_path, construct):
    stage = {"cmd": "x"}
    spec = {"stages": {"a": stage}}
    if construct == "vars":
        spec["vars"] = [{"x": 1}]
    else:
        stage[construct] = [1, 2] if construct == "foreach" else {"x": [1, 2]}
        stage["do"] = {"cmd": "x"} if construct == "foreach" else None
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(spec))
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    with pytest.raises(MlopsError, match=f"`{construct}`"):
        load_stages(tmp_path)


def test_stage_paths_are_the_options_of_the_stage_command():
    from mlops.core.pipeline import stage_path, stage_paths

    assert stage_paths(ROOT, "split") == {"data": "data/validated.parquet", "out-dir": "data/split"}
    assert stage_path(ROOT, "gate", "out") == Path("reports/gate/decision.json")
    with pytest.raises(MlopsError, match="stage train passes no --nope"):
        stage_path(ROOT, "train", "nope")
    with pytest.raises(MlopsError, match="no stage 'nope'"):
        stage_paths(ROOT, "nope")


def test_no_output_path_of_dvc_yaml_is_written_again_in_the_code():
    """dvc.yaml is the one place a stage's path is written: code reads it from there (stage_paths)."""
    import ast

    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    written = {str(entry if isinstance(entry, str) else next(iter(entry))).rstrip("/")
               for body in spec["stages"].values() for kind in ("deps", "outs", "metrics", "plots")
               for entry in body.get(kind) or []}
    # a ${param} path is written in params.yaml (its source), not here
    declared = {path for path in written if not path.startswith("mlops/") and "/" in path and "${" not in path}
    for source in [*(ROOT / "mlops").rglob("*.py"), *(ROOT / "dags").glob("*.py")]:
        literals = {node.value.rstrip("/") for node in ast.walk(ast.parse(source.read_text()))
                    if isinstance(node, ast.Constant) and isinstance(node.value, str)}
        repeated = sorted(literals & declared)
        assert not repeated, f"{source.relative_to(ROOT)} writes {repeated} again: read them from dvc.yaml"
