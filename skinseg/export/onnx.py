"""ONNX export of skinseg networks, and running an export on the CPU.

Exported graphs take float images (B,3,H,W) scaled to [0,1] (normalised inside the graph
when the model was trained with a mean/std) and return skin probabilities (B,1,H,W)
(the sigmoid is part of the graph), so a runtime needs only the pre-processing that
`skinseg.inference.Session` documents. Batch is dynamic; height and width too where the
network allows (U²Net, U²NetP and DLMV; BiRefNet_lite's Swin backbone is traced at the
export size only, which suits its letterboxed square input).

The opset is 17, or the highest `onnx_opset` a module declares: BiRefNet_lite's
deformable convolutions export as ONNX `DeformConv` (opset 19), which torchvision does
not register; `register_deform_conv` does, and ONNX Runtime (>= 1.20) runs it on the CPU.

We use the TorchScript exporter (`dynamo=False`): it traces the shape
arithmetic of U²Net's upsampling into dynamic ONNX shape ops and exports fake-quantized
models as QuantizeLinear/DequantizeLinear pairs, which ONNX Runtime fuses into int8
kernels. torch 2.14 marks it deprecated in favour of the dynamo exporter; that warning is
understood and silenced here only.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from skinseg.files import atomic_path
from skinseg.hardware import default_threads

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "input", "output"


def required_opset(model: nn.Module) -> int:
    """The opset to export `model` with: OPSET or the highest `onnx_opset` of its modules."""
    return max([OPSET] + [getattr(module, "onnx_opset", OPSET) for module in model.modules()])


def has_dynamic_size(model: nn.Module) -> bool:
    """Whether an export of `model` can take any height and width (no module is `onnx_fixed_size`)."""
    return not any(getattr(module, "onnx_fixed_size", False) for module in model.modules())


def register_deform_conv(opset: int = 19) -> None:
    """Exports torchvision's `deform_conv2d` as ONNX `DeformConv` (opset >= 19)."""
    from torch.onnx import symbolic_helper

    @symbolic_helper.parse_args("v", "v", "v", "v", "v", "i", "i", "i", "i", "i", "i", "i", "i", "b")
    def deform_conv(graph, x, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w, dilation_h,
                    dilation_w, groups, offset_groups, use_mask):
        # torchvision's (dy, dx) offset pairs per tap and its mask layout are ONNX's.
        inputs = [x, weight, offset, bias] + ([mask] if use_mask else [])
        return graph.op(
            "DeformConv",
            *inputs,
            dilations_i=[dilation_h, dilation_w],
            group_i=groups,
            offset_group_i=offset_groups,
            kernel_shape_i=symbolic_helper._get_tensor_sizes(weight)[-2:],
            pads_i=[pad_h, pad_w, pad_h, pad_w],
            strides_i=[stride_h, stride_w],
        )

    torch.onnx.register_custom_op_symbolic("torchvision::deform_conv2d", deform_conv, opset)


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    input_size: int,
    dynamic_size: bool | None = None,
    opset: int | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Exports `model` (images in [0,1] -> probabilities, e.g. a ProbabilityHead) to ONNX.

    Args:
        model: the module to trace; put in eval mode here.
        path: the .onnx file to write (written to a temporary name, then renamed).
        input_size: side of the example input (the model's training size).
        dynamic_size: make height and width dynamic as well as the batch; None: where the
            model allows (`has_dynamic_size`).
        opset: ONNX opset; None: `required_opset(model)`.
        metadata: key/value strings for the file's metadata_props (read by inference.Session).

    Returns:
        The path written.

    Raises:
        ValueError: dynamic_size=True for a model that only exports at one size, or an
            opset below what the model needs.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    if dynamic_size is None:
        dynamic_size = has_dynamic_size(model)
    elif dynamic_size and not has_dynamic_size(model):
        raise ValueError(f"{type(model).__name__} exports at its example size only; use dynamic_size=False")
    needed = required_opset(model)
    opset = needed if opset is None else opset
    if opset < needed:
        raise ValueError(f"{type(model).__name__} needs ONNX opset >= {needed}, got {opset}")
    if opset >= 19:
        register_deform_conv(opset)
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic_size else {0: "batch"}
    example = torch.rand(1, 3, input_size, input_size)
    with atomic_path(path) as temporary, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*TorchScript-based ONNX export.*", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.\w+`? is deprecated.*", category=FutureWarning)
        torch.onnx.export(
            model,
            (example,),
            str(temporary),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
        model_proto = onnx.load(str(temporary))
        shapes_from_quantized_tensors(model_proto.graph)
        set_metadata(model_proto, metadata or {})
        onnx.save(model_proto, str(temporary))
    return path


def set_metadata(model: onnx.ModelProto, values: dict[str, Any]) -> None:
    """Sets key/value strings in a model's metadata_props, replacing keys already there."""
    existing = {prop.key: prop for prop in model.metadata_props}
    for key, value in values.items():
        prop = existing.get(key) or model.metadata_props.add()
        prop.key, prop.value = key, str(value)


def shapes_from_quantized_tensors(graph: onnx.GraphProto) -> int:
    """Makes `Shape(DequantizeLinear(x))` read `Shape(x)` and drops the nodes left unused.

    The TorchScript exporter dequantizes a whole int8 tensor only to read its shape
    (U²Net's `upsample_to(h, skip)` takes the skip's size); ONNX Runtime keeps those
    full-size float copies, which cost ~15 % of the int8 U²NetP's time. Float graphs
    are unchanged. Returns the number of Shape nodes rewired.
    """
    producers = {output: node for node in graph.node for output in node.output}
    rewired = 0
    for node in graph.node:
        producer = producers.get(node.input[0]) if node.op_type == "Shape" else None
        if producer is not None and producer.op_type == "DequantizeLinear":
            node.input[0] = producer.input[0]
            rewired += 1
    while True:  # then their scale/zero-point constants
        used = {name for node in graph.node for name in node.input} | {output.name for output in graph.output}
        unused = [node for node in graph.node
                  if node.op_type in ("DequantizeLinear", "Constant", "Cast") and node.output[0] not in used]
        if not unused:
            return rewired
        for node in unused:
            graph.node.remove(node)


def onnx_probabilities(path: str | os.PathLike, images: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Runs an exported model on the CPU: float32 (B,3,H,W) in [0,1] -> (B,1,H,W)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {INPUT_NAME: images.astype(np.float32)})[0]

