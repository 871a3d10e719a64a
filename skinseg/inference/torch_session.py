"""TorchSession: a trained checkpoint as an image -> mask function (PyTorch, CPU or GPU)."""

from __future__ import annotations

import os

import numpy as np
import torch

from skinseg.checkpoints import load_network
from skinseg.inference.processing import DEFAULT_UPSAMPLE, Predictor
from skinseg.models.head import ProbabilityHead


class TorchSession(Predictor):
    """Predicts skin masks with a skinseg checkpoint; the same API and processing as `Session`.

    The checkpoint's network is wrapped as its ONNX export is (`ProbabilityHead`: images
    in [0,1], the training mean/std inside, sigmoid probabilities out), and images go
    through the steps listed on `skinseg.inference.session.Session`. Defaults reproduce
    the checkpoint's training preprocessing: its input size and resize mode (squash or
    letterbox, from the run's config), no min-max rescaling, and the guided resize back
    that export.py writes into the ONNX metadata. So `Session` on the exported ONNX of a
    checkpoint, with `normalize="none"`, gives the same masks.
    Training resized with area/linear interpolation; both sessions use Lanczos as the
    original's Session did.

    Only the network is built (`skinseg.checkpoints.load_network`, no Lightning module);
    a QAT checkpoint runs its fake-quantized graph (int8 arithmetic simulated in float).

    Args:
        checkpoint: a skinseg/Lightning `.ckpt` file (loaded with `weights_only=True`).
        device: torch device for the network.
        size: network input side (default: the checkpoint's `input_size`).
        resize: "squash" or "letterbox" (default: the checkpoint's `resize_mode`).
        normalize: "none" (probabilities) or "minmax" (the original's rescaling).
        postprocess: the original's open + Gaussian clean-up.
        upsample: "guided" (edges follow the image's, `skinseg.inference.guided`) or
            "lanczos" (the original's resize back to the image's size).
        zoom, zoom_below: the small-skin pass (see `Predictor`; default none).

    Raises:
        FileNotFoundError: no file at checkpoint.
        ValueError: the file is not a skinseg checkpoint.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike,
        device: str = "cpu",
        size: int | None = None,
        resize: str | None = None,
        normalize: str = "none",
        postprocess: bool = False,
        upsample: str = DEFAULT_UPSAMPLE,
        zoom: float | None = None,
        zoom_below: float | None = None,
    ) -> None:
        trained = load_network(checkpoint)
        self.device = torch.device(device)
        head = ProbabilityHead(trained.net, trained.hparams.get("input_mean"), trained.hparams.get("input_std"))
        self.model = head.to(self.device).eval()
        self._configure(
            size or trained.hparams.get("input_size", 320), resize or trained.resize_mode, normalize, postprocess,
            upsample, zoom, zoom_below,
        )

    @torch.inference_mode()
    def run(self, images: np.ndarray) -> np.ndarray:
        """float32 images (B,3,H,W) in [0,1] -> probabilities float32 (B,1,H,W)."""
        batch = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(self.device)
        return self.model(batch).float().cpu().numpy()
