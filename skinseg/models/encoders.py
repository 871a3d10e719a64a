"""Pretrained torchvision encoders for the encoder-decoder networks, and their weights.

An encoder is a torchvision backbone cut into stages; its forward returns one feature map
per stage, fine to coarse, for a decoder to combine. Weights come by name or by path
(`read_encoder_weights`):

- `None`: random initialisation (training from scratch);
- `"imagenet"`: torchvision's ImageNet weights enum, downloaded (and cached) by torchvision;
  offline, one error naming the local-file alternative;
- a path to a state dict, read with `weights_only=True`: either torchvision's layout
  (`features.N...` keys, as `mobilenet_v2().state_dict()`), or the offline layout
  `{"backbone": <state dict of features>, "head": <DeepLabV3 head>, "meta": {...}}` of
  `../shared/weights/` (its README), whose head a DeepLabV3 network loads too.

Keys are checked strictly: every parameter of the encoder must be in the file with its shape;
the only keys a file may have beyond them are stages past the encoder's last one (e.g.
MobileNetV2's 1x1 1280-channel layer, which only its classifier uses) and a classification
network's `classifier.*`.

The weights also fix the input normalisation the network expects (`EncoderWeights.mean`,
`.std`, applied to images scaled to [0,1]): torchvision's ImageNet statistics for its
weights, [-1, 1] (mean 0.5, std 0.5) for the offline layout unless its `meta` gives
`input_mean`/`input_std` (in 0-255 units). The LightningModule records them in the
checkpoint, and export puts them inside the ONNX graph.
"""

from __future__ import annotations

import os
import urllib.error
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

from skinseg.errors import MissingFileError, NotAModelError, UnknownNameError, UsageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SYMMETRIC_MEAN = (0.5, 0.5, 0.5)  # x / 127.5 - 1: TensorFlow's MobileNet input
SYMMETRIC_STD = (0.5, 0.5, 0.5)
MAX_LISTED = 5


@dataclass
class EncoderWeights:
    """Pretrained weights for an encoder (and possibly a DeepLabV3 head), and what they expect.

    Attributes:
        source: where they came from ("imagenet" or the file's path), for messages.
        backbone: state dict of the torchvision backbone's `features` ("0.0.weight", ...).
        head: state dict of a DeepLabV3 head (`image_pool`, `aspp0`, `project`, `classifier`), or {}.
        mean, std: per-channel normalisation of [0,1] RGB inputs the weights were trained with.
        meta: the file's description (classes, strides, ...), or {}.
    """

    source: str
    backbone: dict[str, torch.Tensor]
    head: dict[str, torch.Tensor] = field(default_factory=dict)
    mean: tuple[float, ...] = SYMMETRIC_MEAN
    std: tuple[float, ...] = SYMMETRIC_STD
    meta: dict = field(default_factory=dict)


