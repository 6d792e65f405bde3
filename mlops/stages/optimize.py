"""Stage `optimize`: convert the candidate into the variants that may serve it faster.

Serving is bounded by the model on CPU: ONNX Runtime runs the same fp32 model
about twice as fast as torch, and its dynamic int8 about four times
(../shared/stack-facts.md). Each variant listed in `optimize.variants` gets a
directory of its own under the output folder (loadable alone: model.onnx,
tokenizer, label map), and `variants.json` lists every variant with its size.
Nothing here decides whether a variant is good enough: evaluate measures each
against the fp32 model on the test split, and the gate accepts or refuses it.
`torch_int8` stores nothing (torch quantises at load time); it is listed so
that evaluate and the gate see one list. A distilled student (the distill
stage's output, when it holds a model) is listed too: its weights as
`student_fp32` and each of `optimize.variants` built from it as
`student_<variant>`, so the gate judges it like any other variant.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.core.errors import MlopsError
from mlops.core.io import write_json
from mlops.core.stage_io import StageIO
from mlops.ml.model import set_cpu_threads
from mlops.ml.variant_build import build_variant
from mlops.ml.variants import STUDENT, STUDENT_FP32, VARIANTS_FILE, files_size_mb

if TYPE_CHECKING:
    from mlops.core.settings import Settings


class OptimizeIO(StageIO):
    """The candidate to convert, where its variants go, and the distill stage's output (its student, if any)."""

    stage = "optimize"
    model: Path
    out_dir: Path
    student: Path | None = None


def build_family(settings: Settings, model_dir: Path, out_dir: Path, scratch: Path,
                 prefix: str = "") -> dict[str, dict[str, Any]]:
    """Every variant of `optimize.variants` built from one model, onnx_fp32 first (onnx_int8 quantises it), keyed
    by its listed name; a failure names its variant."""
    built = {}
    for name in sorted(settings.optimize.variants, key=("onnx_fp32", "onnx_int8", "torch_int8").index):
        listed = f"{prefix}{name}"
        try:
            built[listed] = {"name": listed, **build_variant(name, model_dir, out_dir, scratch, prefix)}
        except MlopsError as error:
            raise MlopsError(f"optimize: variant {listed}: {error}") from None
        except Exception as error:  # noqa: BLE001 - an exporter's traceback, reduced to one line naming the variant
            first = (str(error).strip().splitlines() or [""])[0][:300]
            raise MlopsError(f"optimize: variant {listed} failed: {type(error).__name__}: {first}") from None
    return {f"{prefix}{name}": built[f"{prefix}{name}"] for name in settings.optimize.variants}


def build_student(settings: Settings, student_dir: Path, out_dir: Path, scratch: Path) -> list[dict[str, Any]]:
    """The distilled student's entries: its weights copied as student_fp32, then its own optimize.variants."""
    shutil.copytree(student_dir, out_dir / STUDENT_FP32,
                    ignore=shutil.ignore_patterns("distill.json"))  # the marker is the distill stage's, not a model
    weights = out_dir / STUDENT_FP32
    entry = {"name": STUDENT_FP32, "path": STUDENT_FP32, "size_mb": files_size_mb(weights),
             "model_mb": files_size_mb(weights / "model.safetensors")}
    return [entry, *build_family(settings, weights, out_dir, scratch, STUDENT).values()]


def build_variants(settings: Settings, model_dir: Path, out_dir: Path,
                   student_dir: Path | None = None) -> dict[str, Any]:
    """Every variant of `optimize.variants`, and the student's when `student_dir` holds one."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if not (model_dir / "model.safetensors").is_file():
        raise MlopsError(f"optimize: no safetensors model in {model_dir}")
    if out_dir.exists():
        shutil.rmtree(out_dir)  # a variant dropped from the params must not linger
    out_dir.mkdir(parents=True)
    student = student_dir is not None and (Path(student_dir) / "model.safetensors").is_file()
    with tempfile.TemporaryDirectory() as scratch:
        variants = list(build_family(settings, model_dir, out_dir, Path(scratch)).values())
        if student:
            variants += build_student(settings, Path(student_dir), out_dir, Path(scratch))
    summary = {"source": str(model_dir), "fp32_size_mb": files_size_mb(model_dir / "model.safetensors"),
               "student": str(student_dir) if student else None, "variants": variants}
    write_json(summary, out_dir / VARIANTS_FILE)
    return summary


def run(settings: Settings, io: OptimizeIO) -> dict[str, Any]:
    """Build every variant of `optimize.variants` (and the student's) and say what each weighs."""
    set_cpu_threads()
    summary = build_variants(settings, io.model, io.out_dir, io.student)
    listed = ", ".join(f"{v['name']} {v['size_mb']} MB" + (" (fused)" if v.get("fusion", {}).get("fused") else "")
                       for v in summary["variants"]) or "none (optimize.variants is empty: fp32 alone)"
    print(f"optimize: fp32 {summary['fp32_size_mb']} MB; variants: {listed} -> {io.out_dir / VARIANTS_FILE}")
    return summary
