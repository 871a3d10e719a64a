"""One way to get a predictor for any model: `create_predictor(spec)`.

A spec is a `.onnx` file (`Session`, ONNX Runtime), a `.ckpt` file (`TorchSession`), a
classical method's name (`skinseg.classical`), or None for the shipped model. predict,
evaluate.py, the figures and the export checks all get their predictors here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from skinseg.errors import UsageError
from skinseg.inference.processing import Predictor, post_process


class Model(NamedTuple):
    """A mask function, what it runs (for progress lines and summaries), and the network's session.

    Attributes:
        predict: RGB uint8 (H,W,3) -> uint8 (H,W) mask, with the options given.
        description: the model in words.
        session: the `Session`/`TorchSession` behind `predict` (None for a classical method).
    """

    predict: Callable[[np.ndarray], np.ndarray]
    description: str
    session: Predictor | None = None


def create_predictor(
    model: str | os.PathLike | None = None,
    size: int | None = None,
    letterbox: bool = False,
    normalize: str | None = None,
    postprocess: bool = False,
    threads: int | None = None,
    tile: int | None = None,
    overlap: int = 0,
    precision: str = "auto",
    upsample: str | None = None,
    zoom: float | None = None,
    zoom_below: float | None = None,
) -> Model:
    """An RGB uint8 (H,W,3) -> uint8 (H,W) mask function for any model skinseg runs.

    Args:
        model: a .onnx file (Session), a .ckpt file (TorchSession), a classical method name,
            or None: the shipped skin segmenter.
        size, letterbox, normalize, threads, tile, overlap, upsample, zoom, zoom_below: network
            options (None: the model's; zoom: the small-skin pass, see `Predictor`).
        postprocess: open + Gaussian clean-up.
        precision: the shipped model's file, "auto", "fp32" or "int8" (see `Session`).

    Raises:
        UsageError: neither an existing .onnx/.ckpt file nor a classical method name,
            network options for a classical method, or a precision for another model.
    """
    from skinseg.classical import METHODS

    if model is not None and precision != "auto":
        raise UsageError(f"--precision {precision} picks the shipped model's file; not for --model {model}")
    options = {"size": size, "resize": "letterbox" if letterbox else None, "postprocess": postprocess}
    if normalize:
        options["normalize"] = normalize
    if upsample:
        options["upsample"] = upsample
    if zoom is not None:
        options["zoom"] = zoom
    if zoom_below is not None:
        options["zoom_below"] = zoom_below
    path = Path(model) if model is not None else None
    if path is None or (path.suffix == ".onnx" and path.is_file()):
        from skinseg.inference.session import Session

        try:
            session = Session(path, threads=threads, precision=precision, **options)
        except FileNotFoundError as error:  # no shipped model in this copy of the package
            raise UsageError(str(error)) from None
        return Model(lambda rgb: session.predict(rgb, tile=tile, overlap=overlap), session.description, session)
    if path.suffix == ".ckpt" and path.is_file():
        import torch

        from skinseg.hardware import default_threads
        from skinseg.inference.torch_session import TorchSession

        torch.set_num_threads(threads or default_threads())
        session = TorchSession(path, **options)
        return Model(lambda rgb: session.predict(rgb, tile=tile, overlap=overlap), str(path), session)
    if model in METHODS:
        from skinseg.classical import create_method

        network_options = {"tile": tile, "size": size, "letterbox": letterbox, "normalize": normalize,
                           "threads": threads, "upsample": upsample, "zoom": zoom, "zoom_below": zoom_below}
        given = [f"--{flag}" for flag, value in network_options.items() if value]
        if given:
            raise UsageError(f"{', '.join(given)}: for .onnx/.ckpt models, not method {model!r}")
        method = create_method(model)
        function = (lambda rgb: post_process(method.predict(rgb))) if postprocess else method.predict
        return Model(function, f"classical method {model}")
    if path.suffix in (".onnx", ".ckpt"):
        reason = f"{path}: no such file"
    else:
        reason = f"{model!r}: no .onnx/.ckpt file"
    raise UsageError(f"--model {reason}, and not a classical method; methods: {', '.join(sorted(METHODS))}")
