"""DVC re-runs only what a change reaches: editing the definition of the serving settings leaves every training
stage up to date, while the stages that read those settings become stale (`dvc status`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mlops.core.pipeline import load_stages
from tests.helpers import BIN, copy_project, project_env

TRAINING = {"split", "train", "distill", "optimize", "evaluate", "refit"}


def placeholder_outputs(project: Path) -> None:
    """Every stage's outputs (and the files it reads inside another stage's output folder) as small placeholder
    files or folders, so that `dvc commit` can record a lock without running anything."""
    stages = load_stages(project)
    for stage in stages:
        for out in [*stage.outs, *(dep for dep in stage.deps if not dep.startswith("mlops/"))]:
            path = project / out
            if path.exists():
                continue
            if path.suffix:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"{stage.name} placeholder\n")
            else:
                path.mkdir(parents=True, exist_ok=True)
                (path / "placeholder.txt").write_text(f"{stage.name} placeholder\n")


def stale_stages(project: Path) -> set[str]:
    result = subprocess.run([str(BIN / "dvc"), "status", "--json"], cwd=project, env=project_env(project),
                            capture_output=True, text=True, check=True)
    return {name.split(":")[-1] for name in json.loads(result.stdout or "{}")}


@pytest.mark.slow  # dvc commit and dvc status on a project copy
def test_a_serving_settings_change_re_runs_no_training_stage(tmp_path: Path) -> None:
    # given a project whose every stage is recorded as up to date in dvc.lock
    project = copy_project(tmp_path / "project")
    placeholder_outputs(project)
    env = project_env(project)
    committed = subprocess.run([str(BIN / "dvc"), "commit", "--force"], cwd=project, env=env, capture_output=True,
                               text=True)
    assert committed.returncode == 0, committed.stdout + committed.stderr
    assert stale_stages(project) == set()
    # when the definition of a serving-only setting changes
    serve = project / "mlops" / "core" / "sections" / "serve.py"
    serve.write_text(serve.read_text() + "\n# a new serving setting's definition\n")
    stale = stale_stages(project)
    # then no training stage is to run again, and the stages that read the serving settings are
    assert not stale & TRAINING, f"a serving-only change re-runs {sorted(stale & TRAINING)}"
    assert "package" in stale and "gate" in stale
    assert "ingest" not in stale and "validate" not in stale
