"""DeepLabV3 on a pretrained encoder at output stride 16, with a DeepLabV3+ low-level skip.

The head is laid out as the PASCAL VOC DeepLabV3-MobileNetV2 (`../shared/weights`, its
README): image pooling (global mean, 1x1 conv) and a 1x1 branch, concatenated in that
order, a 1x1 projection, a 1x1 classifier; each conv with BatchNorm and ReLU but the
classifier. Those weights load whole, head included: with one output class the skin
logit starts as the file's *person* logit minus its background logit (`meta.person_class`,
class 0), so that the network starts out segmenting people, whose skin lies inside them
(on ccp photos the person class covers 95-100 % of the skin pixels).

The low-level skip (`low_level_skip=True`) refines the logits at stride 4: the projected
features, upsampled, and the encoder's stride-4 map reduced to `skip_channels` go through
two depthwise-separable 3x3 convolutions to a logit correction added to the upsampled
head logits. Its last convolution starts at zero, so a freshly loaded network predicts
exactly what its head does, and training teaches the skip the edges.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import Conv2dNormActivation

from skinseg.errors import UsageError
from skinseg.models.encoders import EncoderDecoder, EncoderWeights, check_keys
from skinseg.models.registry import register
from skinseg.models.upsample import LogitUpsample

BACKGROUND_CLASS = 0  # PASCAL VOC's class 0


class DeepLabHead(nn.Module):
    """Image pooling + 1x1 branch, projection, classifier (the PASCAL model's module names).

    Forward:
        features (B,in,h,w) -> (projected (B,channels,h,w), logits (B,num_classes,h,w)).
    """

    def __init__(self, in_channels: int, channels: int, num_classes: int) -> None:
        super().__init__()
        self.image_pool = Conv2dNormActivation(in_channels, channels, 1)
        self.aspp0 = Conv2dNormActivation(in_channels, channels, 1)
        self.project = Conv2dNormActivation(2 * channels, channels, 1)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.image_pool(F.adaptive_avg_pool2d(features, 1))
        pooled = F.interpolate(pooled, size=features.shape[-2:], mode="nearest")
        projected = self.project(torch.cat([pooled, self.aspp0(features)], dim=1))
        return projected, self.classifier(projected)


def separable_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 depthwise then 1x1 pointwise convolution, each with BatchNorm and ReLU."""
    return nn.Sequential(
        Conv2dNormActivation(in_channels, in_channels, 3, groups=in_channels),
        Conv2dNormActivation(in_channels, out_channels, 1),
    )


class LowLevelSkip(nn.Module):
    """DeepLabV3+'s decoder as a logit correction at the skip's stride (its last conv zero-initialised).

    Forward:
        projected (B,head,h,w), low_level (B,low,H,W) -> correction (B,num_classes,H,W).
    """

    def __init__(self, head_channels: int, low_level_channels: int, skip_channels: int, channels: int,
                 num_classes: int) -> None:
        super().__init__()
        self.reduce = Conv2dNormActivation(low_level_channels, skip_channels, 1)
        self.fuse = nn.Sequential(separable_conv(head_channels + skip_channels, channels),
                                  separable_conv(channels, channels))
        self.correction = nn.Conv2d(channels, num_classes, 1)
        nn.init.zeros_(self.correction.weight)
        nn.init.zeros_(self.correction.bias)

    def forward(self, projected: torch.Tensor, low_level: torch.Tensor) -> torch.Tensor:
        projected = F.interpolate(projected, size=low_level.shape[-2:], mode="bilinear", align_corners=False)
        return self.correction(self.fuse(torch.cat([projected, self.reduce(low_level)], dim=1)))


@register("deeplabv3")
class DeepLabV3(EncoderDecoder):
    """DeepLabV3 (PASCAL head layout) on a dilated encoder, optionally with a low-level skip.

    With the defaults (MobileNetV2, width 1, skip on): 2,152,946 parameters for one class (2,108,417
    without the skip).

    Args:
        encoder: registry name of the encoder (`skinseg.models.encoders.ENCODERS`).
        encoder_weights: None (random), "imagenet" (torchvision's, downloaded) or the path
            of a state dict; a file with a DeepLabV3 head loads the head too. Sets
            `input_mean`/`input_std` (see `skinseg.models.encoders`).
        in_channels: input image channels.
        num_classes: output channels.
        width_mult: the encoder's channel multiplier.
        head_channels: channels of the head's branches and projection (256 in the PASCAL model).
        low_level_skip: refine the logits at stride 4 from the encoder's stride-4 map (DeepLabV3+).
        skip_channels: channels the stride-4 map is reduced to.
        decoder_channels: channels of the skip's separable convolutions.

    Forward:
        x (B,in,H,W) -> logits (B,num_classes,H,W), upsampled bilinearly from H/16 (H/4 with the skip).
    """

    def __init__(
        self,
        encoder: str = "mobilenet_v2",
        encoder_weights: str | os.PathLike | None = None,
        in_channels: int = 3,
        num_classes: int = 1,
        width_mult: float = 1.0,
        head_channels: int = 256,
        low_level_skip: bool = True,
        skip_channels: int = 48,
        decoder_channels: int = 96,
    ) -> None:
        super().__init__(encoder, in_channels, width_mult, output_stride=16)
        self.head = DeepLabHead(self.encoder.channels[-1], head_channels, num_classes)
        self.skip = (LowLevelSkip(head_channels, self.encoder.channels[1], skip_channels, decoder_channels,
                                  num_classes) if low_level_skip else None)
        self.upsample = LogitUpsample()
        if encoder_weights is not None:
            self.load_pretrained(encoder_weights)

    def load_pretrained(self, encoder_weights: str | os.PathLike) -> EncoderWeights:
        """Loads the encoder's weights, and the head's where the file has one (see the module doc)."""
        weights = super().load_pretrained(encoder_weights)
        if weights.head:
            self.load_head(weights)
            self.pretrained_parts.append("head")
        return weights

    def load_head(self, weights: EncoderWeights) -> None:
        own = self.head.state_dict()
        head = dict(weights.head)
        classes, wanted = head["classifier.weight"].shape[0], own["classifier.weight"].shape[0]
        if classes != wanted:
            person = weights.meta.get("person_class")
            if wanted != 1 or person is None:
                raise UsageError(f"model.encoder_weights={weights.source}: its head has {classes} classes, the "
                                 f"network {wanted}; only a one-class network can start from the file's person class")
            # sigmoid(person - background) is the softmax's choice between the two
            for key in ("classifier.weight", "classifier.bias"):
                head[key] = (head[key][person] - head[key][BACKGROUND_CLASS]).unsqueeze(0)
        check_keys(weights.source, "DeepLabV3 head", own, head, [key for key in head if key not in own])
        self.head.load_state_dict(head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.encoder(x)
        projected, logits = self.head(maps[-1])
        if self.skip is not None:
            logits = self.upsample(logits, maps[1], self.skip(projected, maps[1]))
        return self.upsample(logits, x)
