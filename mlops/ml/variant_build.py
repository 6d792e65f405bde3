"""Building one serving variant of a fine-tuned model: the conversion the optimize stage runs for each variant,
and the refit stage for the refit's weights, so both build a variant the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlops.ml.onnx_export import ONNX_FILE, export_onnx, fuse_transformer_graph, quantize_onnx_int8
from mlops.ml.variants import files_size_mb, torch_int8_size_mb


def build_onnx_fp32(model_dir: Path, out_dir: Path) -> dict[str, Any]:
    """The model exported to ONNX under `out_dir`, its graph fused where the exporter knows the architecture;
    its entry in variants.json."""
    path = export_onnx(model_dir, out_dir)
    fusion = fuse_transformer_graph(path, model_dir)
    return {"path": out_dir.name, "size_mb": files_size_mb(out_dir), "model_mb": files_size_mb(path),
            "fusion": fusion}


def build_variant(name: str, model_dir: Path, out_dir: Path, scratch: Path, prefix: str = "") -> dict[str, Any]:
    """Write one variant of the model in `model_dir` under `out_dir` (as `<prefix><name>`); its entry in
    variants.json."""
    if name == "torch_int8":
        return {"path": None, "size_mb": torch_int8_size_mb(model_dir), "note": "quantised by torch at load time"}
    if name == "onnx_fp32":
        return build_onnx_fp32(model_dir, out_dir / f"{prefix}{name}")
    fp32 = out_dir / f"{prefix}onnx_fp32" / ONNX_FILE
    if not fp32.is_file():  # onnx_int8 alone: quantise a throw-away fp32 export
        fp32 = scratch / f"{prefix}onnx_fp32" / ONNX_FILE
        build_onnx_fp32(model_dir, fp32.parent)
    path = quantize_onnx_int8(fp32, out_dir / f"{prefix}{name}")
    return {"path": path.parent.name, "size_mb": files_size_mb(path.parent), "model_mb": files_size_mb(path)}
