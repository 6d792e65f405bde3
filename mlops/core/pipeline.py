"""Read the stage graph out of dvc.yaml, for drivers other than `dvc repro`.

The Airflow DAG is derived from this at parse time (`load_stage_graph`, which
reads no parameter values), so dvc.yaml stays the one definition of the
lifecycle: a stage depends on another when one of its deps is (or lies inside)
one of the other's outputs. Only PyYAML is imported, so
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
from mlops.core.stage_commands import SHIPPED, stage_path, stage_paths  # noqa: F401  (read here by the drivers)

TEMPLATE = re.compile(r"\$\{\s*([\w.-]+)\s*\}")


@dataclass(frozen=True)
class Stage:
    """One stage of dvc.yaml as this project reads it: its command, deps and outs, parameters resolved."""

    name: str
    cmd: str
    deps: tuple[str, ...]
    outs: tuple[str, ...]
    upstream: tuple[str, ...]
    # outs with `cache: false`: git, not the DVC cache, carries them (a share-nothing worker commits them)
    uncached: tuple[str, ...] = ()
    params: tuple[str, ...] = ()  # the params.yaml keys dvc.yaml lists for the stage (load_stage_graph only)


def lookup(params: dict[str, Any], dotted: str) -> Any:
    """The value of a ${dotted.key} in params; a clear error when params.yaml lacks it."""
    try:
        return get_dotted(params, dotted)
    except KeyError:
        raise MlopsError(f"dvc.yaml refers to ${{{dotted}}}, which params.yaml does not define") from None


def interpolate(text: str, params: dict[str, Any]) -> str:
    """Resolve dvc.yaml's ${...} templates in `text` from params, as DVC does."""
    return TEMPLATE.sub(lambda match: str(lookup(params, match.group(1))), text)


def paths_of(entries: list[Any] | None, params: dict[str, Any]) -> tuple[str, ...]:
    """Paths from a deps/outs/metrics/plots list, whose items are strings or {path: options}."""
    paths = []
    for entry in entries or []:
        raw = entry if isinstance(entry, str) else next(iter(entry))
        paths.append(interpolate(raw, params).rstrip("/"))
    return tuple(paths)


def uncached_paths(entries: list[Any] | None, params: dict[str, Any]) -> tuple[str, ...]:
    """The paths of a deps/outs/metrics/plots list declared `cache: false`."""
    return tuple(path for entry, path in zip(entries or [], paths_of(entries, params), strict=True)
                 if isinstance(entry, dict) and (next(iter(entry.values())) or {}).get("cache") is False)


def inside(path: str, out: str) -> bool:
    """Whether `path` is `out` or lies inside the folder `out` (DVC's notion of an output covering a path)."""
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
        uncached = sum((uncached_paths(body.get(kind), params) for kind in ("outs", "metrics", "plots")), ())
        stages.append(Stage(name, interpolate(" ".join(str(body["cmd"]).split()), params), deps,
                            produced[name], upstream, uncached))
    return stages


def load_stage_graph(project: Path) -> list[Stage]:
    """The stages of `project/dvc.yaml` as written, params.yaml unread: what the Airflow DAG is built from.

    The DAG is parsed again whenever params.yaml changes (a run's trigger
    parameters change it twice), and Airflow stores a new DAG version each time
    its structure or docs differ, so they must not depend on a parameter's
    value. A dep given by a ${params} template may be any path, so its stage
    waits for every stage before it in dvc.yaml; commands keep their templates.
    """
    project = Path(project)
    try:
        spec = yaml.safe_load((project / "dvc.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise MlopsError(f"cannot read the lifecycle definition in {project}: {error}") from None
    refuse_unsupported(spec)
    raw_stages = spec.get("stages") or {}

    def written(entries: list[Any] | None) -> tuple[str, ...]:
        return tuple((entry if isinstance(entry, str) else next(iter(entry))).rstrip("/") for entry in entries or [])

    produced = {name: sum((written(body.get(kind)) for kind in ("outs", "metrics", "plots")), ())
                for name, body in raw_stages.items()}
    stages = []
    for index, (name, body) in enumerate(raw_stages.items()):
        deps = written(body.get("deps"))
        earlier = list(raw_stages)[:index]
        upstream = tuple(
            other for other, outs in produced.items()
            if other != name and any(
                (TEMPLATE.search(dep) and other in earlier)
                or any(not TEMPLATE.search(out) and inside(dep, out) for out in outs) for dep in deps)
        )
        params = tuple(str(entry if isinstance(entry, str) else next(iter(entry)))
                       for entry in body.get("params") or [])
        stages.append(Stage(name, " ".join(str(body["cmd"]).split()), deps, produced[name], upstream, params=params))
    return stages


def reduced_upstream(stages: list[Stage]) -> dict[str, tuple[str, ...]]:
    """Each stage's upstream stages less those another of them already waits for (the transitive reduction).

    `train -> package` orders nothing that `train -> ... -> gate -> package`
    does not: drawn, such edges only hide the order. The reduction keeps every
    ordering, so a task still starts only after all the stages it reads from.
    """
    upstream = {stage.name: set(stage.upstream) for stage in stages}
    ancestors: dict[str, set[str]] = {}

    def ancestors_of(name: str) -> set[str]:
        if name not in ancestors:
            ancestors[name] = set()
            for parent in upstream[name]:
                ancestors[name] |= {parent} | ancestors_of(parent)
        return ancestors[name]

    return {stage.name: tuple(parent for parent in stage.upstream
                              if not any(parent in ancestors_of(other) for other in upstream[stage.name] - {parent}))
            for stage in stages}


