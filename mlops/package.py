"""Stage `package`: register an accepted model, build its Bento, make it champion.

Only a model the gate accepted gets here; a rejected one is reported and goes
no further. The model enters the BentoML store, a Bento is built from
bentofile.yaml around exactly that model, and only when both exist does the
registry switch its champion to them (atomically), so a failed build never
leaves a champion without a servable Bento.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from mlops import registry
from mlops.errors import MlopsError
from mlops.io import read_json, write_json
from mlops.settings import Settings


def git_commit() -> str:
    result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def build_bento(model_tag: str, bentofile: Path) -> str:
    """`bentoml build` in a subprocess, pinned to `model_tag`; return the Bento's tag."""
    env = {**os.environ, "MLOPS_MODEL_TAG": model_tag}
    venv_bin = str(Path(sys.executable).parent)  # `bentoml build` calls the uv found on PATH
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    result = subprocess.run(
        [os.path.join(venv_bin, "bentoml"), "build", "-f", str(bentofile), "--output", "tag", str(bentofile.parent)],
        env=env, capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise MlopsError(f"bentoml build failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
    for line in result.stdout.splitlines():
        if line.startswith("__tag__:"):
            return line.removeprefix("__tag__:").strip()
    raise MlopsError(f"bentoml build printed no tag: {result.stdout.strip()[-200:]}")


def package(settings: Settings, decision: dict[str, Any], model_dir: Path, metrics: dict[str, Any],
            bentofile: Path) -> dict[str, Any]:
    if not decision["accepted"]:
        return {"status": "rejected", "reasons": decision["reasons"]}
    current = registry.champion()
    if current and current.get("digest") == decision["candidate_digest"]:
        return {"status": "unchanged", "model": current["model"], "bento": current["bento"]}
    lineage = {"digest": decision["candidate_digest"], "metrics": {k: metrics[k] for k in ("accuracy", "macro_f1")},
               "gate": decision["basis"], "git_commit": git_commit(),
               # BentoML metadata takes no None values: keep the params as one JSON string
               "params": json.dumps(settings.model_dump(mode="json", by_alias=True), sort_keys=True)}
    model_tag = registry.register_model(settings.serve.name, model_dir, lineage)
    bento_tag = build_bento(model_tag, bentofile)
    registry.promote({"model": model_tag, "bento": bento_tag, "digest": lineage["digest"],
                      "metrics": lineage["metrics"]})
    return {"status": "promoted", "model": model_tag, "bento": bento_tag}


def run(settings: Settings, decision_path: Path, model_dir: Path, metrics_path: Path, bentofile: Path,
        out: Path) -> dict[str, Any]:
    result = package(settings, read_json(decision_path), model_dir, read_json(metrics_path), bentofile)
    write_json(result, out)
    if result["status"] == "rejected":
        print(f"package: SKIPPED, the gate rejected the model: {'; '.join(result['reasons'])}")
    else:
        print(f"package: {result['status']}: model {result['model']}, bento {result['bento']} -> {out}")
    return result
