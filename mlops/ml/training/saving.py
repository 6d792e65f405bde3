"""The model directory every training stage writes: self-contained, so serving, optimize and the registry load
it without the code that trained it (safetensors weights, tokenizer, label map)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.ml.model import save_label_map

if TYPE_CHECKING:
    from mlops.core.settings import Settings


def save_trained(trainer: Any, tokenizer: Any, out: Path, labels: list[str], settings: Settings,
                 *checkpoints: Path) -> None:
    """The self-contained model directory (safetensors, tokenizer, label map); the checkpoints go once it is."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    trainer.save_model(str(out))
    (out / "training_args.bin").unlink(missing_ok=True)  # a pickle; nothing here loads it
    tokenizer.save_pretrained(str(out))
    save_label_map(out, labels, settings.model.max_length, settings.model.repairs())
    for folder in checkpoints:
        shutil.rmtree(folder, ignore_errors=True)
