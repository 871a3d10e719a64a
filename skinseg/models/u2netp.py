"""U²NetP: the light U²Net (16 middle and 64 output channels in every stage)."""

from __future__ import annotations

from collections.abc import Sequence

from skinseg.models.registry import register
from skinseg.models.u2net import U2NET_HEIGHTS, U2Net

U2NETP_ENCODER = ((16, 64),) * 6
U2NETP_DECODER = ((16, 64),) * 5


@register("u2netp")
class U2NetP(U2Net):
    """U²Net with narrow stages; the defaults give 1,131,181 parameters for one class.

    Args:
        in_channels: input image channels (4 for the RGB + coarse-mask refiner).
        num_classes: output channels.
        encoder_channels: (mid, out) channels of each encoder stage, top to bottom.
        decoder_channels: (mid, out) channels of each decoder stage, top to bottom.
        rsu_heights: RSU heights of the top encoder stages; deeper stages are RSU4F.

    Forward:
        x (B,in,H,W) -> logits (B,num_classes,H,W); in training `TrainingOutputs` of the
        fused and six side logits.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1,
        encoder_channels: Sequence[Sequence[int]] = U2NETP_ENCODER,
        decoder_channels: Sequence[Sequence[int]] = U2NETP_DECODER,
        rsu_heights: Sequence[int] = U2NET_HEIGHTS,
    ) -> None:
        super().__init__(in_channels, num_classes, encoder_channels, decoder_channels, rsu_heights)
