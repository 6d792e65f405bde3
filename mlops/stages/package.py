"""Stage `package`: store an accepted model and its built Bento as the candidate; never the champion.

Only a model the gate accepted gets here; a rejected one is reported and goes
no further. The model enters the BentoML store with its lineage and model card,
a Bento is built from bentofile.yaml around exactly that model, and the
registry records the pair as its candidate. Making it champion is a separate,
explicit step (`mlops promote`, mlops/serving/promotion.py) that first starts
the Bento and checks it: a DVC stage that promoted would let `dvc exp run`
replace the served model. When the champion is already this model but what
its Bento is built from changed (the service code, bentofile.yaml, the
`serve:` params), a new Bento is built around the same model and becomes the
candidate, so a serving change reaches `make serve` without retraining.
The serving variant the gate chose (`serve_variant`: an ONNX directory the
optimize stage wrote, torch fp32/int8, or a distilled student's) is stored
inside the model with a `serving.json` naming it, and is part of what makes two stored models the same.
When the refit stage refit the accepted candidate on every label and its
checks passed (its record, `--refit`), the refit's weights and serving variant
are stored instead, their digest naming them and `refit_of` the judged one.
The Bento's Python packages are exact pins from requirements.lock: the ones
bentofile.yaml names and everything they depend on, so the image runs what
the gate measured, and building still needs no index.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mlops.core import registry
from mlops.core.environment import MODEL_TAG_ENV
from mlops.core.errors import MlopsError
from mlops.core.io import read_json, read_table, write_json, write_table
from mlops.core.stage_io import StageIO
from mlops.ml.variants import SERVING_FILE, served_variant, variant_files

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
    import yaml

    config = yaml.safe_load(bentofile.read_text()) or {}
    python = config.get("python") or {}
    config["python"] = {**python, "lock_packages": False,
                        "packages": pinned_packages(list(python.get("packages") or []), bentofile.parent / LOCK_FILE)}
    return config


def build_bento(model_tag: str, bentofile: Path) -> str:
    """`bentoml build` in a subprocess, pinned to `model_tag`, its packages pinned from the lock; return the
    Bento's tag."""
    import yaml

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
    import yaml

    digest = hashlib.sha256(bentofile.read_bytes())
    root = bentofile.resolve().parent
    for pattern in sorted((yaml.safe_load(bentofile.read_text()) or {}).get("include") or []):
        for path in sorted(root.glob(pattern)):
            if path.is_file() and path.name != "params.yaml":
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    digest.update("\n".join(pinned_bentofile(bentofile)["python"]["packages"]).encode())
    digest.update(json.dumps(settings.serve.model_dump(), sort_keys=True).encode())
    return digest.hexdigest()


REFERENCE_COLUMNS = ["text", "label", "prediction", "confidence", "embedding"]


def stage_variant(variant: str, optimized_dir: Path | None, staged: Path) -> None:
    """The serving variant's files (an ONNX variant's directory, a distilled student's weights) into the staged
    model, and serving.json naming it: the service loads what the gate chose, from inside the stored model."""
    for needed in variant_files(variant):
        source = Path(optimized_dir or "") / needed
        if optimized_dir is None or not source.is_file():
            raise MlopsError(f"package: the gate chose {variant} but {source.parent} has no {source.name} (run "
                             "`mlops optimize`)")
        shutil.copytree(source.parent, staged / Path(needed).parent)
    write_json({"variant": variant}, staged / SERVING_FILE)


def stored_variant(entry: dict[str, Any]) -> str:
    """The serving variant of a registry entry's stored model (entries written before variants do not say)."""
    if entry.get("serve_variant"):
        return entry["serve_variant"]
    try:
        return served_variant(registry.model_path(entry["model"]), "auto")
    except MlopsError:
        return "fp32"


def packaged_model(decision: dict[str, Any], model_dir: Path, optimized_dir: Path | None,
                   refit: dict[str, Any] | None) -> tuple[Path, Path | None, str, dict[str, Any]]:
    """What to store: the refit stage's model when its record packaged it (every label, its checks passed), else
    the judged candidate: (weights, variants folder, digest, what the registry entry says of a refit)."""
    if refit and refit.get("packaged") == "refit":
        for key in ("model_dir", "optimized_dir", "digest"):
            if not refit.get(key):
                raise MlopsError(f"package: the refit record packages the refit but names no {key}")
        return (Path(refit["model_dir"]), Path(refit["optimized_dir"]), refit["digest"],
                {"refit_of": decision["candidate_digest"]})
    return model_dir, optimized_dir, decision["candidate_digest"], {}


