"""The training-curves plot: train and validation loss, and validation macro-F1, by step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlops.core.io import atomic_path


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Plot a Trainer's log history into a PNG at `path` (written whole or not at all)."""
    # matplotlib is imported here: only a run that plots needs it, and its backend must be set first
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], h["eval_macro_f1"], h["eval_loss"]) for h in history if "eval_macro_f1" in h]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    if losses:
        left.plot(*zip(*losses, strict=True), label="train loss")
    if evals:
        steps, f1, eval_loss = zip(*evals, strict=True)
        left.plot(steps, eval_loss, marker="o", label="validation loss")
        right.plot(steps, f1, marker="o", color="tab:green")
    left.set(xlabel="step", title="loss")
    left.legend()
    right.set(xlabel="step", title="validation macro-F1", ylim=(0, 1.02))
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
