"""ProbabilityHead: the deployed form of a network, as exported to ONNX and run by TorchSession."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from skinseg.outputs import final_logits


class ProbabilityHead(nn.Module):
    """Wraps a network for deployment: [0,1] images in, sigmoid probabilities of the main output out.

    Args:
        net: a skinseg network (in eval mode it returns logits (B,1,H,W)).
        mean, std: per-channel normalisation the network was trained with, or None.
    """

    def __init__(self, net: nn.Module, mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        super().__init__()
        self.net = net
        self.normalise = mean is not None or std is not None
        self.register_buffer("mean", torch.tensor(mean if mean is not None else [0.0] * 3).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std if std is not None else [1.0] * 3).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images float (B,3,H,W) in [0,1] -> probabilities float (B,1,H,W)."""
        if self.normalise:
            images = (images - self.mean) / self.std
        return torch.sigmoid(final_logits(self.net(images)))