def package(settings: Settings, decision: dict[str, Any], model_dir: Path, metrics: dict[str, Any],
            bentofile: Path, card: Path, reference: Path | None = None,
            optimized_dir: Path | None = None, refit: dict[str, Any] | None = None) -> dict[str, Any]:
    if not decision["accepted"]:  # what to do next travels on, so `mlops promote` can say it
        return {"status": "rejected", "reasons": decision["reasons"], "next_step": decision.get("next_step")}
    model_dir, optimized_dir, digest, refit_of = packaged_model(decision, model_dir, optimized_dir, refit)
    current = registry.champion()
    build = build_digest(bentofile, settings)
    variant = decision.get("serve_variant", "fp32")
    if current and current.get("digest") == digest and stored_variant(current) == variant:
        if current.get("build") == build:
            return {"status": "unchanged", "model": current["model"], "bento": current["bento"]}
        bento_tag = build_bento(current["model"], bentofile)
        entry = {**{k: v for k, v in current.items() if k not in ("promoted_at", "promoted_by")},
                 "bento": bento_tag, "build": build}
        registry.set_candidate(entry)
        return {"status": "candidate", "rebuilt": True, "reused": True, **entry}
    headline = {k: metrics[k] for k in ("accuracy", "macro_f1", "ece", "size_mb")}
    stored = registry.find_stored(settings.serve.name, digest, build, variant)
    if stored is not None:  # seen before: the same weights are not stored twice
        entry = {"model": stored["model"], "bento": stored["bento"] or build_bento(stored["model"], bentofile),
                 "digest": digest, "metrics": headline, "build": build, "serve_variant": variant, **refit_of}
        registry.set_candidate(entry)
        return {"status": "candidate", "rebuilt": stored["bento"] is None, "reused": True, **entry}
    lineage = decision["lineage"]
    metadata = {  # BentoML metadata takes no None values: nested documents go in as JSON strings
        "digest": digest, "serve_variant": variant, "metrics": headline,
        "gate": decision["basis"],
        "git_commit": lineage["git_commit"], "data": lineage["data"], "params": json.dumps(lineage["params"]),
        "decision": json.dumps({k: decision[k] for k in ("accepted", "basis", "checks", "comparison")}),
        # the gate judged `refit_of`; these weights are its refit on every label (mlops/stages/refit.py)
        **({"refit": json.dumps({k: refit.get(k) for k in ("why", "checks", "figures", "training")}), **refit_of}
           if refit_of else {}),
    }
    # The model card and monitoring's reference (the scored validation split,
    # embeddings included) travel inside the stored model: traffic served by
    # this version is compared with this version's own view of its data.
    with tempfile.TemporaryDirectory() as staging:
        staged = Path(staging) / "model"
        shutil.copytree(model_dir, staged)
        shutil.copy2(card, staged / "MODEL_CARD.md")
        stage_variant(variant, optimized_dir, staged)
        if reference is not None:
            scored = read_table(reference)
            write_table(scored[[c for c in REFERENCE_COLUMNS if c in scored.columns]], staged / registry.REFERENCE_FILE)
        model_tag = registry.register_model(settings.serve.name, staged, metadata)
    bento_tag = build_bento(model_tag, bentofile)
    entry = {"model": model_tag, "bento": bento_tag, "digest": digest, "metrics": headline,
             "build": build, "serve_variant": variant, **refit_of}
    registry.set_candidate(entry)
    return {"status": "candidate", "rebuilt": False, "reused": False, **entry}


class PackageIO(StageIO):
    """The decision, the candidate and what is stored with it in; the package result out (dvc.yaml's `package`)."""

    stage: ClassVar[str] = "package"
    decision: Path
    model: Path
    metrics: Path
    bentofile: Path
    card: Path
    out: Path
    reference: Path | None = None
    optimized_dir: Path | None = None
    refit: Path | None = None


def run(settings: Settings, io: PackageIO) -> dict[str, Any]:
    refit = read_json(io.refit) if io.refit is not None and Path(io.refit).is_file() else None
    out = io.out
    result = package(settings, read_json(io.decision), io.model, read_json(io.metrics), io.bentofile, io.card,
                     io.reference, io.optimized_dir, refit)
    write_json(result, out)
    if result["status"] == "rejected":
        print(f"package: SKIPPED, the gate rejected the model: {'; '.join(result['reasons'])}"
              + (f"; next step: {result['next_step']}" if result.get("next_step") else ""))
    else:
        print(f"package: {result['status']}: model {result['model']} (serves {result.get('serve_variant', 'fp32')}"
              + (", refit on every label" if result.get("refit_of") else "") + "), "
              f"bento {result['bento']} -> {out}"
              + ("; `mlops promote` makes it champion after checking the running Bento"
                 if result["status"] == "candidate" else ""))
    return result


def candidate_of(model_tag: str, bentofile: Path, settings: Settings) -> dict[str, Any]:
    """A stored model as a registry entry: its newest Bento built from the current sources, else a new build."""
    import bentoml

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
