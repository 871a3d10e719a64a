"""`skinseg export [export|ship|flops] ...`: `python export.py`."""

from __future__ import annotations

from collections.abc import Sequence

SUMMARY = "export a checkpoint to ONNX (fp32, int8), ship it as the default model, count FLOPs"


def run(arguments: Sequence[str]) -> int:
    from skinseg.export.cli import main

    return main(arguments)
