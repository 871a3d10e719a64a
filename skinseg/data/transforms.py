"""Resizing, geometric and colour augmentation as albumentations pipelines on uint8 arrays.

Images and masks are resized together: images with area interpolation when shrinking
(linear when enlarging), masks bilinearly so they stay soft, as the original trainer's
masks did. `squash` stretches to the square input size (the original); `letterbox`
keeps the aspect ratio and pads bottom/right with zeros (image black, mask not skin).

Training adds, each switchable: a random resized crop instead of the resize, flips,
quarter turns (90° or 270°), and the original's 26 colour/occlusion variants
(`augment="seed26"`, see `skinseg.augment.transforms`), applied at the network's resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from skinseg.augment.transforms import AUGMENTS, A, seed26  # A: albumentations, network check off
from skinseg.errors import UsageError
from skinseg.resize import check_resize_mode


class QuarterTurn(A.DualTransform):
    """Rotates image and mask by 90° or 270° (the original trainer's rotated_l/_r), exactly."""

    def get_params(self) -> dict:
        return {"turns": self.py_random.choice((1, 3))}

    def apply(self, img: np.ndarray, turns: int = 1, **params) -> np.ndarray:
        return np.ascontiguousarray(np.rot90(img, turns))

    def apply_to_mask(self, mask: np.ndarray, turns: int = 1, **params) -> np.ndarray:
        return np.ascontiguousarray(np.rot90(mask, turns))


def check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"data.{name} is a probability in [0, 1], got {value}")


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


def build_transform(
    image_size: int,
    resize_mode: str = "squash",
    train: bool = False,
    hflip: float = 0.0,
    vflip: float = 0.0,
    rotate90: float = 0.0,
    crop: float = 0.0,
    crop_scale: Sequence[float] = (0.25, 1.0),
    augment: str = "none",
    sepia: str = "rgb",
    lattice_reference: int | None = None,
) -> A.Compose:
    """The pipeline for one split; the random parts apply only when `train`.

    Args:
        image_size: side of the square network input.
        resize_mode: "squash" or "letterbox".
        train: add the random augmentations below.
        hflip: probability of a horizontal flip.
        vflip: probability of a vertical flip.
        rotate90: probability of a quarter turn (90° or 270°, equally likely).
        crop: probability of a random resized crop (area share `crop_scale`, aspect
            3:4 to 4:3) replacing the plain resize.
        crop_scale: (min, max) share of the image area a crop covers.
        augment: "none" or "seed26" (one of the original's 26 colour/occlusion
            variants, or none, per example).
        sepia: "rgb" (correct) or "bgr" (the original's bluish) sepia in seed26.
        lattice_reference: None draws lattices in pixels as the original; a size
            scales them with the input (see `LatticeOcclusion`).
    """
    if image_size < 16:
        raise UsageError(f"model.input_size must be >= 16, got {image_size}")
    if augment not in AUGMENTS:
        raise UsageError(f"data.augment must be one of {AUGMENTS}, got {augment!r}")
    for name, value in (("hflip", hflip), ("vflip", vflip), ("rotate90", rotate90), ("crop", crop)):
        check_probability(name, value)
    resize = resize_transforms(image_size, resize_mode)
    if not train:
        return A.Compose(resize)
    if crop > 0:
        low, high = crop_scale
        if not 0 < low <= high <= 1:
            raise UsageError(f"data.crop_scale must satisfy 0 < min <= max <= 1, got {list(crop_scale)}")
        cropper = A.RandomResizedCrop(
            (image_size, image_size),
            scale=(low, high),
            ratio=(3 / 4, 4 / 3),
            interpolation=cv2.INTER_LINEAR,
            mask_interpolation=cv2.INTER_LINEAR,
            area_for_downscale="image_mask",
            p=crop,
        )
        steps: list[A.BasicTransform] = [A.OneOf([cropper, A.Compose(resize, p=1.0 - crop)], p=1.0)]
    else:
        steps = resize
    if hflip > 0:
        steps.append(A.HorizontalFlip(p=hflip))
    if vflip > 0:
        steps.append(A.VerticalFlip(p=vflip))
    if rotate90 > 0:
        steps.append(QuarterTurn(p=rotate90))
    if augment == "seed26":
        steps.append(seed26(sepia, lattice_reference))
    return A.Compose(steps)
