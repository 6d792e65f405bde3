"""Text repairs a model carries with it: regex replacements its tokenizer applies before its own normaliser.

Scraped corpora carry artefacts that clean served text never has. AG News is
the known case: HTML entities whose '&' was lost in the crawl (`#39;` for an
apostrophe, `quot;`, `&lt;TXN.N&gt;` around stock tickers) and backslashes for
line breaks, in about a quarter of its rows. A BERT tokenizer turns
`Haiti #39;s` into `haiti # 39 ; s`: tokens the pretrained model never read in
that sense, spent out of `max_length`, and a model that learns them meets
`Haiti's` at serving time.

The rules (`model.text_repairs`) are put in front of the tokenizer's own
normaliser in the Rust pipeline (`tokenizers.normalizers.Replace`), and saved
in the model's label map: every loader of a model directory (train's
continuation, distill, evaluate, the ONNX variants, the service) reads them
back with `load_tokenizer`, so training, evaluation and serving tokenise the
same repaired text, at no cost per request beyond the regex pass. Transformers
5 rebuilds a BERT tokenizer's normaliser from its class on load, so the
tokenizer.json the model directory also holds does not carry them by itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlops.core.errors import MlopsError

Repairs = Sequence[tuple[str, str]]


def repair_normalizers(repairs: Repairs) -> list[Any]:
    """One `Replace` normaliser per (pattern, replacement), in order."""
    from tokenizers import Regex, normalizers

    return [normalizers.Replace(Regex(pattern), replacement) for pattern, replacement in repairs]


def apply_text_repairs(tokenizer: Any, repairs: Repairs) -> Any:
    """`tokenizer` with `repairs` run before its own normaliser (in place; returned for chaining).

    Idempotent: a tokenizer whose normaliser already starts with these rules is left as it is, so a
    tokenizer class that does restore its saved normaliser does not get them twice."""
    if not repairs:
        return tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise MlopsError(f"model.text_repairs needs a fast (Rust) tokenizer; {type(tokenizer).__name__} is not one")
    from tokenizers import normalizers

    rules = repair_normalizers(repairs)
    current = backend.normalizer
    wanted = [json.loads(rule.__getstate__()) for rule in rules]
    if current is not None:
        state = json.loads(current.__getstate__())
        if state.get("type") == "Sequence" and state.get("normalizers", [])[:len(wanted)] == wanted:
            return tokenizer
    backend.normalizer = normalizers.Sequence(rules + ([current] if current is not None else []))
    return tokenizer


def repairs_of(label_map: dict) -> list[tuple[str, str]]:
    """The repairs a model directory's label map records (none for a model saved before they existed)."""
    return [(str(pattern), str(replacement)) for pattern, replacement in label_map.get("text_repairs", [])]


def load_tokenizer(path: Path | str, label_map: dict | None = None) -> Any:
    """A model directory's tokenizer with the text repairs its label map records (`label_map`: one the caller
    has already read from `path`)."""
    from transformers import AutoTokenizer

    from mlops.ml.model import read_label_map

    label_map = read_label_map(path) if label_map is None else label_map
    return apply_text_repairs(AutoTokenizer.from_pretrained(path), repairs_of(label_map))
