"""Structured pruning and knowledge distillation: how a smaller student is made from a fine-tuned teacher.

Pruning drops whole encoder layers (the student keeps every other one, or the
first k), so the student is the teacher's own architecture, shallower, and
every runtime that loads the teacher loads it too. Distillation then trains
the student on the teacher's temperature-softened probabilities mixed with
the true labels: the soft targets carry what the teacher learnt about which
wrong classes are near, which a few epochs on hard labels alone would not
recover after half the layers are gone. The loop is the Hugging Face Trainer's
(only the loss differs), so determinism, checkpoints and resume are train's.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - torch's own idiom

from mlops.adapters.transformers_trainer import LifecycleTrainer
from mlops.core.errors import MlopsError

LAYER_COUNT_FIELDS = ("num_hidden_layers", "n_layers")  # BERT-like configs; DistilBERT's


def kept_layers(total: int, strategy: str, keep: int) -> list[int]:
    """The indices of the encoder layers the student keeps: every other one from the first, or the first `keep`."""
    if strategy == "every_other":
        if total < 2:
            raise MlopsError(f"distill.layers: every_other keeps the only layer of a {total}-layer model; a student "
                             "needs fewer layers than its teacher")
        return list(range(0, total, 2))
    if strategy != "first_k":
        raise MlopsError(f"distill.layers: unknown strategy {strategy!r} (every_other or first_k)")
    if keep >= total:
        raise MlopsError(f"distill.keep_layers: {keep} keeps every layer of a {total}-layer model; a student "
                         f"needs fewer (1 to {total - 1})")
    return list(range(keep))


def encoder_layers(model: Any) -> torch.nn.ModuleList:
    """The model's list of transformer layers (BERT-like: encoder.layer; DistilBERT: transformer.layer)."""
    base = model.base_model
    for owner in (getattr(base, "encoder", None), getattr(base, "transformer", None)):
        layers = getattr(owner, "layer", None)
        if isinstance(layers, torch.nn.ModuleList):
            return layers
    raise MlopsError(f"distill: cannot prune a {type(model).__name__}: it has no encoder.layer or "
                     "transformer.layer list")


def prune_layers(model: Any, keep: list[int]) -> Any:
    """Keep only the encoder layers at `keep` (in place), and say so in the config, so the student saves and
    reloads as a model of that depth."""
    layers = encoder_layers(model)
    if not keep or any(index not in range(len(layers)) for index in keep):
        raise MlopsError(f"distill: layers {keep} are not a selection of the model's {len(layers)} layers")
    owner = model.base_model.encoder if hasattr(model.base_model, "encoder") else model.base_model.transformer
    owner.layer = torch.nn.ModuleList(layers[index] for index in keep)
    for field in LAYER_COUNT_FIELDS:
        if hasattr(model.config, field):
            setattr(model.config, field, len(keep))
    return model


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      temperature: float, alpha: float) -> torch.Tensor:
    """alpha x KL(teacher || student) on temperature-softened probabilities, scaled by T^2 (so its gradients keep
    their size whatever T), plus (1 - alpha) x cross-entropy on the true labels (Hinton et al., 2015)."""
    soft = F.kl_div(F.log_softmax(student_logits / temperature, dim=-1),
                    F.log_softmax(teacher_logits / temperature, dim=-1), reduction="batchmean",
                    log_target=True) * temperature ** 2
    hard = F.cross_entropy(student_logits, labels)
    return alpha * soft + (1 - alpha) * hard


class DistillationTrainer(LifecycleTrainer):
    """train's Trainer with the distillation loss: the frozen teacher answers each batch the student sees."""

    loss_is_scaled_for_ga = False  # a per-batch mean: the Trainer divides it over gradient accumulation

    def __init__(self, *args: Any, teacher: Any, temperature: float, alpha: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.teacher = teacher.to(self.args.device).eval()
        for parameter in self.teacher.parameters():
            parameter.requires_grad_(False)
        self.temperature, self.alpha = temperature, alpha

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        labels = inputs["labels"]
        features = {key: value for key, value in inputs.items() if key != "labels"}
        outputs = model(**features)
        with torch.no_grad():
            teacher_logits = self.teacher(**features).logits
        loss = distillation_loss(outputs.logits, teacher_logits, labels, self.temperature, self.alpha)
        return (loss, outputs) if return_outputs else loss
