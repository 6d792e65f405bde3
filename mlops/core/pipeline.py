"""Read the stage graph out of dvc.yaml, for drivers other than `dvc repro`.

The Airflow DAG is derived from this at parse time, so dvc.yaml stays the one
definition of the lifecycle: a stage depends on another when one of its deps
is (or lies inside) one of the other's outputs. Only PyYAML is imported, so
parsing a DAG file stays fast.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlops.core.dotted import get_dotted
from mlops.core.errors import MlopsError

TEMPLATE = re.compile(r"\$\{\s*([\w.-]+)\s*\}")


@dataclass(frozen=True)
class Stage:
    name: str
    cmd: str
    deps: tuple[str, ...]
    outs: tuple[str, ...]
    upstream: tuple[str, ...]


def lookup(params: dict[str, Any], dotted: str) -> Any:
    try:
        return get_dotted(params, dotted)
    except KeyError:
        raise MlopsError(f"dvc.yaml refers to ${{{dotted}}}, which params.yaml does not define") from None


def interpolate(text: str, params: dict[str, Any]) -> str:
    return TEMPLATE.sub(lambda match: str(lookup(params, match.group(1))), text)


def paths_of(entries: list[Any] | None, params: dict[str, Any]) -> tuple[str, ...]:
    """Paths from a deps/outs/metrics/plots list, whose items are strings or {path: options}."""
    paths = []
    for entry in entries or []:
        raw = entry if isinstance(entry, str) else next(iter(entry))
        paths.append(interpolate(raw, params).rstrip("/"))
    return tuple(paths)


def inside(path: str, out: str) -> bool:
    return path == out or path.startswith(out + "/")


UNSUPPORTED = ("foreach", "matrix", "vars")


def refuse_unsupported(spec: dict[str, Any]) -> None:
    """This reader knows plain stages and ${params} templates; anything else would be misread, so say so."""
    if "vars" in spec:
        raise MlopsError("dvc.yaml uses top-level `vars`, which the DAG's dvc.yaml reader (mlops/core/pipeline.py) "
                         "does not support: use params.yaml values")
    for name, body in (spec.get("stages") or {}).items():
        used = [key for key in UNSUPPORTED if key in (body or {})]
        if used:
            raise MlopsError(f"dvc.yaml stage {name} uses `{used[0]}`, which the DAG's dvc.yaml reader "
                             f"(mlops/core/pipeline.py) does not support: write the stages out")


def load_stages(project: Path) -> list[Stage]:
    """The stages of `project/dvc.yaml` in file order, each with its upstream stages."""
    project = Path(project)
    try:
        spec = yaml.safe_load((project / "dvc.yaml").read_text(encoding="utf-8"))
        params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise MlopsError(f"cannot read the lifecycle definition in {project}: {error}") from None
    refuse_unsupported(spec)
    raw_stages = spec.get("stages") or {}
    produced: dict[str, tuple[str, ...]] = {
        name: sum((paths_of(body.get(kind), params) for kind in ("outs", "metrics", "plots")), ())
        for name, body in raw_stages.items()
    }
    stages = []
    for name, body in raw_stages.items():
        deps = paths_of(body.get("deps"), params)
        upstream = tuple(
            other for other, outs in produced.items()
            if other != name and any(inside(dep, out) for dep in deps for out in outs)
        )
        stages.append(Stage(name, interpolate(" ".join(str(body["cmd"]).split()), params), deps,
                            produced[name], upstream))
    return stages
