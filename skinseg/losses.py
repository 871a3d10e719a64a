"""Segmentation losses computed from logits, so they are safe under mixed precision."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


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
        bce = F.binary_cross_entropy_with_logits(logits.float(), target.float())
        return self.bce_weight * bce + self.dice_weight * dice_loss(logits, target)

    def forward(
        self, outputs: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor
    ) -> torch.Tensor:
        """Args: outputs (B,C,H,W) or a sequence of them (main first); target (B,C,H,W)."""
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        total = outputs[0].new_zeros((), dtype=torch.float32)
        for index, logits in enumerate(outputs):
            weight = 1.0
            if self.output_weights:
                weight = self.output_weights[min(index, len(self.output_weights) - 1)]
            total = total + weight * self.single(logits, target)
        return total
