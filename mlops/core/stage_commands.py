"""The paths a stage's command in dvc.yaml passes, by option: the one place a stage's paths are written.

The CLI's defaults, each stage's typed IO (mlops/core/stage_io.py), the run record and the summary read a stage's
files from here. It needs only PyYAML, so a stage whose IO is built from it depends on this reader and not on the
whole pipeline graph (DVC re-runs a stage when a module it imports changes).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from mlops.core.errors import MlopsError

SHIPPED = Path(__file__).resolve().parents[2] / "dvc.yaml"  # the lifecycle this code came with


def stage_paths(project: Path | str, stage: str) -> dict[str, str]:
    """The paths a stage's command in dvc.yaml passes, by option: `--out-dir data/split` -> {"out-dir": ...}.

    The CLI's defaults, the run record and the summary read a stage's files
    from here, so dvc.yaml stays the one place where a path is written. The
    project's dvc.yaml, else (a command run outside a project) the one shipped
    with this code.
    """
    spec_file = Path(project) / "dvc.yaml"
    spec_file = spec_file if spec_file.is_file() else SHIPPED
    try:
        stages = yaml.safe_load(spec_file.read_text(encoding="utf-8")).get("stages") or {}
    except (OSError, yaml.YAMLError, AttributeError) as error:
        raise MlopsError(f"cannot read the stages in {spec_file}: {error}") from None
    if stage not in stages:
        raise MlopsError(f"{spec_file} has no stage {stage!r}")
    words = shlex.split(" ".join(str(stages[stage]["cmd"]).split()))
    return {word[2:]: value for word, value in zip(words, words[1:], strict=False)
            if word.startswith("--") and not value.startswith("--")}



def stage_path(project: Path | str, stage: str, option: str) -> Path:
    """One path of `stage_paths`, named in the error when dvc.yaml does not pass it."""
    paths = stage_paths(project, stage)
    if option not in paths:
        raise MlopsError(f"dvc.yaml: stage {stage} passes no --{option}; give it on the command line")
    return Path(paths[option])
