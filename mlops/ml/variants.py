"""Serving variants of one fine-tuned model, by name: how each is loaded.

`fp32` is the model the train stage wrote, run by torch; `torch_int8` is the
same weights dynamically quantised by torch at load time (nothing stored);
`onnx_fp32` and `onnx_int8` are directories the optimize stage writes, each
loadable on its own (model.onnx, tokenizer, label map). A distilled student
(mlops/stages/distill.py) is the same family again under a `student_` prefix:
`student_fp32` is its torch directory (safetensors, tokenizer, label map),
`student_torch_int8` those weights quantised at load time, `student_onnx_*` its
ONNX directories. Every runtime has the interface of `Classifier`, so the
stages and the service do not care which.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlops.core.errors import MlopsError
from mlops.core.io import read_json
from mlops.ml.model import Classifier
from mlops.ml.onnx_classifier import OnnxClassifier
from mlops.ml.onnx_export import ONNX_FILE

VARIANTS = ("torch_int8", "onnx_fp32", "onnx_int8")  # what the optimize stage can produce from a model
STUDENT = "student_"  # the prefix of a distilled student's variants
STUDENT_FP32 = f"{STUDENT}fp32"  # the student's own torch directory, which its torch_int8 quantises too
SERVABLE = ("fp32", *VARIANTS, STUDENT_FP32, *(STUDENT + name for name in VARIANTS))
TORCH_PRECISION = {"fp32": "fp32", "torch_int8": "int8"}
VARIANTS_FILE = "variants.json"
SERVING_FILE = "serving.json"  # in a stored model: {"variant": <the gate's choice>}, written by package


def check_variant(name: str) -> str:
    if name not in SERVABLE:
        raise MlopsError(f"unknown model variant {name!r}: expected one of {', '.join(SERVABLE)}")
    return name


def variant_form(variant: str) -> tuple[bool, str]:
    """Whose a variant is and what form it takes: (a student's?, its name without the student prefix)."""
    check_variant(variant)
    return variant.startswith(STUDENT), variant.removeprefix(STUDENT)


def is_int8(variant: str) -> bool:
    """Whether a variant quantises its weights and activations to int8 (its answers move with its batch)."""
    return variant_form(variant)[1] in ("torch_int8", "onnx_int8")


def load_variant(model_dir: Path | str, variant: str, variants_dir: Path | str | None = None,
                 threads: int | None = None) -> Any:
    """The runtime for `variant`: torch ones from the model directory, ONNX ones from `variants_dir/<variant>/`.

    `variants_dir` defaults to the model directory (a stored model carries its
    variant files inside). An unknown name or a missing file is a one-line error.
    """
    student, form = variant_form(variant)
    if form in TORCH_PRECISION:  # the student's weights are a directory among the variants
        weights = Path(variants_dir or model_dir) / STUDENT_FP32 if student else model_dir
        device = None if form == "fp32" else "cpu"
        return Classifier.load(weights, precision=TORCH_PRECISION[form], device=device)

    return OnnxClassifier.load(Path(variants_dir or model_dir) / variant, precision=variant, threads=threads)


def variant_files(variant: str) -> tuple[str, ...]:
    """The files (relative to the optimize stage's output, or to a stored model) a variant needs: an ONNX
    variant's model.onnx (its directory is self-contained); a student's weights for the student's torch ones;
    none for the candidate's torch ones (the model itself)."""
    student, form = variant_form(variant)
    if form in TORCH_PRECISION:
        return (f"{STUDENT_FP32}/model.safetensors",) if student else ()
    return (f"{variant}/{ONNX_FILE}",)


def served_variant(model_dir: Path | str, precision: str) -> str:
    """The variant a stored model serves: the one `serve.precision` forces, else (auto) the one its serving.json
    names (the gate's choice, stored by package), else fp32 (a model stored before variants existed)."""
    if precision != "auto":
        return check_variant(precision)
    path = Path(model_dir) / SERVING_FILE
    return check_variant(read_json(path)["variant"]) if path.is_file() else "fp32"


def load_served(model_dir: Path | str, precision: str, threads: int | None = None) -> Any:
    """The runtime a stored model serves with (see `served_variant`), its variant files read from inside it."""
    return load_variant(model_dir, served_variant(model_dir, precision), threads=threads)


def read_variants(optimized_dir: Path | str) -> list[dict[str, Any]]:
    """The variants the optimize stage built (its variants.json); none when it has not run."""
    path = Path(optimized_dir) / VARIANTS_FILE
    return read_json(path)["variants"] if path.is_file() else []


def files_size_mb(path: Path) -> float:
    """Size on disk of a file, or of every file under a directory."""
    path = Path(path)
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    return round(sum(f.stat().st_size for f in files) / 2**20, 2)


def torch_int8_size_mb(model_dir: Path) -> float:
    """What torch's dynamic int8 model weighs, serialised in memory: it is never written to disk."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(Classifier.load(model_dir, device="cpu", precision="int8").model.state_dict(), buffer)
    return round(buffer.tell() / 2**20, 2)
