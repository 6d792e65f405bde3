"""Pruning and the distillation loss (mlops/ml/distillation.py)."""

from __future__ import annotations

import pytest
import torch

from mlops.core.errors import MlopsError
from mlops.ml.distillation import distillation_loss, encoder_layers, kept_layers, prune_layers


@pytest.fixture
def four_layer_classifier():
    """A 4-layer, 32-wide BERT classifier with random weights: enough layers to prune some."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(3)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32, num_labels=3)
    return BertForSequenceClassification(config).eval()


@pytest.mark.parametrize(("total", "strategy", "keep", "expected"), [
    (12, "every_other", 3, [0, 2, 4, 6, 8, 10]),  # keep_layers is for first_k only
    (6, "every_other", 3, [0, 2, 4]),
    (12, "first_k", 4, [0, 1, 2, 3]),
    (2, "first_k", 1, [0]),
])
def test_kept_layers_follow_the_strategy(total, strategy, keep, expected):
    assert kept_layers(total, strategy, keep) == expected


def test_keeping_every_layer_fails_naming_the_param():
    with pytest.raises(MlopsError, match=r"distill\.keep_layers: 6 keeps every layer of a 6-layer model"):
        kept_layers(6, "first_k", 6)
    with pytest.raises(MlopsError, match=r"distill\.layers: every_other keeps the only layer of a 1-layer model"):
        kept_layers(1, "every_other", 3)


def test_pruning_keeps_the_requested_layers_and_reloads_at_that_depth(four_layer_classifier, tmp_path):
    from transformers import AutoModelForSequenceClassification

    # given a 4-layer teacher
    teacher = four_layer_classifier
    originals = [layer.attention.self.query.weight.clone() for layer in encoder_layers(teacher)]
    # when it is pruned to layers 1 and 3
    student = prune_layers(teacher, [1, 3])
    # then exactly those layers remain, in order, and the config says 2 layers
    kept = encoder_layers(student)
    assert len(kept) == 2 and student.config.num_hidden_layers == 2
    assert torch.equal(kept[0].attention.self.query.weight, originals[1])
    assert torch.equal(kept[1].attention.self.query.weight, originals[3])
    # and saved and loaded again (safetensors) it is the same 2-layer model
    student.save_pretrained(tmp_path, safe_serialization=True)
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path, use_safetensors=True).eval()
    ids = torch.tensor([[1, 5, 7, 9, 2]])
    assert len(encoder_layers(again)) == 2
    assert torch.allclose(again(input_ids=ids).logits, student(input_ids=ids).logits, atol=1e-6)


def test_pruning_to_layers_the_model_lacks_is_refused(four_layer_classifier):
    with pytest.raises(MlopsError, match=r"layers \[0, 7\] are not a selection of the model's 4 layers"):
        prune_layers(four_layer_classifier, [0, 7])


def test_loss_is_cross_entropy_at_alpha_0_and_zero_soft_loss_when_the_student_matches():
    torch.manual_seed(0)
    logits, labels = torch.randn(8, 3), torch.randint(0, 3, (8,))
    hard = torch.nn.functional.cross_entropy(logits, labels)
    assert torch.allclose(distillation_loss(logits, torch.randn(8, 3), labels, 2.0, 0.0), hard)
    assert distillation_loss(logits, logits.clone(), labels, 4.0, 1.0).abs() < 1e-6  # student == teacher
    # a student far from the teacher pays the soft loss, scaled by T^2
    far = distillation_loss(-logits, logits, labels, 2.0, 1.0)
    assert far > 0.1
