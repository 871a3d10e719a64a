"""U-Net: a pretrained torchvision encoder with a U-Net decoder (skips at every stride)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import Conv2dNormActivation

from skinseg.models.encoders import EncoderDecoder
from skinseg.models.registry import register
from skinseg.models.upsample import LogitUpsample


class UnetBlock(nn.Module):
    """Upsamples the coarser map to its skip's size, concatenates them, two 3x3 conv-BN-ReLU.

    Forward:
        x (B,in,h,w), skip (B,skip,H,W) -> (B,out,H,W).
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            Conv2dNormActivation(in_channels + skip_channels, out_channels, 3),
            Conv2dNormActivation(out_channels, out_channels, 3),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.convs(torch.cat([x, skip], dim=1))


@register("unet")
class Unet(EncoderDecoder):
    """U-Net decoder over the four finer stages of an encoder; logits at stride 2, upsampled.

    With the defaults (MobileNetV2, width 1): 2,612,177 parameters for one class.

    Args:
        encoder: registry name of the encoder (`skinseg.models.encoders.ENCODERS`).
        encoder_weights: None (random), "imagenet" (torchvision's, downloaded) or the path
            of a state dict; sets `input_mean`/`input_std` (see `skinseg.models.encoders`).
        in_channels: input image channels.
        num_classes: output channels.
        width_mult: the encoder's channel multiplier.
        decoder_channels: output channels of the four decoder blocks, coarse to fine.

    Forward:
        x (B,in,H,W) -> logits (B,num_classes,H,W), upsampled bilinearly from H/2.
    """

    def __init__(
        self,
        encoder: str = "mobilenet_v2",
        encoder_weights: str | os.PathLike | None = None,
        in_channels: int = 3,
        num_classes: int = 1,
        width_mult: float = 1.0,
        decoder_channels: Sequence[int] = (128, 64, 32, 16),
    ) -> None:
        super().__init__(encoder, in_channels, width_mult, output_stride=32)
        skips = self.encoder.channels[-2::-1]
        if len(decoder_channels) != len(skips):
            raise ValueError(f"decoder_channels needs {len(skips)} values (one per skip), got {list(decoder_channels)}")
        inputs = [self.encoder.channels[-1], *decoder_channels[:-1]]
        self.blocks = nn.ModuleList(
            UnetBlock(previous, skip, out) for previous, skip, out in zip(inputs, skips, decoder_channels, strict=True))
        self.classifier = nn.Conv2d(decoder_channels[-1], num_classes, 1)
        self.upsample = LogitUpsample()
        if encoder_weights is not None:
            self.load_pretrained(encoder_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *skips, features = self.encoder(x)
        for block, skip in zip(self.blocks, reversed(skips)):
            features = block(features, skip)
        return self.upsample(self.classifier(features), x)
