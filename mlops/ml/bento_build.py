"""A stored model's Bento: built from bentofile.yaml with exact pins from the lock, and found again.

The package stage builds the Bento of the model it stores; `mlops registry promote` (mlops/serving/promotion.py)
turns any stored model back into a registry candidate with the same rules. The Bento's Python packages are exact
pins from requirements.lock: the ones bentofile.yaml names and everything they depend on, so the image runs what
the gate measured, and building still needs no index. The build digest says what a Bento is built from besides its
model, so that a serving change is seen without retraining.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mlops.core import registry
from mlops.core.environment import MODEL_TAG_ENV
from mlops.core.errors import MlopsError
from mlops.ml.variants import served_variant

if TYPE_CHECKING:
    from mlops.core.settings import Settings


LOCK_FILE = "requirements.lock"  # beside bentofile.yaml



def locked_versions(lock: Path) -> dict[str, str]:
    """The lock's `name==version` lines, by canonical name."""
    from packaging.utils import canonicalize_name

    if not lock.is_file():
        raise MlopsError(f"no {lock.name} at {lock}: the Bento's packages are pinned from it")
    versions = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep:
            versions[canonicalize_name(name.split("[")[0])] = version.split(";")[0].strip()
    return versions



def pinned_packages(packages: list[str], lock: Path) -> list[str]:
    """`packages` (bentofile.yaml's requirements), bentoml itself and everything they depend on, each pinned
    `==` to the lock's version.

    bentoml build with lock_packages resolves against an index (fails
    offline, and picks CUDA torch); the lock already says what this
    environment, where the model was trained and gated, runs. The dependency
    closure follows the installed packages' metadata, markers evaluated here
    (Linux, the Bento's Python version); a bentofile specifier the lock does
    not satisfy, or a package the lock lacks, is named.
    """
    import importlib.metadata as metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    versions = locked_versions(lock)
    wanted = [Requirement(package) for package in [*packages, "bentoml"]]
    for requirement in wanted:
        version = versions.get(canonicalize_name(requirement.name))
        if version is not None and not requirement.specifier.contains(version, prereleases=True):
            raise MlopsError(f"bentofile.yaml asks for {requirement} but {lock.name} pins "
                             f"{requirement.name}=={version}")
    extras_of: dict[str, set[str]] = {}
    needed_by: dict[str, str] = {}
    todo = [(requirement, "bentofile.yaml") for requirement in wanted]
    while todo:
        requirement, parent = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in extras_of and set(requirement.extras) <= extras_of[name]:
            continue
        extras = extras_of.setdefault(name, set())
        extras |= set(requirement.extras)
        needed_by.setdefault(name, parent)
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            raise MlopsError(f"the Bento needs {name} (for {parent}) but it is not installed: `make setup`") from None
        for line in requires:
            dependency = Requirement(line)
            if dependency.marker is None or any(dependency.marker.evaluate({"extra": extra})
                                                for extra in extras or {""}):
                todo.append((dependency, name))
    missing = sorted(name for name in extras_of if name not in versions)
    if missing:
        raise MlopsError(f"{lock.name} has no pin for {', '.join(missing[:5])} (needed by "
                         f"{needed_by[missing[0]]}): regenerate the lock")
    return [f"{name}{'[' + ','.join(sorted(extras_of[name])) + ']' if extras_of[name] else ''}=={versions[name]}"
            for name in sorted(extras_of)]



def pinned_bentofile(bentofile: Path) -> dict[str, Any]:
    """bentofile.yaml with its Python packages replaced by their exact pins from the lock beside it."""
    config = yaml.safe_load(bentofile.read_text()) or {}
    python = config.get("python") or {}
    config["python"] = {**python, "lock_packages": False,
                        "packages": pinned_packages(list(python.get("packages") or []), bentofile.parent / LOCK_FILE)}
    return config



def build_bento(model_tag: str, bentofile: Path) -> str:
    """`bentoml build` in a subprocess, pinned to `model_tag`, its packages pinned from the lock; return the
    Bento's tag."""
    env = {**os.environ, MODEL_TAG_ENV: model_tag}
    venv_bin = str(Path(sys.executable).parent)  # `bentoml build` calls the uv found on PATH
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    with tempfile.TemporaryDirectory() as folder:
        pinned = Path(folder) / "bentofile.yaml"
        pinned.write_text(yaml.safe_dump(pinned_bentofile(bentofile), sort_keys=False))
        result = subprocess.run(
            [os.path.join(venv_bin, "bentoml"), "build", "-f", str(pinned), "--output", "tag",
             str(bentofile.parent)],
            env=env, capture_output=True, text=True,
        )
    if result.returncode != 0:
        raise MlopsError(f"bentoml build failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
    for line in result.stdout.splitlines():
        if line.startswith("__tag__:"):
            return line.removeprefix("__tag__:").strip()
    raise MlopsError(f"bentoml build printed no tag: {result.stdout.strip()[-200:]}")



def build_digest(bentofile: Path, settings: Settings) -> str:
    """What a Bento is built from besides its model: bentofile.yaml, the code it includes, its packages' pins
    from the lock, the serve settings.

    params.yaml travels whole in the Bento, but only its `serve:` section
    changes how the service behaves, so a gate threshold does not count.
    """
    digest = hashlib.sha256(bentofile.read_bytes())
    root = bentofile.resolve().parent
    for pattern in sorted((yaml.safe_load(bentofile.read_text()) or {}).get("include") or []):
        for path in sorted(root.glob(pattern)):
            if path.is_file() and path.name != "params.yaml":
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    digest.update("\n".join(pinned_bentofile(bentofile)["python"]["packages"]).encode())
    digest.update(json.dumps(settings.serve.model_dump(), sort_keys=True).encode())
    return digest.hexdigest()



def candidate_of(model_tag: str, bentofile: Path, settings: Settings) -> dict[str, Any]:
    """A stored model as a registry entry: its newest Bento built from the current sources, else a new build."""
    import bentoml  # BentoML's import costs seconds: only a command that needs the store pays it

    path = registry.model_path(model_tag)
    model = bentoml.models.get(model_tag)
    tag = str(model.tag)
    bentos = sorted((b for b in bentoml.bentos.list() if any(str(m.tag) == tag for m in b.info.all_models)),
                    key=lambda b: b.info.creation_time, reverse=True)
    bento = str(bentos[0].tag) if bentos else build_bento(tag, bentofile)
    return {"model": tag, "bento": bento, "digest": registry.model_digest(path),
            "metrics": model.info.metadata.get("metrics", {}), "build": build_digest(bentofile, settings),
            "serve_variant": served_variant(path, "auto"),
            # a refit on every label: the judged candidate's digest, which the gate then knows as this model
            **({"refit_of": model.info.metadata["refit_of"]} if model.info.metadata.get("refit_of") else {})}
