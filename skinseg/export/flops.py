"""FLOP and parameter tables with fvcore: `python export.py flops [--models ... --sizes ...]`.

fvcore counts one multiply-add as one FLOP. The original's figures (U²Net 604.007 GFLOPs
at 1024, U²NetP 51.271 at 512 and 205.082 at 1024, DLMV 2.473 at 256) are reproduced
exactly with the U²Nets counted in training mode, where fvcore counts batch norm as 5
FLOPs per element instead of 2, and DLMV in inference mode; the table says which mode
each row used. Other rows default to inference mode (U²NetP 50.946 at 512), the cost
of running the model. Training mode runs a batch of 2 (batch norm needs more than one
value per channel) and reports per image.

BiRefNet_lite's deformable convolutions are counted (on the CPU they run as sampling plus
one matrix product, which fvcore sees); `count_deformable=False` runs torchvision's
`deform_conv2d` instead, an op fvcore leaves uncounted, as the original's BiRefNet_lite
figures did (459.244 GFLOPs at 1440 against its 459.547).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from skinseg.errors import UsageError
from skinseg.files import write_text
from skinseg.models import create_model

# (model, input size, fvcore mode) rows of the original's FLOP table
REFERENCE_ROWS = (("u2net", 1024, "train"), ("u2netp", 512, "train"), ("u2netp", 1024, "train"), ("dlmv", 256, "eval"))


def count_gflops(
    name: str, size: int, mode: str = "train", count_deformable: bool = True, **model_kwargs
) -> tuple[float, int]:
    """(GFLOPs per image, parameters) of a registered model on a size x size input."""
    from fvcore.nn import FlopCountAnalysis

    from skinseg.models.birefnet_lite import DeformableConv2d

    if mode not in ("train", "eval"):
        raise UsageError(f"mode must be 'train' or 'eval', got {mode!r}")
    model = create_model(name, **model_kwargs).train(mode == "train")
    for module in model.modules():
        if isinstance(module, DeformableConv2d):
            module.sampled_on_cpu = count_deformable
    batch = 2 if mode == "train" else 1
    logging.getLogger("fvcore").setLevel(logging.ERROR)  # per-op "unsupported" notes (sigmoid, add, ...)
    analysis = FlopCountAnalysis(model, torch.rand(batch, 3, size, size))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    with torch.no_grad():
        total = analysis.total()
    return total / batch / 1e9, sum(p.numel() for p in model.parameters())


def flops_table(rows: Iterable[tuple[str, int, str]], count_deformable: bool = True) -> list[dict]:
    """One dict per (model, size, mode) row: model, size, mode, gflops, params, deformable_uncounted."""
    table = []
    for name, size, mode in rows:
        gflops, params = count_gflops(name, size, mode, count_deformable)
        table.append({"model": name, "size": size, "mode": mode, "gflops": gflops, "params": params,
                      "deformable_uncounted": not count_deformable and name == "birefnet_lite"})
    return table


def markdown(table: Sequence[dict]) -> str:
    lines = ["| model | input | GFLOPs (fvcore) | counted in | parameters |", "|---|---:|---:|---|---:|"]
    lines += [
        f"| {r['model']} | {r['size']} | {r['gflops']:.3f} | {r['mode']} mode"
        f"{', deformable convs uncounted' if r['deformable_uncounted'] else ''} | {r['params']:,} |"
        for r in table
    ]
    return "\n".join(lines)


def write_flops(table: Sequence[dict], path: str | os.PathLike) -> Path:
    """Writes the table as Markdown (atomically); returns the path."""
    return write_text(path, markdown(table) + "\n")
