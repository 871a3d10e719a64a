"""Int8 quantization of skinseg networks with torch.ao FX graph mode, per engine.

Why FX graph mode (torch.ao) and not PT2E (torchao): the FX int8 model exports with the
TorchScript ONNX exporter as QuantizeLinear/DequantizeLinear around int8 initializers,
which ONNX Runtime fuses into QLinearConv kernels, and FX traces U²Net's shape-dependent
upsampling into dynamic shapes; torch 2.14 still ships and runs it (marked deprecated,
the warnings below are silenced only around these calls). The same graph serves both
post-training static quantization (PTQ: `prepare_ptq`, `calibrate`) and
quantization-aware training (QAT: `prepare_qat`, trained by
`skinseg.quant.QuantizationAwareTraining`); `convert` turns either into int8.

Engines set the qconfigs, as torch's defaults for each:
- "fbgemm" and "x86": per-channel symmetric int8 weights, uint8 activations on a
  reduced range 0..127 (VPMADDUBSW without VNNI would overflow otherwise), histogram
  observers for PTQ;
- "qnnpack" (ARM/mobile): per-tensor int8 weights, full-range uint8 activations.

The convolutions that produce logits (one output channel: U²Net's side heads and fuse
convolution, DLMV's last 1x1) and the ops between them stay in float: a sigmoid of 8-bit logits would quantize
the probabilities coarsely, and these layers cost < 1 % of the FLOPs.
"""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from torch import nn

from skinseg.errors import UnknownNameError
from skinseg.files import atomic_path

ENGINES = ("fbgemm", "x86", "qnnpack")
METHODS = ("ptq", "qat")
CHECKPOINT_KEY = "skinseg_quantization"  # where a QAT checkpoint records its engine and size