class MobileNetV2Encoder(nn.Module):
    """torchvision's MobileNetV2 features up to the 320-channel block, as five feature maps.

    Args:
        in_channels: input channels; other than 3 replaces the stem (no pretrained weights then).
        width_mult: channel multiplier (small values build tiny test models).
        output_stride: 32, or 16 as DeepLabV3 uses it: the stride-2 depthwise convolution of
            block 14 gets stride 1 and blocks 15-17 dilation 2 (the PASCAL model's layout).

    Forward:
        x (B,in,H,W) -> five maps at strides 2, 4, 8, 16 and 32 (16 with output_stride=16),
        with `channels` channels: (16, 24, 32, 96, 320) at width 1.
    """

    stage_ends = (1, 3, 6, 13, 17)  # index of the last `features` block of each stage

    def __init__(self, in_channels: int = 3, width_mult: float = 1.0, output_stride: int = 32) -> None:
        super().__init__()
        if output_stride not in (16, 32):
            raise UsageError(f"encoder output_stride must be 16 or 32, got {output_stride}")
        self.features = mobilenet_v2(weights=None, width_mult=width_mult).features[: self.stage_ends[-1] + 1]
        if in_channels != 3:
            stem = self.features[0][0]
            self.features[0][0] = nn.Conv2d(in_channels, stem.out_channels, 3, 2, 1, bias=False)
        if output_stride == 16:
            self.features[14].conv[1][0].stride = (1, 1)
            for block in self.features[15:18]:
                block.conv[1][0].dilation = (2, 2)
                block.conv[1][0].padding = (2, 2)
        self.output_stride = output_stride
        for block in self.features[:2]:  # the stem and first block: int8 keeps them in float (skinseg.quant.fx)
            block.reads_colour = True
        self.channels = tuple(self._block_channels(self.features[end]) for end in self.stage_ends)

    @staticmethod
    def _block_channels(block: nn.Module) -> int:
        return [module for module in block.modules() if isinstance(module, nn.Conv2d)][-1].out_channels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for index, block in enumerate(self.features):
            x = block(x)
            if index in self.stage_ends:
                maps.append(x)
        return maps

    def load_backbone(self, weights: EncoderWeights) -> None:
        """Loads `weights.backbone` into `features`, strictly (see the module doc).

        Raises:
            UsageError: missing keys, shapes that differ, or keys of another network; the
                message names the file and what differs.
        """
        own = self.features.state_dict()
        # later stages of the full backbone (MobileNetV2's block 18) are allowed and left out
        later = [key for key in weights.backbone
                 if key.split(".")[0].isdigit() and int(key.split(".")[0]) >= len(self.features)]
        extra = [key for key in weights.backbone if key not in own and key not in later]
        check_keys(weights.source, "encoder", own, weights.backbone, extra)
        self.features.load_state_dict({key: weights.backbone[key] for key in own})


ENCODERS: dict[str, type[nn.Module]] = {"mobilenet_v2": MobileNetV2Encoder}
# torchvision's weights enum of each encoder's ImageNet weights (downloaded by torchvision)
IMAGENET_WEIGHTS = {"mobilenet_v2": MobileNet_V2_Weights.IMAGENET1K_V1}
OFFLINE_FILES = {"mobilenet_v2": "mobilenet_v2_imagenet.pt"}


def create_encoder(name: str, **kwargs) -> nn.Module:
    """Builds a registered encoder by name (`mobilenet_v2`); the error lists the valid names."""
    if name not in ENCODERS:
        raise UnknownNameError(f"unknown encoder {name!r}; valid encoders: {', '.join(sorted(ENCODERS))}")
    return ENCODERS[name](**kwargs)


def check_keys(source: str, part: str, own: dict[str, torch.Tensor], given: dict[str, torch.Tensor],
               unexpected: Sequence[str]) -> None:
    """Raises UsageError naming `source` if `given` misses keys of `own`, has other shapes, or `unexpected` keys."""
    missing = [key for key in own if key not in given]
    shapes = [f"{key} {tuple(given[key].shape)} vs {tuple(own[key].shape)}" for key in own
              if key in given and given[key].shape != own[key].shape]
    problems = [f"{len(items)} {what} (e.g. {', '.join(items[:MAX_LISTED])})"
                for what, items in (("missing keys", missing), ("keys of another shape", shapes),
                                    ("unexpected keys", list(unexpected))) if items]
    if problems:
        raise UsageError(f"model.encoder_weights={source} does not fit the {part}: {'; '.join(problems)}; "
                         "give weights of the same architecture and width (and in_channels=3)")


