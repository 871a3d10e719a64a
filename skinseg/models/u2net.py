"""U²Net: nested U-structure for salient object detection (Qin et al., 2020), used for skin.

The network is a U-Net whose every stage is itself a small U-Net (a residual U-block,
RSU). Six side heads predict a map from each decoder stage (and the bottom encoder
stage); a 1x1 fuse convolution combines them into the final map.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from skinseg.models.registry import register
from skinseg.outputs import TrainingOutputs

U2NET_ENCODER = ((32, 64), (32, 128), (64, 256), (128, 512), (256, 512), (256, 512))
U2NET_DECODER = ((16, 64), (32, 64), (64, 128), (128, 256), (256, 512))
U2NET_HEIGHTS = (7, 6, 5, 4)


class ConvBnReLU(nn.Sequential):
    """3x3 convolution (padding = dilation) + BatchNorm + ReLU; keeps H and W."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


def upsample_to(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Bilinearly resizes x (B,C,h,w) to the spatial size of reference (B,*,H,W)."""
    return F.interpolate(x, size=reference.shape[-2:], mode="bilinear", align_corners=True)


def encode(stages: nn.ModuleList, pool: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Runs stages top to bottom, pooling before every stage but the first; returns each output."""
    features = []
    for index, stage in enumerate(stages):
        if index > 0:
            x = pool(x)
        x = stage(x)
        features.append(x)
    return features


class RSU(nn.Module):
    """Residual U-block of height L: a U-Net with L-1 encoder levels inside one stage.

    Levels 1..L-2 are followed by 2x2 max-pooling (ceil mode, so odd sizes work); the
    last level is a dilation-2 convolution instead of a further pooling. The decoder
    concatenates skip connections and upsamples back; the block output adds the input
    projection (residual).

    Args:
        height: number of convolution levels L (>= 2).
        in_channels: channels of the input (B,in,H,W).
        mid_channels: channels inside the U.
        out_channels: channels of the output (B,out,H,W).
    """

    def __init__(self, height: int, in_channels: int, mid_channels: int, out_channels: int) -> None:
        super().__init__()
        if height < 2:
            raise ValueError(f"RSU height must be >= 2, got {height}")
        self.conv_in = ConvBnReLU(in_channels, out_channels)
        self.encoder = nn.ModuleList(
            [ConvBnReLU(out_channels, mid_channels)]
            + [ConvBnReLU(mid_channels, mid_channels) for _ in range(height - 2)]
        )
        self.bottom = ConvBnReLU(mid_channels, mid_channels, dilation=2)
        self.decoder = nn.ModuleList(
            [ConvBnReLU(2 * mid_channels, mid_channels) for _ in range(height - 2)]
            + [ConvBnReLU(2 * mid_channels, out_channels)]
        )
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.conv_in(x)
        skips = encode(self.encoder, self.pool, residual)
        h = self.bottom(skips[-1])
        for index, (conv, skip) in enumerate(zip(self.decoder, reversed(skips))):
            if index > 0:  # the bottom level is not pooled, so it needs no upsampling
                h = upsample_to(h, skip)
            h = conv(torch.cat([h, skip], dim=1))
        return h + residual


class RSU4F(nn.Module):
    """Residual U-block without pooling: dilations 1, 2, 4, 8 down and 4, 2, 1 up.

    Used at the coarsest stages, where further down-sampling would lose too much.

    Args:
        in_channels: channels of the input (B,in,H,W).
        mid_channels: channels inside the block.
        out_channels: channels of the output (B,out,H,W).
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv_in = ConvBnReLU(in_channels, out_channels)
        self.encoder = nn.ModuleList(
            [
                ConvBnReLU(out_channels, mid_channels, 1),
                ConvBnReLU(mid_channels, mid_channels, 2),
                ConvBnReLU(mid_channels, mid_channels, 4),
            ]
        )
        self.bottom = ConvBnReLU(mid_channels, mid_channels, dilation=8)
        self.decoder = nn.ModuleList(
            [
                ConvBnReLU(2 * mid_channels, mid_channels, 4),
                ConvBnReLU(2 * mid_channels, mid_channels, 2),
                ConvBnReLU(2 * mid_channels, out_channels, 1),
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.conv_in(x)
        skips = []
        h = residual
        for conv in self.encoder:
            h = conv(h)
            skips.append(h)
        h = self.bottom(h)
        for conv, skip in zip(self.decoder, reversed(skips)):
            h = conv(torch.cat([h, skip], dim=1))
        return h + residual


def make_stage(height: int, in_channels: int, mid_channels: int, out_channels: int) -> nn.Module:
    """An RSU of the given height, or an RSU4F where height is 0."""
    if height == 0:
        return RSU4F(in_channels, mid_channels, out_channels)
    return RSU(height, in_channels, mid_channels, out_channels)


class SideAlignment(nn.Module):
    """Brings side logits to the top side's size and stacks them (no parameters).

    A module of its own so that int8 quantization can keep this logit path in float
    (`operates_on_logits`, see skinseg.quant.fx).

    Forward:
        sides: list of (B,C,h_i,w_i), top first -> (stacked (B,C·n,H,W), list of the
        n sides at (B,C,H,W)).
    """

    operates_on_logits = True

    def forward(self, sides: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        aligned = [sides[0]] + [upsample_to(side, sides[0]) for side in sides[1:]]
        return torch.cat(aligned, dim=1), aligned


@register("u2net")
class U2Net(nn.Module):
    """U²Net with six RSU stages down, five up, six side heads and a fuse convolution.

    The defaults build the original U²Net (44,009,869 parameters for one class).

    Args:
        in_channels: input image channels.
        num_classes: output channels (1 for skin).
        encoder_channels: (mid, out) channels of each encoder stage, top to bottom.
        decoder_channels: (mid, out) channels of each decoder stage, top to bottom;
            one fewer than the encoder stages.
        rsu_heights: RSU heights of the top encoder stages; the remaining (deeper)
            stages are RSU4F. Decoder stage i uses the height of encoder stage i.

    Forward:
        x (B,in,H,W) -> logits (B,num_classes,H,W) in eval mode; in training mode
        `TrainingOutputs(logits=fused, sides=side logits, top stage first)`, each
        (B,num_classes,H,W).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1,
        encoder_channels: Sequence[Sequence[int]] = U2NET_ENCODER,
        decoder_channels: Sequence[Sequence[int]] = U2NET_DECODER,
        rsu_heights: Sequence[int] = U2NET_HEIGHTS,
    ) -> None:
        super().__init__()
        if len(decoder_channels) != len(encoder_channels) - 1:
            raise ValueError(
                f"U2Net needs one decoder stage fewer than encoder stages; got "
                f"{len(encoder_channels)} encoder and {len(decoder_channels)} decoder stages"
            )
        if len(rsu_heights) > len(encoder_channels):
            raise ValueError(
                f"rsu_heights has {len(rsu_heights)} entries for {len(encoder_channels)} stages"
            )
        heights = list(rsu_heights) + [0] * (len(encoder_channels) - len(rsu_heights))

        self.encoder = nn.ModuleList()
        previous = in_channels
        for height, (mid, out) in zip(heights, encoder_channels):
            self.encoder.append(make_stage(height, previous, mid, out))
            previous = out

        # Decoder stage i sees the upsampled stage below it and encoder stage i's skip.
        self.decoder = nn.ModuleList()
        below = encoder_channels[-1][1]
        decoder_modules = []
        for index in reversed(range(len(decoder_channels))):
            mid, out = decoder_channels[index]
            skip = encoder_channels[index][1]
            decoder_modules.append(make_stage(heights[index], below + skip, mid, out))
            below = out
        self.decoder.extend(reversed(decoder_modules))

        side_inputs = [out for _, out in decoder_channels] + [encoder_channels[-1][1]]
        self.side_heads = nn.ModuleList(
            [nn.Conv2d(channels, num_classes, 3, padding=1) for channels in side_inputs]
        )
        self.align_sides = SideAlignment()
        self.fuse = nn.Conv2d(len(side_inputs) * num_classes, num_classes, 1)
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor | TrainingOutputs:
        skips = encode(self.encoder, self.pool, x)
        decoded = [skips[-1]]
        h = skips[-1]
        for stage, skip in zip(reversed(self.decoder), reversed(skips[:-1])):
            h = stage(torch.cat([upsample_to(h, skip), skip], dim=1))
            decoded.append(h)
        decoded.reverse()  # top stage first, the bottom encoder stage last

        sides = [head(feature) for head, feature in zip(self.side_heads, decoded)]
        stacked, sides = self.align_sides(sides)
        fused = self.fuse(stacked)
        if self.training:
            return TrainingOutputs(fused, tuple(sides))
        return fused