@contextlib.contextmanager
def quiet_quantization() -> Iterator[None]:
    """Silences torch.ao's deprecation and observer warnings (understood, see the module doc)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated.*")
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions.*")
        warnings.filterwarnings("ignore", message=r".*reduce_range will be deprecated.*")
        warnings.filterwarnings("ignore", message=r".*must run observer before calling calculate_qparams.*")
        yield


@contextlib.contextmanager
def quantized_engine(engine: str) -> Iterator[None]:
    """Sets `torch.backends.quantized.engine` (which packs and runs int8 weights), then restores it."""
    check_engine(engine)
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


def check_engine(engine: str) -> None:
    """Raises UnknownNameError (a KeyError) naming the valid engines for an unknown `engine`."""
    if engine not in ENGINES:
        raise UnknownNameError(f"unknown quantization engine {engine!r}; valid engines: {', '.join(ENGINES)}")


def check_quantizable(net: nn.Module) -> None:
    """Raises ValueError where a module of `net` declares `quantization_unsupported` (with why)."""
    reasons = {getattr(module, "quantization_unsupported", None) for module in net.modules()} - {None}
    if reasons:
        raise ValueError(
            f"{type(net).__name__} cannot be quantized to int8 with FX graph mode ({'; '.join(sorted(reasons))}); "
            "export it in fp32 (no --quantize) and train it without qat=..."
        )


def float_layers(net: nn.Module) -> list[str]:
    """Modules kept in float: convolutions with one output channel (they produce logits), modules
    marked `operates_on_logits` (e.g. U²Net's side alignment before the fuse conv) and modules
    marked `reads_colour` (an encoder's first layers: 8-bit activations of the normalised image
    lose the colour differences skin is told by; for the shipped U-Net, mean |Δp| from fp32 on
    70 val images 0.0097 with its stem in int8, 0.0041 with it in float)."""
    return [
        name
        for name, module in net.named_modules()
        if (isinstance(module, nn.Conv2d) and module.out_channels == 1)
        or getattr(module, "operates_on_logits", False) or getattr(module, "reads_colour", False)
    ]


def qconfig_mapping(net: nn.Module, engine: str, qat: bool):
    """torch's default (QAT or PTQ) qconfig mapping for `engine`, with the `float_layers` in float."""
    from torch.ao.quantization import get_default_qat_qconfig_mapping, get_default_qconfig_mapping

    check_engine(engine)
    check_quantizable(net)
    with quiet_quantization():
        mapping = get_default_qat_qconfig_mapping(engine) if qat else get_default_qconfig_mapping(engine)
    for name in float_layers(net):
        mapping.set_module_name(name, None)
    return mapping


def prepare_ptq(net: nn.Module, engine: str, size: int) -> torch.fx.GraphModule:
    """Observed copy of a float network for post-training static quantization (eval mode).

    BatchNorm is folded into the convolutions (eval mode) and Conv+BN+ReLU fused.

    Args:
        net: a float skinseg network (not modified).
        engine: one of ENGINES.
        size: side of the example input used for tracing (any size works later).

    Returns:
        The observed GraphModule in eval mode, returning the inference output (logits).
    """
    from torch.ao.quantization.quantize_fx import prepare_fx

    net = copy.deepcopy(net).float().eval()
    with quiet_quantization(), quantized_engine(engine):
        return prepare_fx(net, qconfig_mapping(net, engine, qat=False), (torch.rand(1, 3, size, size),))


def prepare_qat(net: nn.Module, engine: str, size: int) -> torch.fx.GraphModule:
    """Fake-quantized copy of a float network for quantization-aware training.

    Traced in training mode, so the graph returns what the network returns while
    training (U²Net: `TrainingOutputs` with the side outputs, for the deep-supervision
    loss; `final_logits` reads the inference map). Conv+BN(+ReLU) become QAT modules that fold
    BN into the fake-quantized weights and keep updating BN statistics until frozen.

    Args:
        net: a float skinseg network (not modified).
        engine: one of ENGINES.
        size: side of the example input used for tracing.

    Returns:
        The prepared GraphModule, in training mode.
    """
    from torch.ao.quantization.quantize_fx import prepare_qat_fx

    net = copy.deepcopy(net).float().train()
    with quiet_quantization(), quantized_engine(engine):
        return prepare_qat_fx(net, qconfig_mapping(net, engine, qat=True), (torch.rand(1, 3, size, size),))


def is_prepared(net: nn.Module) -> bool:
    """Whether net is an FX graph with observers or fake-quantizers (from prepare_ptq/prepare_qat)."""
    from torch.ao.quantization import ObserverBase
    from torch.ao.quantization.fake_quantize import FakeQuantizeBase

    return isinstance(net, torch.fx.GraphModule) and any(
        isinstance(module, (ObserverBase, FakeQuantizeBase)) for module in net.modules()
    )


@torch.no_grad()
def calibrate(prepared: torch.fx.GraphModule, batches: Iterable[torch.Tensor]) -> int:
    """Runs calibration images (float (B,3,H,W), as the network takes them) through the observers.

    Returns:
        The number of images seen.
    """
    prepared.eval()
    seen = 0
    with quiet_quantization():
        for batch in batches:
            prepared(batch)
            seen += len(batch)
    return seen


def convert(prepared: torch.fx.GraphModule, engine: str) -> torch.fx.GraphModule:
    """The int8 model of a calibrated PTQ or trained QAT graph (a copy, eval mode).

    Its forward takes and returns float tensors (quantize/dequantize inside); run it
    inside `quantized_engine(engine)`.
    """
    from torch.ao.quantization.quantize_fx import convert_fx

    with quiet_quantization(), quantized_engine(engine):
        return convert_fx(copy.deepcopy(prepared).eval())


def int8_network(net_config: dict, engine: str, method: str, size: int) -> torch.fx.GraphModule:
    """An int8 network of the right structure (weights to be loaded), from its registry config.

    Rebuilds the graph exactly as it was made: `prepare_qat` (method "qat") or
    `prepare_ptq` ("ptq") on a fresh network, then `convert`.
    """
    from skinseg.models import create_model

    if method not in METHODS:
        raise ValueError(f"unknown quantization method {method!r}; valid: {', '.join(METHODS)}")
    net = create_model(**net_config)
    prepared = prepare_qat(net, engine, size) if method == "qat" else prepare_ptq(net, engine, size)
    with torch.no_grad(), quiet_quantization():
        prepared.eval()(torch.rand(1, 3, size, size))  # observers need one pass to yield qparams
    return convert(prepared, engine)


def save_int8(quantized: torch.fx.GraphModule, path: str | os.PathLike, net_config: dict, engine: str,
              method: str, size: int) -> Path:
    """Writes the int8 state dict with what `load_int8` needs to rebuild the graph (atomic write)."""
    with atomic_path(path) as temporary:
        torch.save({"state_dict": quantized.state_dict(), "net": net_config, "engine": engine, "method": method,
                    "size": size}, temporary)
    return Path(path)


def load_int8(path: str | os.PathLike) -> tuple[torch.fx.GraphModule, str]:
    """Loads a file written by `save_int8` (`weights_only=True`); returns (int8 model, engine)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    with quiet_quantization():
        model = int8_network(state["net"], state["engine"], state["method"], state["size"])
        with quantized_engine(state["engine"]):
            model.load_state_dict(state["state_dict"])
    return model, state["engine"]


def load_qat_network(net_config: dict, state_dict: dict[str, torch.Tensor], info: dict) -> torch.fx.GraphModule:
    """The fake-quantized network of a QAT checkpoint ("net." keys stripped from its state dict)."""
    from skinseg.models import create_model

    net = prepare_qat(create_model(**net_config), info["engine"], int(info["size"]))
    net.load_state_dict(state_dict)
    return net
