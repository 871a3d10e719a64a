"""DLMV: DeepLabV3 with a MobileNetV3-Large backbone (torchvision), one output map.

Built from torchvision's parts with the same module names as
`torchvision.models.segmentation.deeplabv3_mobilenet_v3_large`, so a torchvision
state dict (without its auxiliary head) loads directly. No weights are downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models import mobilenet_v3_large
from torchvision.models.segmentation.deeplabv3 import ASPP

from skinseg.models.registry import register
from skinseg.models.upsample import LogitUpsample


@register("dlmv")
class DLMV(nn.Module):
    """DeepLabV3 head (ASPP) on a dilated MobileNetV3-Large (output stride 16).

    The defaults give 11,020,337 parameters for one class, as torchvision's
    `deeplabv3_mobilenet_v3_large(num_classes=1)` without the auxiliary head.

    Args:
        in_channels: input image channels; 3 keeps torchvision's stem unchanged.
        num_classes: output channels.
        width_mult: MobileNetV3 channel multiplier (small values build tiny test models).
        aspp_channels: channels of the ASPP branches and the head.
        atrous_rates: dilation rates of the three ASPP 3x3 branches.
        bn_momentum: momentum of every BatchNorm's running statistics. torchvision's
            backbone uses 0.01, made for fine-tuning ImageNet weights; trained from
            scratch, such running statistics lag the fast-changing network by hundreds of
            steps and eval-mode predictions fall far behind training ones (mIoU@0.5 0.76
            instead of 0.85 on 48 val images after 650 steps at 256, public data), so the
            PyTorch default 0.1 is used.

    Forward:
        x (B,in,H,W) -> logits (B,num_classes,H,W), upsampled bilinearly from H/16.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1,
        width_mult: float = 1.0,
        aspp_channels: int = 256,
        atrous_rates: Sequence[int] = (12, 24, 36),
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        self.backbone = mobilenet_v3_large(weights=None, dilated=True, width_mult=width_mult).features
        if in_channels != 3:
            stem = self.backbone[0][0]
            self.backbone[0][0] = nn.Conv2d(
                in_channels, stem.out_channels, stem.kernel_size, stem.stride, stem.padding, bias=False
            )
        features = self.backbone[-1].out_channels
        self.classifier = nn.Sequential(
            ASPP(features, atrous_rates, aspp_channels),
            nn.Conv2d(aspp_channels, aspp_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(aspp_channels),
            nn.ReLU(),
            nn.Conv2d(aspp_channels, num_classes, 1),
        )
        self.upsample = LogitUpsample()
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = bn_momentum

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.classifier(self.backbone(x)), x)
