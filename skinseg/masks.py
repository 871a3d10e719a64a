"""Combining uint8 0-255 masks: saturated subtraction, union and intersection.

Example, the original README's hair segmentation: a person mask from any human or
salient-object model, minus the skin mask, leaves hair and clothes; minus a clothes
mask as well, hair alone (clip at 0, never wrap around)::

    from skinseg.inference import Session
    from skinseg.masks import subtract, union

    skin = Session("u2netp.onnx").predict("photo.jpg")          # uint8 (H,W)
    person = human_model("photo.jpg")                            # uint8 (H,W), any model
    hair_and_clothes = subtract(person, skin)
    hair = subtract(person, union(skin, clothes_model("photo.jpg")))
"""

from __future__ import annotations

import numpy as np


def _check(*masks: np.ndarray) -> None:
    for mask in masks:
        if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8 or mask.ndim != 2:
            got = f"{mask.dtype} {mask.shape}" if isinstance(mask, np.ndarray) else type(mask).__name__
            raise ValueError(f"masks must be uint8 (H,W) arrays, got {got}")
        if mask.shape != masks[0].shape:
            raise ValueError(f"masks differ in size: {masks[0].shape} vs {mask.shape}")


def subtract(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Saturated a - b of uint8 (H,W) masks: max(a - b, 0), e.g. person - skin = hair + clothes."""
    _check(a, b)
    return a - np.minimum(a, b)


def union(first: np.ndarray, *others: np.ndarray) -> np.ndarray:
    """Pixel-wise maximum of uint8 (H,W) masks (fuzzy OR)."""
    _check(first, *others)
    return np.maximum.reduce([first, *others]) if others else first.copy()


def intersection(first: np.ndarray, *others: np.ndarray) -> np.ndarray:
    """Pixel-wise minimum of uint8 (H,W) masks (fuzzy AND)."""
    _check(first, *others)
    return np.minimum.reduce([first, *others]) if others else first.copy()
