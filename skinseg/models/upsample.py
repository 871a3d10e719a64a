"""LogitUpsample: the decoders' final resize of logits to the input's size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LogitUpsample(nn.Module):
    """Bilinear upsampling of logits (B,C,h,w) to a reference's (H,W), plus optional logits at
    that size (a residual refinement); no parameters.

    A module of its own so that int8 quantization keeps it in float (`operates_on_logits`).
    """

    operates_on_logits = True

    def forward(self, logits: torch.Tensor, reference: torch.Tensor,
                residual: torch.Tensor | None = None) -> torch.Tensor:
        upsampled = F.interpolate(logits, size=reference.shape[-2:], mode="bilinear", align_corners=False)
        return upsampled if residual is None else upsampled + residual
