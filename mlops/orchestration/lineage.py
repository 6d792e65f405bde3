"""What a lifecycle task tells an OpenLineage backend (Marquez, DataHub, Atlan) it read and wrote.

Airflow's OpenLineage provider asks each task for its lineage through the
operator's public methods (`get_openlineage_facets_on_start` and
`..._on_complete`): a stage task answers with its deps and outs from
dvc.yaml, each a dataset named by its DVC path, versioned by the hash
dvc.lock records for it; the promote task answers with the model it made
champion. The provider sends nothing until the user configures a transport
(`[openlineage] transport`, OPENLINEAGE_URL or an openlineage.yml), so without
one these methods are never called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mlops.core.environment import environment
from mlops.core.pipeline import load_stages, stage_path


def namespace(project: Path | str) -> str:
    """The datasets' namespace: MLOPS_LINEAGE_NAMESPACE, else `dvc://<project folder name>`; every task of one
    project names the same file alike, so the backend joins one task's output to the next one's input."""

    return environment().lineage_namespace or f"dvc://{Path(project).resolve().name}"


def locked_hashes(project: Path | str, stage: str) -> dict[str, str]:
    """Path -> the hash dvc.lock records for it in `stage` (md5, a directory's ending in .dir); {} before a run."""
    lock = Path(project) / "dvc.lock"
    try:
        entries = ((yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages") or {}).get(stage) or {}
    except (OSError, yaml.YAMLError):
        return {}
    hashes = {}
    for kind in ("deps", "outs"):
        for entry in entries.get(kind) or []:
            digest = entry.get("md5") or entry.get("etag") or entry.get("checksum")
            if entry.get("path") and digest:
                hashes[str(entry["path"]).rstrip("/")] = str(digest)
    return hashes


def dataset(space: str, name: str, version: str | None, extra: dict[str, Any] | None = None) -> Any:
    """An OpenLineage dataset, its version facet the DVC hash (or the model's digest) when there is one."""
    from openlineage.client.event_v2 import Dataset
    from openlineage.client.facet_v2 import dataset_version_dataset

    facets: dict[str, Any] = dict(extra or {})
    if version:
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=version)
    return Dataset(namespace=space, name=name, facets=facets)


def stage_lineage(project: Path | str) -> dict[str, tuple[list[str], list[str]]]:
    """Stage -> (deps, outs) as dvc.yaml resolves them with params.yaml: the paths DVC itself hashes."""

    return {stage.name: (list(stage.deps), list(stage.outs)) for stage in load_stages(Path(project))}


def stage_datasets(project: Path | str, stage: str) -> Any:
    """The stage's OperatorLineage: its deps as inputs and its outs as outputs, hashed as dvc.lock says."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    deps, outs = stage_lineage(project).get(stage, ([], []))
    hashes, space = locked_hashes(project, stage), namespace(project)
    return OperatorLineage(inputs=[dataset(space, path, hashes.get(path)) for path in deps],
                           outputs=[dataset(space, path, hashes.get(path)) for path in outs])


MODEL_NAMESPACE = "bentoml"


def promotion_datasets(project: Path | str, bentoml_home: Path | str) -> Any:
    """The promote task's OperatorLineage: the candidate package built (input) and the champion it made (output:
    the BentoML model, versioned by its digest, and its Bento), read from the registry in `bentoml_home`."""
    import json

    from airflow.providers.openlineage.extractors import OperatorLineage


    space = namespace(project)
    package = str(stage_path(project, "package", "out"))
    inputs = [dataset(space, package, locked_hashes(project, "package").get(package))]
    registry = Path(bentoml_home) / "registry.json"
    try:
        current = (json.loads(registry.read_text(encoding="utf-8")) or {}).get("champion") or {}
    except (OSError, ValueError):
        current = {}  # no registry yet: the lineage names the package only
    outputs = []
    if current.get("model"):
        outputs.append(dataset(MODEL_NAMESPACE, str(current["model"]), current.get("digest")))
    if current.get("bento"):
        outputs.append(dataset(MODEL_NAMESPACE, str(current["bento"]), None))
    return OperatorLineage(inputs=inputs, outputs=outputs)
