"""Resizing and geometric augmentation as albumentations pipelines on uint8 arrays.

Images and masks are resized together: images with area interpolation when shrinking
(linear when enlarging), masks bilinearly so they stay soft, as the original trainer's
masks did. `squash` stretches to the square input size (the original); `letterbox`
keeps the aspect ratio and pads bottom/right with zeros (image black, mask not skin).
"""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no version check over the network

import albumentations as A  # noqa: E402
import cv2  # noqa: E402

RESIZE_MODES = ("squash", "letterbox")


def resize_transforms(image_size: int, resize_mode: str) -> list[A.BasicTransform]:
    """Transforms that bring any image/mask pair to (image_size, image_size)."""
    if resize_mode == "squash":
        return [
            A.Resize(
                image_size,
                image_size,
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_LINEAR,
                area_for_downscale="image_mask",
            )
        ]
    if resize_mode == "letterbox":
        return [
            A.LongestMaxSize(
                max_size=image_size,
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_LINEAR,
                area_for_downscale="image_mask",
            ),
            A.PadIfNeeded(
                image_size,
                image_size,
                position="top_left",
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                fill_mask=0,
            ),
        ]
    raise ValueError(f"data.resize_mode must be one of {RESIZE_MODES}, got {resize_mode!r}")


def build_transform(
    image_size: int,
    resize_mode: str = "squash",
    train: bool = False,
    hflip: float = 0.0,
    vflip: float = 0.0,
) -> A.Compose:
    """The pipeline for one split.

    Args:
        image_size: side of the square network input.
        resize_mode: "squash" or "letterbox".
        train: add the random geometric augmentations below.
        hflip: probability of a horizontal flip (training only).
        vflip: probability of a vertical flip (training only).
    """
    if image_size < 16:
        raise ValueError(f"data.image_size must be >= 16, got {image_size}")
    steps = resize_transforms(image_size, resize_mode)
    if train:
        for probability, flip in ((hflip, A.HorizontalFlip), (vflip, A.VerticalFlip)):
            if not 0.0 <= probability <= 1.0:
                raise ValueError(f"flip probabilities must be in [0, 1], got {probability}")
            if probability > 0:
                steps.append(flip(p=probability))
    return A.Compose(steps)
