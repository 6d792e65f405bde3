"""Running an exported ONNX classifier with ONNX Runtime, behind the same interface as `Classifier`.

Stages, the service and monitoring call `labels`, `max_length`, `predict` and
`predict_proba`, whatever runs the model: an ONNX variant is a drop-in. Texts
are tokenised in one call, sorted by length and cut into micro-batches by a
token budget, each padded only to its own longest text, as the torch path does
(`TokenisedPredict` in mlops/ml/model.py); the graph returns the logits and the
pooled, normalised embedding (mlops/ml/onnx_export.py), so answers carry the
embeddings monitoring compares.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlops.core.errors import MlopsError
from mlops.ml.model import TokenisedPredict, read_label_map
from mlops.ml.onnx_export import ONNX_FILE, OUTPUTS
from mlops.ml.text_repairs import load_tokenizer


def pick_providers() -> list[str]:
    """CUDA first when this onnxruntime build has it, always the CPU (it runs what CUDA does not)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


@dataclass
class OnnxClassifier(TokenisedPredict):
    """A tokenizer, an ONNX Runtime session and the label names, ready for inference."""

    tokenizer: object
    session: object
    labels: list[str]
    max_length: int
    precision: str = "onnx_fp32"
    device: str = "cpu"
    tokenizer_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def load(cls, path: Path | str, precision: str = "onnx_fp32", max_length: int | None = None,
             threads: int | None = None) -> OnnxClassifier:
        """Load a variant directory (model.onnx, tokenizer, label map); `threads`: ORT intra-op threads."""
        import onnxruntime as ort

        path = Path(path)
        if not (path / ONNX_FILE).is_file():
            raise MlopsError(f"{precision}: no {ONNX_FILE} in {path} (run `mlops optimize` with it in "
                             "optimize.variants)")
        label_map = read_label_map(path)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        providers = pick_providers()
        session = ort.InferenceSession(str(path / ONNX_FILE), sess_options=options, providers=providers)
        device = "cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        return cls(load_tokenizer(path, label_map), session, label_map["labels"],
                   max_length or int(label_map["max_length"]), precision, device)

    def run_batch(self, features: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """One session run of a padded micro-batch: probabilities and the graph's pooled, normalised embedding."""
        wanted = {item.name for item in self.session.get_inputs()}
        logits, pooled = self.session.run(list(OUTPUTS), {k: v for k, v in features.items() if k in wanted})
        return softmax(logits.astype(np.float32)), np.asarray(pooled, dtype=np.float32)
