from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from skinseg.losses import BceDiceLoss, BiRefNetLoss, dice_loss
from skinseg.models import create_model
from skinseg.outputs import TrainingOutputs

from .conftest import TINY_NETS as TINY


def test_dice_is_zero_for_a_confident_perfect_prediction():
    target = (torch.rand(2, 1, 16, 16) > 0.5).float()
    logits = (target * 2 - 1) * 50
    assert dice_loss(logits, target) < 1e-3


def test_dice_matches_the_original_formula():
    logits = torch.randn(3, 1, 8, 8)
    target = torch.rand(3, 1, 8, 8)
    p = torch.sigmoid(logits)
    expected = 1 - (2 * (p * target).sum((2, 3)) + 1) / (p.sum((2, 3)) + target.sum((2, 3)) + 1)
    torch.testing.assert_close(dice_loss(logits, target), expected.mean())


def test_weights_and_side_outputs_are_summed():
    target = torch.rand(2, 1, 8, 8)
    outputs = tuple(torch.randn(2, 1, 8, 8) for _ in range(7))
    loss = BceDiceLoss(bce_weight=1 / 3, dice_weight=2 / 3)
    expected = sum(loss.single(o, target) for o in outputs)
    torch.testing.assert_close(loss(outputs, target), expected)
    weighted = BceDiceLoss(1 / 3, 2 / 3, output_weights=[2.0, 0.5])
    expected = 2 * loss.single(outputs[0], target) + 0.5 * sum(loss.single(o, target) for o in outputs[1:])
    torch.testing.assert_close(weighted(outputs, target), expected)


def test_loss_is_float32_and_finite_from_bf16_logits():
    logits = (torch.randn(2, 1, 8, 8) * 30).bfloat16()
    loss = BceDiceLoss()(logits, torch.rand(2, 1, 8, 8))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_invalid_weights_are_refused():
    with pytest.raises(ValueError, match="loss weights"):
        BceDiceLoss(bce_weight=0, dice_weight=0)


def test_outputs_of_another_size_name_the_fix():
    with pytest.raises(ValueError, match="needs its own loss"):
        BceDiceLoss()((torch.randn(2, 1, 8, 8), torch.randn(2, 1, 2, 2)), torch.rand(2, 1, 8, 8))


def birefnet_training_outputs(size: int = 64) -> TrainingOutputs:
    torch.manual_seed(0)
    return create_model("birefnet_lite", **TINY["birefnet_lite"]).train()(torch.rand(2, 3, size, size))


def test_birefnet_loss_terms():
    outputs, target = birefnet_training_outputs(), (torch.rand(2, 1, 64, 64) > 0.5).float()
    pixel = BceDiceLoss(0.5, 0.5)

    def resized(x):
        return F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=True)

    assert len(outputs.sides) == len(outputs.gradient_predictions) == len(outputs.gradient_labels) == 3
    final = pixel.single(outputs.logits, target)
    sides = sum(pixel.single(resized(side), target) for side in outputs.sides)
    gradients = sum(
        F.binary_cross_entropy(torch.sigmoid(resized(prediction)), torch.sigmoid(label))
        for prediction, label in zip(outputs.gradient_predictions, outputs.gradient_labels, strict=True)
    )
    torch.testing.assert_close(BiRefNetLoss(side_weight=0, gradient_weight=0)(outputs, target), final)
    torch.testing.assert_close(BiRefNetLoss(side_weight=0.5, gradient_weight=2)(outputs, target),
                               final + 0.5 * sides + 2 * gradients)
    torch.testing.assert_close(BiRefNetLoss()(outputs.logits, target), final)  # validation: the final logits


def test_birefnet_loss_trains_the_side_and_gradient_heads():
    torch.manual_seed(0)
    model = create_model("birefnet_lite", **TINY["birefnet_lite"]).train()
    BiRefNetLoss()(model(torch.rand(2, 3, 64, 64)), torch.rand(2, 1, 64, 64)).backward()
    for head in ("conv_ms_spvn_4", "gdt_convs_pred_3", "gdt_convs_attn_2", "conv_out1"):
        weight = next(p for name, p in model.decoder.named_parameters() if name.startswith(head))
        assert weight.grad.abs().sum() > 0, head
    with pytest.raises(ValueError, match="expects BiRefNetLite's TrainingOutputs"):
        BiRefNetLoss()(TrainingOutputs(torch.randn(2, 1, 8, 8), (torch.randn(2, 1, 8, 8),)), torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match=">= 0"):
        BiRefNetLoss(side_weight=-1)
