"""Inference: run exported models (Session, ONNX Runtime) and checkpoints (TorchSession) on images;
`create_predictor(spec)` gives a predictor for any model (.onnx, .ckpt, classical name, shipped).

Names are imported on first use: `Session` and `predict_tiled` need only onnxruntime,
numpy, Pillow and OpenCV; `TorchSession` imports torch. This package itself imports
nothing heavy.
"""

from skinseg.lazy import lazy_getattr

_EXPORTS = {
    "Model": "skinseg.inference.factory",
    "create_predictor": "skinseg.inference.factory",
    "Session": "skinseg.inference.session",
    "TorchSession": "skinseg.inference.torch_session",
    "predict_tiled": "skinseg.inference.tiling",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr("skinseg.inference", _EXPORTS)
