"""Segmentation losses computed from logits, so they are safe under mixed precision."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from skinseg.outputs import TrainingOutputs, resize_to


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice loss, 1 - (2·Σpy + s) / (Σp + Σy + s), per sample and channel, averaged.

    Args:
        logits: (B,C,H,W) raw scores.
        target: (B,C,H,W) in [0,1] (soft masks allowed).
        smooth: additive smoothing; 1 as in the original trainer.

    Returns:
        Scalar loss (float32).
    """
    probs = torch.sigmoid(logits.float())
    target = target.float()
    intersection = (probs * target).sum(dim=(-2, -1))
    total = probs.sum(dim=(-2, -1)) + target.sum(dim=(-2, -1))
    return (1 - (2 * intersection + smooth) / (total + smooth)).mean()


class BceDiceLoss(nn.Module):
    """Weighted BCE-with-logits + Dice, summed over the main and side outputs.

    The original trainer used 1/3 BCE + 2/3 Dice on each of U²Net's seven outputs
    (summed, equal weights) and 0.5/0.5 on DLMV's single output.

    Args:
        bce_weight: weight of the binary cross-entropy term.
        dice_weight: weight of the Dice term.
        output_weights: weight of each output (main first); None weighs every
            output 1. Outputs beyond the list get the list's last weight.
    """

    def __init__(
        self,
        bce_weight: float = 0.5,
        dice_weight: float = 0.5,
        output_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if bce_weight < 0 or dice_weight < 0 or bce_weight + dice_weight == 0:
            raise ValueError(
                f"loss weights must be >= 0 and not both 0; got bce_weight={bce_weight}, "
                f"dice_weight={dice_weight}"
            )
        self.bce_weight = bce_weight
        self.dice_weight = dice_weight
        self.output_weights = list(output_weights) if output_weights is not None else None

    def single(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of one output: logits and target (B,C,H,W)."""
        if logits.shape != target.shape:
            raise ValueError(
                f"an output of shape {tuple(logits.shape)} does not match the masks {tuple(target.shape)}; "
                "a model whose side outputs have other sizes needs its own loss (configs/model/<name>.yaml)"
            )
        bce = F.binary_cross_entropy_with_logits(logits.float(), target.float())
        return self.bce_weight * bce + self.dice_weight * dice_loss(logits, target)

    def forward(
        self, outputs: torch.Tensor | TrainingOutputs | Sequence[torch.Tensor], target: torch.Tensor
    ) -> torch.Tensor:
        """Args: outputs: logits (B,C,H,W), `TrainingOutputs` (the logits and the sides), or a
        sequence of logits (main first); target (B,C,H,W)."""
        if isinstance(outputs, TrainingOutputs):
            outputs = (outputs.logits, *outputs.sides)
        elif isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        total = outputs[0].new_zeros((), dtype=torch.float32)
        for index, logits in enumerate(outputs):
            weight = 1.0
            if self.output_weights:
                weight = self.output_weights[min(index, len(self.output_weights) - 1)]
            total = total + weight * self.single(logits, target)
        return total


class BiRefNetLoss(nn.Module):
    """BiRefNet's training loss over the `TrainingOutputs` of `BiRefNetLite`.

    final: BCE + Dice of the final logits; sides: the same pixel loss of each side
    logits map (H/32, H/16, H/8) resized to the masks' size (multi-scale supervision);
    gradient: BCE between sigmoid(gradient prediction resized to the masks' size) and
    sigmoid(gradient label), per level, as BiRefNet's gradient-attention ("out_ref")
    loss. `side_weight=0, gradient_weight=0` is the original skin training, which
    supervised the final output only.

    Args:
        bce_weight: BCE weight of the pixel loss.
        dice_weight: Dice weight of the pixel loss.
        side_weight: weight of each side output's pixel loss.
        gradient_weight: weight of each level's gradient loss.
    """

    def __init__(
        self, bce_weight: float = 0.5, dice_weight: float = 0.5, side_weight: float = 1.0, gradient_weight: float = 1.0
    ) -> None:
        super().__init__()
        if side_weight < 0 or gradient_weight < 0:
            raise ValueError(f"side_weight and gradient_weight must be >= 0, got {side_weight}, {gradient_weight}")
        self.pixel = BceDiceLoss(bce_weight, dice_weight)
        self.side_weight = side_weight
        self.gradient_weight = gradient_weight

    def forward(self, outputs: torch.Tensor | TrainingOutputs, target: torch.Tensor) -> torch.Tensor:
        """Args: outputs, BiRefNetLite's `TrainingOutputs` (or the final logits alone, as in
        validation), each (B,C,h,w); target (B,C,H,W) in [0,1]."""
        if isinstance(outputs, torch.Tensor):
            return self.pixel.single(outputs, target)
        if not isinstance(outputs, TrainingOutputs) or len(outputs.gradient_labels) != len(outputs.sides):
            raise ValueError("BiRefNetLoss expects BiRefNetLite's TrainingOutputs (sides with gradient "
                             f"predictions and labels), got {type(outputs).__name__}")
        final, sides = outputs.logits, outputs.sides
        predictions, labels = outputs.gradient_predictions, outputs.gradient_labels
        size = target.shape[-2:]
        total = self.pixel.single(final, target)
        if self.side_weight:
            for side in sides:
                total = total + self.side_weight * self.pixel.single(resize_to(side.float(), size), target)
        if self.gradient_weight:
            for prediction, label in zip(predictions, labels, strict=True):
                gradient_target = torch.sigmoid(label.float())
                total = total + self.gradient_weight * F.binary_cross_entropy_with_logits(
                    resize_to(prediction.float(), size), gradient_target
                )
        return total

