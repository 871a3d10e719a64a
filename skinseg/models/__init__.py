"""Segmentation networks: plain `nn.Module`s returning logits (B,C,H,W), and a registry.

Every model returns logits of its input's size. U²Net-family models and BiRefNet_lite
return `outputs.TrainingOutputs` (final logits and named side outputs) in training mode
only; `outputs.final_logits` reads the map used for inference from either (the contract is
`skinseg.outputs`).

Modules may declare what export and quantization need to know about them (read by
`skinseg.export.onnx` and `skinseg.quant.fx`):
- `onnx_opset`: the lowest ONNX opset that can express them (e.g. 19 for DeformConv);
- `onnx_fixed_size = True`: the traced ONNX graph only accepts the example's height and
  width (shape arithmetic the tracer freezes into constants);
- `quantization_unsupported`: why FX graph-mode int8 quantization cannot handle them.
"""

from __future__ import annotations

import importlib
import pkgutil

from skinseg.models.birefnet_lite import BiRefNetLite
from skinseg.models.deeplabv3 import DeepLabV3
from skinseg.models.dlmv import DLMV
from skinseg.models.head import ProbabilityHead
from skinseg.models.registry import MODELS, create_model, register
from skinseg.models.u2net import U2Net
from skinseg.models.u2netp import U2NetP
from skinseg.models.unet import Unet

# every module of this package is imported, so that a class decorated with `@register` in a new
# module is a registered network without a line here
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
del _module

__all__ = ["BiRefNetLite", "DLMV", "DeepLabV3", "MODELS", "ProbabilityHead", "U2Net", "U2NetP", "Unet", "create_model",
           "register"]
