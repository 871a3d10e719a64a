"""Inference: run trained models on images (TorchSession for checkpoints).

`TorchSession` imports torch when used; this package itself imports nothing heavy.
"""

from importlib import import_module

_EXPORTS = {"TorchSession": "skinseg.inference.torch_session"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'skinseg.inference' has no attribute {name!r}")
