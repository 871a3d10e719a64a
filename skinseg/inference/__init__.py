"""Inference: run exported models (Session, ONNX Runtime) and checkpoints (TorchSession) on images.

Names are imported on first use: `Session` and `predict_tiled` need only onnxruntime,
numpy, Pillow and OpenCV; `TorchSession` imports torch. This package itself imports
nothing heavy.
"""

from importlib import import_module

_EXPORTS = {
    "Session": "skinseg.inference.session",
    "TorchSession": "skinseg.inference.torch_session",
    "predict_tiled": "skinseg.inference.tiling",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'skinseg.inference' has no attribute {name!r}")
