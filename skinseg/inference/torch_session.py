"""TorchSession: a trained checkpoint as an image -> mask function (PyTorch, CPU or GPU)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch

from skinseg.data.transforms import resize_transforms
from skinseg.module import SkinSegModule


class TorchSession:
    """Predicts skin masks with a skinseg checkpoint, preprocessing as in its training.

    Pre-processing: resize to the checkpoint's input size with its resize mode (squash or
    letterbox, from the run's config), scale to [0,1] (and normalise if the model was
    trained so). Post-processing: sigmoid, undo the letterbox padding, bilinear resize to
    the input's size, x255 rounded to uint8.

    Args:
        checkpoint: a skinseg/Lightning `.ckpt` file (loaded with `weights_only=True`).
        device: torch device for the model.
        input_size: override the checkpoint's input size.
    """

    def __init__(self, checkpoint: str | os.PathLike, device: str = "cpu", input_size: int | None = None) -> None:
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} not found")
        self.module = SkinSegModule.load_from_checkpoint(path, map_location=device, weights_only=True).eval()
        state = torch.load(path, map_location="cpu", weights_only=True).get("skinseg", {})
        data_config = (state.get("config") or {}).get("data", {})
        self.resize_mode = data_config.get("resize_mode", "squash")
        self.input_size = int(input_size or self.module.hparams.input_size)
        self.device = torch.device(device)
        self.resize = resize_transforms(self.input_size, self.resize_mode)[0]  # Resize or LongestMaxSize

    @torch.inference_mode()
    def predict(self, image: np.ndarray) -> np.ndarray:
        """RGB uint8 (H,W,3) -> uint8 (H,W) skin mask on 0-255."""
        height, width = image.shape[:2]
        resized = self.resize(image=image)["image"]
        inner_h, inner_w = resized.shape[:2]
        canvas = np.zeros((self.input_size, self.input_size, 3), np.uint8)
        canvas[:inner_h, :inner_w] = resized  # letterbox pads bottom/right, as in training
        batch = torch.from_numpy(canvas).permute(2, 0, 1)[None].to(self.device)
        logits = self.module(batch)
        probability = torch.sigmoid(logits.float())[0, 0, :inner_h, :inner_w].cpu().numpy()
        probability = cv2.resize(probability, (width, height), interpolation=cv2.INTER_LINEAR)
        return np.clip(np.rint(probability * 255), 0, 255).astype(np.uint8)