def read_encoder_weights(weights: str | os.PathLike, encoder: str) -> EncoderWeights:
    """Reads pretrained weights by name ("imagenet") or path, for the encoder named `encoder`.

    Raises:
        UsageError: "imagenet" cannot be downloaded (offline), or an unknown encoder.
        MissingFileError: no file at the path.
        NotAModelError: the file is not a state dict in either layout.
    """
    if encoder not in ENCODERS:
        raise UnknownNameError(f"unknown encoder {encoder!r}; valid encoders: {', '.join(sorted(ENCODERS))}")
    if str(weights) == "imagenet":
        return download_imagenet(encoder)
    path = Path(weights).expanduser()
    if not path.is_file():
        raise MissingFileError(f"model.encoder_weights={weights}: no such file; give 'imagenet', null, or the path "
                               "of a state dict")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # the type only: torch's message advises unsafe loading
        raise NotAModelError(f"model.encoder_weights={path} cannot be read as a state dict "
                             f"({type(error).__name__})") from error
    if isinstance(state, dict) and isinstance(state.get("backbone"), dict):
        meta = state.get("meta") or {}
        mean, std = SYMMETRIC_MEAN, SYMMETRIC_STD
        if "input_mean" in meta and "input_std" in meta:
            mean = tuple(value / 255 for value in meta["input_mean"])
            std = tuple(value / 255 for value in meta["input_std"])
        return EncoderWeights(str(path), state["backbone"], state.get("head") or {}, mean, std, meta)
    if isinstance(state, dict) and any(str(key).startswith("features.") for key in state):
        return torchvision_layout(str(path), state)
    raise NotAModelError(f"model.encoder_weights={path}: expected a torchvision state dict (features.* keys) or "
                         "{'backbone': ..., 'head': ..., 'meta': ...} as in the weights README")


def torchvision_layout(source: str, state: dict[str, torch.Tensor]) -> EncoderWeights:
    """EncoderWeights of a torchvision classification state dict (its `classifier.*` is not used)."""
    others = [key for key in state if not key.startswith(("features.", "classifier."))]
    if others:
        raise UsageError(f"model.encoder_weights={source}: keys of another network "
                         f"({', '.join(others[:MAX_LISTED])})")
    backbone = {key.removeprefix("features."): value for key, value in state.items() if key.startswith("features.")}
    return EncoderWeights(source, backbone, mean=IMAGENET_MEAN, std=IMAGENET_STD)


def download_imagenet(encoder: str) -> EncoderWeights:
    """torchvision's ImageNet weights for `encoder` (from its cache, else downloaded)."""
    enum = IMAGENET_WEIGHTS[encoder]
    try:
        state = enum.get_state_dict(progress=True)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise UsageError(
            f"model.encoder_weights=imagenet: torchvision could not download {type(enum).__name__}.{enum.name} "
            f"({reason}); offline, give a local state dict instead, e.g. "
            f"model.encoder_weights=../shared/weights/{OFFLINE_FILES[encoder]}"
        ) from error
    return torchvision_layout("imagenet", state)


class EncoderDecoder(nn.Module):
    """Base of the networks built on a registered encoder: the encoder, its weights, their input.

    Args:
        encoder: registry name of the encoder (`ENCODERS`).
        in_channels: input image channels.
        width_mult: the encoder's channel multiplier.
        output_stride: the encoder's output stride (16 or 32).

    Attributes:
        encoder: the encoder module (fine-tuning reads its parameters by this name).
        input_mean, input_std: the normalisation of [0,1] inputs the loaded weights expect,
            or None (random initialisation: none).
        pretrained_parts: names of the child modules whose weights came from a file.
    """

    def __init__(self, encoder: str, in_channels: int, width_mult: float, output_stride: int) -> None:
        super().__init__()
        self.encoder = create_encoder(encoder, in_channels=in_channels, width_mult=width_mult,
                                      output_stride=output_stride)
        self.encoder_name = encoder
        self.input_mean: tuple[float, ...] | None = None
        self.input_std: tuple[float, ...] | None = None
        self.pretrained_parts: list[str] = []

    def load_pretrained(self, encoder_weights: str | os.PathLike) -> EncoderWeights:
        """Loads the encoder's weights by name or path and records their input normalisation."""
        weights = read_encoder_weights(encoder_weights, self.encoder_name)
        self.encoder.load_backbone(weights)
        self.input_mean, self.input_std = weights.mean, weights.std
        self.pretrained_parts = ["encoder"]
        return weights
