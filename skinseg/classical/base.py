"""The interface every classical skin method implements, its registry, and post-processing.

A method maps an RGB uint8 image (H,W,3) to a skin mask. `predict` gives the mask on the
0-255 scale as uint8 (what the original's methods wrote and what evaluation scores, so
soft edges count); calling the method gives the float probability (H,W) in [0,1].
Methods need only numpy and OpenCV (no torch).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import cv2
import numpy as np

from skinseg.registry import Registry

METHODS = Registry("classical method", names_classes=True)
register = METHODS.register  # class decorator: a method available by name to `create_method` and evaluate.py
create_method = METHODS.create  # builds a registered method by name; an unknown name lists the valid ones


def postprocess(mask: np.ndarray, kernel_size: int = 3, blur_size: int = 3, iterations: int = 2) -> np.ndarray:
    """The original's clean-up: erode x2 then dilate x2 (elliptical kernel), then Gaussian blur.

    Args:
        mask: uint8 (H,W) on 0-255.
        kernel_size: side of the elliptical structuring element; <= 1 skips the morphology
            (the original's HSV and face methods used a 1-pixel kernel, i.e. none).
        blur_size: odd Gaussian kernel side (sigma from the size, as OpenCV's 0); <= 1 skips it.
        iterations: erosions, then as many dilations.

    Returns:
        uint8 (H,W), slightly soft after the blur.
    """
    if kernel_size > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel_size, kernel_size))
        mask = cv2.erode(mask, kernel, iterations=iterations)
        mask = cv2.dilate(mask, kernel, iterations=iterations)
    if blur_size > 1:
        mask = cv2.GaussianBlur(mask, (blur_size, blur_size), 0)
    return mask


def check_image(image: np.ndarray) -> np.ndarray:
    """Accepts RGB uint8 (H,W,3); raises a clear ValueError otherwise."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"classical methods take RGB uint8 images (H,W,3); got {got} (use skinseg.data.read_image)")
    return image


class SkinMethod(ABC):
    """Base class: subclasses implement `raw_mask`; post-processing is a per-method option.

    Args:
        postprocess: apply the original's erode/dilate/blur clean-up to the raw mask.
        kernel_size: structuring-element side of the clean-up (class default: the original's).
        blur_size: Gaussian kernel side of the clean-up (class default: the original's).
    """

    name: ClassVar[str] = ""
    default_kernel_size: ClassVar[int] = 3
    default_blur_size: ClassVar[int] = 3

    def __init__(self, postprocess: bool = True, kernel_size: int | None = None, blur_size: int | None = None):
        self.postprocess = postprocess
        self.kernel_size = self.default_kernel_size if kernel_size is None else kernel_size
        self.blur_size = self.default_blur_size if blur_size is None else blur_size

    @abstractmethod
    def raw_mask(self, image: np.ndarray) -> np.ndarray:
        """RGB uint8 (H,W,3) -> uint8 (H,W) skin mask on 0-255, before post-processing."""

    def predict(self, image: np.ndarray) -> np.ndarray:
        """RGB uint8 (H,W,3) -> uint8 (H,W) skin mask on 0-255 (post-processed if enabled)."""
        mask = self.raw_mask(check_image(image))
        if self.postprocess:
            mask = postprocess(mask, self.kernel_size, self.blur_size)
        return mask

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """RGB uint8 (H,W,3) -> float32 (H,W) skin probability in [0,1]."""
        return self.predict(image).astype(np.float32) / 255.0

    def config(self) -> dict[str, Any]:
        """The settings that determine the output (for caches and tables)."""
        return {key: value for key, value in vars(self).items() if not key.startswith("_")}
