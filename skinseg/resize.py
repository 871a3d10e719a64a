"""How an image meets a square network input: the one definition training and inference share.

- `squash` stretches the image to size x size (the original's; the aspect ratio is not kept);
- `letterbox` scales the long side to `size`, keeps the aspect ratio and pads bottom/right
  with zeros (image black, mask not skin).

Interpolation differs on purpose: training (albumentations, `skinseg.data.transforms`)
shrinks images and masks with area averaging and enlarges them bilinearly, so masks stay
soft; inference (`skinseg.inference.processing.model_input`) resizes with Lanczos, as the
original's sessions did. `python -m skinseg.bench.resize` measures what that costs: with
the U²NetP shipped for issue 20 the two differ by at most 0.0034 mIoU@0.5 on any validation set (docs/inference.md).
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from skinseg.errors import UsageError

RESIZE_MODES = ("squash", "letterbox")
INTERPOLATIONS = ("lanczos", "area")  # inference's (the original's), training's (area down, bilinear up)


def check_resize_mode(mode: str, setting: str = "resize") -> str:
    """Returns `mode` if it is one of RESIZE_MODES.

    Raises:
        UsageError: another value; the message names `setting` and the valid modes.
    """
    if mode not in RESIZE_MODES:
        raise UsageError(f"{setting} must be one of {RESIZE_MODES}, got {mode!r}")
    return mode


def inner_size(height: int, width: int, size: int, mode: str) -> tuple[int, int]:
    """(height, width) of the image inside the size x size input: the whole input for squash."""
    if mode == "squash":
        return size, size
    scale = size / max(height, width)
    return max(1, min(size, round(height * scale))), max(1, min(size, round(width * scale)))


def resize_image(rgb: np.ndarray, height: int, width: int, interpolation: str = "lanczos") -> np.ndarray:
    """Resizes a uint8 (H,W,3) image to (height, width).

    Args:
        interpolation: "lanczos" (inference, the original's) or "area" (training's: area
            averaging when shrinking, bilinear when enlarging).
    """
    if interpolation == "lanczos":
        return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.LANCZOS))
    if interpolation == "area":
        shrink = height * width < rgb.shape[0] * rgb.shape[1]
        return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    raise UsageError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
