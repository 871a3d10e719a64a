from __future__ import annotations

import pytest
import torch

from skinseg.losses import BceDiceLoss, dice_loss


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
