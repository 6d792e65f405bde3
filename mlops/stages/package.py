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

import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mlops.core import registry
from mlops.core.errors import MlopsError
from mlops.core.io import read_json, read_table, write_json, write_table
from mlops.core.records import GateDecision, PackageResult, entry_fields
from mlops.core.stage_io import StageIO
from mlops.ml.bento_build import build_bento, build_digest
from mlops.ml.variants import SERVING_FILE, served_variant, variant_files

if TYPE_CHECKING:
    from mlops.core.settings import Settings


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


def packaged_model(decision: GateDecision, model_dir: Path, optimized_dir: Path | None,
                   refit: dict[str, Any] | None) -> tuple[Path, Path | None, str, dict[str, Any]]:
    """What to store: the refit stage's model when its record packaged it (every label, its checks passed), else
    the judged candidate: (weights, variants folder, digest, what the registry entry says of a refit)."""
    if refit and refit.get("packaged") == "refit":
        for key in ("model_dir", "optimized_dir", "digest"):
            if not refit.get(key):
                raise MlopsError(f"package: the refit record packages the refit but names no {key}")
        return (Path(refit["model_dir"]), Path(refit["optimized_dir"]), refit["digest"],
                {"refit_of": judged_digest(decision)})
    return model_dir, optimized_dir, judged_digest(decision), {}


def judged_digest(decision: GateDecision) -> str:
    """The digest of the candidate the gate judged (an accepted decision always names it)."""
    if not decision.candidate_digest:
        raise MlopsError("package: the gate's decision names no candidate_digest: run the gate stage again")
    return decision.candidate_digest


def package(settings: Settings, decision: GateDecision, model_dir: Path, metrics: dict[str, Any],
            bentofile: Path, card: Path, reference: Path | None = None,
            optimized_dir: Path | None = None, refit: dict[str, Any] | None = None) -> PackageResult:
    if not decision.accepted:  # what to do next travels on, so `mlops promote` can say it
        return PackageResult(status="rejected", reasons=decision.reasons, next_step=decision.next_step)
    model_dir, optimized_dir, digest, refit_of = packaged_model(decision, model_dir, optimized_dir, refit)
    current = registry.champion()
    build = build_digest(bentofile, settings)
    variant = decision.serve_variant
    if current and current.get("digest") == digest and stored_variant(current) == variant:
        if current.get("build") == build:
            return PackageResult(status="unchanged", model=current["model"], bento=current["bento"])
        bento_tag = build_bento(current["model"], bentofile)
        entry = {**{k: v for k, v in current.items() if k not in ("promoted_at", "promoted_by")},
                 "bento": bento_tag, "build": build}
        registry.set_candidate(entry)
        return PackageResult(status="candidate", rebuilt=True, reused=True, **entry_fields(entry))
    headline = {k: metrics[k] for k in ("accuracy", "macro_f1", "ece", "size_mb")}
    stored = registry.find_stored(settings.serve.name, digest, build, variant)
    if stored is not None:  # seen before: the same weights are not stored twice
        entry = {"model": stored["model"], "bento": stored["bento"] or build_bento(stored["model"], bentofile),
                 "digest": digest, "metrics": headline, "build": build, "serve_variant": variant, **refit_of}
        registry.set_candidate(entry)
        return PackageResult(status="candidate", rebuilt=stored["bento"] is None, reused=True, **entry)
    if decision.lineage is None:
        raise MlopsError("package: the gate's decision has no lineage: run the gate stage again")
    lineage = decision.lineage
    metadata = {  # BentoML metadata takes no None values: nested documents go in as JSON strings
        "digest": digest, "serve_variant": variant, "metrics": headline,
        "gate": decision.basis,
        "git_commit": lineage["git_commit"], "data": lineage["data"], "params": json.dumps(lineage["params"]),
        "decision": json.dumps(decision.model_dump(mode="json", include={"accepted", "basis", "checks", "comparison"})),
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
    return PackageResult(status="candidate", rebuilt=False, reused=False, **entry)


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


def run(settings: Settings, io: PackageIO) -> PackageResult:
    refit = read_json(io.refit) if io.refit is not None and Path(io.refit).is_file() else None
    out = io.out
    result = package(settings, GateDecision.read(io.decision), io.model, read_json(io.metrics), io.bentofile,
                     io.card, io.reference, io.optimized_dir, refit)
    result.write(out)
    if result.status == "rejected":
        print(f"package: SKIPPED, the gate rejected the model: {'; '.join(result.reasons or [])}"
              + (f"; next step: {result.next_step}" if result.next_step else ""))
    else:
        print(f"package: {result.status}: model {result.model} (serves {result.serve_variant or 'fp32'}"
              + (", refit on every label" if result.refit_of else "") + "), "
              f"bento {result.bento} -> {out}"
              + ("; `mlops promote` makes it champion after checking the running Bento"
                 if result.status == "candidate" else ""))
    return result


