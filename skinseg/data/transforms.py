"""Resizing, and the training steps of `data.augment`, as albumentations pipelines on uint8 arrays.

Images and masks are resized together: images with area interpolation when shrinking
(linear when enlarging), masks bilinearly so they stay soft, as the original trainer's
masks did. `squash` stretches to the square input size (the original); `letterbox`
keeps the aspect ratio and pads bottom/right with zeros (image black, mask not skin).

Training adds the albumentations steps of `skinseg.augment.pipeline` (a random resized crop
instead of the resize, flips, quarter turns, the original's 26 variants) at the network's
resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2

from skinseg.augment.pipeline import AlbumentationsStep, Step
from skinseg.augment.transforms import A  # albumentations, network check off
from skinseg.errors import UsageError
from skinseg.resize import check_resize_mode


def resize_transforms(image_size: int, resize_mode: str) -> list[A.BasicTransform]:
    """Transforms that bring any image/mask pair to (image_size, image_size) (see `skinseg.resize`)."""
    if check_resize_mode(resize_mode, "model.resize_mode") == "squash":
        return [
            A.Resize(
                image_size,
                image_size,
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_LINEAR,
                area_for_downscale="image_mask",
            )
        ]
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


def build_transform(image_size: int, resize_mode: str = "squash", steps: Sequence[Step] = ()) -> A.Compose:
    """The resize to (image_size, image_size), extended by the albumentations steps among `steps`.

    Args:
        image_size: side of the square network input.
        resize_mode: "squash" or "letterbox".
        steps: training steps (`skinseg.augment.pipeline.build_steps`); none for validation.
    """
    if image_size < 16:
        raise UsageError(f"model.input_size must be >= 16, got {image_size}")
    pipeline = resize_transforms(image_size, resize_mode)
    for step in steps:
        if isinstance(step, AlbumentationsStep):
            pipeline = step.extend(pipeline, image_size)
    return A.Compose(pipeline)
