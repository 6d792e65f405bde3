"""Converting a fine-tuned model directory into ONNX files ONNX Runtime serves faster.

The exported graph returns the logits and the same L2-normalised mean-pooled
last-hidden-state embedding `Classifier.predict` computes, so whatever serves
(torch or ONNX Runtime) still feeds monitoring its embeddings. ONNX Runtime's
transformer fusions (attention, layer norm, GELU) are applied when they load
and agree with the plain export on a probe batch; otherwise the plain graph is
kept and the reason recorded, so an exotic architecture still converts. int8
is ONNX Runtime's dynamic quantisation of the weights: no calibration data,
and the evaluate stage measures what it costs in accuracy.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mlops.core.errors import MlopsError
from mlops.ml.model import LABEL_MAP

ONNX_FILE = "model.onnx"
INPUT_ORDER = ("input_ids", "attention_mask", "token_type_ids")  # the order of BERT's forward arguments
OUTPUTS = ("logits", "embedding")
PROBE_TEXTS = ["short", "a somewhat longer text to probe the exported graph with padding in the batch"]
OPSET = 17
FUSION_TOLERANCE = 1e-4


def build_wrapper(model: Any, input_names: list[str]) -> Any:
    """A torch module whose outputs are the logits and the pooled, normalised embedding."""
    import torch

    class LogitsAndEmbedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            inputs = dict(zip(input_names, tensors, strict=True))
            output = self.model(**inputs, output_hidden_states=True)
            mask = inputs["attention_mask"].unsqueeze(-1).to(output.hidden_states[-1].dtype)
            pooled = (output.hidden_states[-1] * mask).sum(1) / mask.sum(1).clamp(min=1)
            return output.logits, torch.nn.functional.normalize(pooled, dim=-1)

    return LogitsAndEmbedding().eval()


def copy_model_files(model_dir: Path, out_dir: Path) -> None:
    """The tokenizer, config and label map beside the ONNX file: a variant directory loads on its own."""
    for source in Path(model_dir).iterdir():
        if source.is_file() and source.suffix in (".json", ".txt", ".model") and source.name != "training_args.json":
            shutil.copy2(source, out_dir / source.name)
    if not (out_dir / LABEL_MAP).is_file():
        raise MlopsError(f"no {LABEL_MAP} in {model_dir}: not a model the train stage wrote")


def export_onnx(model_dir: Path, out_dir: Path) -> Path:
    """Export the safetensors model in `model_dir` to `out_dir/model.onnx` (fp32), tokenizer and label map beside."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if not (model_dir / "model.safetensors").is_file():
        raise MlopsError(f"no safetensors model in {model_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    # eager attention exports the plain MatMul/Softmax pattern ORT's fusion turns into one Attention op (SDPA's
    # export is not recognised and stays unfused)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, use_safetensors=True,
                                                               attn_implementation="eager").eval()
    names = [name for name in INPUT_ORDER if name in tokenizer.model_input_names]
    probe = tokenizer(PROBE_TEXTS, padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "sequence"} for name in names} | {"logits": {0: "batch"}, "embedding": {0: "batch"}}
    path = out_dir / ONNX_FILE
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow: expected, shapes stay dynamic
        torch.onnx.export(build_wrapper(model, names), tuple(probe[name] for name in names), str(path),
                          input_names=names, output_names=list(OUTPUTS), dynamic_axes=axes, opset_version=OPSET,
                          dynamo=False)
    copy_model_files(model_dir, out_dir)
    return path


def run_probe(path: Path, model_dir: Path) -> list[np.ndarray]:
    """The graph's outputs on the probe texts: what an optimised graph must reproduce."""
    import onnxruntime as ort
    from transformers import AutoTokenizer

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    wanted = {item.name for item in session.get_inputs()}
    batch = tokenizer(PROBE_TEXTS, padding=True, return_tensors="np")
    return session.run(list(OUTPUTS), {k: v.astype(np.int64) for k, v in batch.items() if k in wanted})


def fuse_transformer_graph(path: Path, model_dir: Path) -> dict[str, Any]:
    """Apply ONNX Runtime's BERT fusions in place when they load and agree with the plain graph; say what happened.

    The fusions need the head count and width, read from the model's config;
    a graph they break (or do not fit) keeps its plain form, with the reason.
    """
    from onnxruntime.transformers.optimizer import optimize_model

    config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    heads, hidden = config.get("num_attention_heads"), config.get("hidden_size")
    if not heads or not hidden:
        return {"fused": False, "reason": "no num_attention_heads/hidden_size in config.json"}
    with tempfile.TemporaryDirectory() as scratch:
        fused_path = Path(scratch) / ONNX_FILE
        try:
            fused = optimize_model(str(path), model_type="bert", num_heads=int(heads), hidden_size=int(hidden))
            fused.save_model_to_file(str(fused_path))
            before, after = run_probe(path, model_dir), run_probe(fused_path, model_dir)
        except Exception as error:  # noqa: BLE001 - any failure of an optional optimisation keeps the plain graph
            return {"fused": False, "reason": f"{type(error).__name__}: {error}".splitlines()[0][:200]}
        worst = max(float(np.abs(a - b).max()) for a, b in zip(before, after, strict=True))
        if worst > FUSION_TOLERANCE:
            return {"fused": False, "reason": f"fused graph differs by {worst:.2g} (> {FUSION_TOLERANCE})"}
        shutil.move(str(fused_path), str(path))
    return {"fused": True, "max_abs_difference": worst}


def quantize_onnx_int8(source: Path, out_dir: Path) -> Path:
    """ONNX Runtime's dynamic int8 quantisation of `source` into `out_dir/model.onnx`, model files beside it."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ONNX_FILE
    # A fused graph's contrib ops (com.microsoft domain) defeat ONNX shape inference: their outputs are float
    quantize_dynamic(Path(source), path, weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    for item in Path(source).parent.iterdir():
        if item.is_file() and item.name != ONNX_FILE:
            shutil.copy2(item, out_dir / item.name)
    return path
