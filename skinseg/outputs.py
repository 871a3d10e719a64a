"""The model contract: what a network returns, and what export, quantization and the losses read.

It sits below `skinseg.models` and `skinseg.losses`, which both speak it.

In evaluation mode every network returns its final logits, (B,1,H,W) at the input's size;
that is all export, quantization and inference see. In training mode a network with extra
supervision returns `TrainingOutputs` (the same final logits first, then named side
outputs); one without returns the logits alone. Consumers read fields, never positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F


class TrainingOutputs(NamedTuple):
    """A network's training-mode outputs.

    Attributes:
        logits: final logits (B,1,H,W), as in evaluation mode.
        sides: deep-supervision logits (B,1,h,w), coarse to fine or as the model documents
            (U²Net: six at the input's size; BiRefNet_lite: three at H/32, H/16, H/8).
        gradient_predictions: BiRefNet_lite's gradient-map logits per level (B,1,h,w).
        gradient_labels: BiRefNet_lite's gradient labels per level (B,1,H,W).
    """

    logits: torch.Tensor
    sides: tuple[torch.Tensor, ...] = ()
    gradient_predictions: tuple[torch.Tensor, ...] = ()
    gradient_labels: tuple[torch.Tensor, ...] = ()

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """Every output tensor: logits, sides, gradient predictions, gradient labels."""
        return (self.logits, *self.sides, *self.gradient_predictions, *self.gradient_labels)


def final_logits(outputs: torch.Tensor | TrainingOutputs) -> torch.Tensor:
    """The final logits (B,1,H,W) of a network's outputs in either mode."""
    return outputs.logits if isinstance(outputs, TrainingOutputs) else outputs


def resize_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize (align_corners=True, as BiRefNet's original) of (B,C,h,w) to size (H,W)."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)
