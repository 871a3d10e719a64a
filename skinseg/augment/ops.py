"""The original's colour and occlusion augmentations as functional ops on uint8 RGB arrays (numpy, OpenCV).

- hue rotation, saturation scaling, contrast/brightness, sepia (correct RGB, or the
  original's channel-swapped, bluish one on request);
- lattices of thin dark lines drawn over image and mask (fishnets, bracelets, watches).

`skinseg.augment.transforms` wraps them as albumentations transforms and names the 26
variants; `skinseg.augment.materialise` writes them offline.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# Sepia matrix for RGB (rows give R', G', B' from R, G, B).
SEPIA = np.array(
    [[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], dtype=np.float32
)
SEPIA_VARIANTS = ("rgb", "bgr")


def rotate_hue(image: np.ndarray, degrees: float) -> np.ndarray:
    """Rotates the hue by `degrees` in OpenCV's 8-bit HSV (H in 2° units); keeps S and V."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    shift = int(round(degrees / 2.0)) % 180
    hue = hsv[..., 0].astype(np.int16) + shift
    hsv[..., 0] = (hue % 180).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def scale_saturation(image: np.ndarray, factor: float) -> np.ndarray:
    """Multiplies HSV saturation by `factor` (clipped at 255, truncated, as the original)."""
    if factor < 0:
        raise ValueError(f"saturation factor must be >= 0, got {factor}")
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    hsv[..., 1] = np.minimum(hsv[..., 1].astype(np.float32) * factor, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def contrast_brightness(image: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """|alpha·x + beta|, saturated to uint8 (OpenCV's convertScaleAbs)."""
    return cv2.convertScaleAbs(image, alpha=alpha, beta=beta)


def sepia_matrix(strength: float, original_bug: bool = False) -> np.ndarray:
    """k·SEPIA + (1-k)·I; k > 1 extrapolates.

    With `original_bug`, entry (3,1) uses 0.349 instead of 0.272 in its (1-k) term, as
    the original's code did (so at k = 0 it is -0.077, not 0).
    """
    matrix = strength * SEPIA + (1.0 - strength) * np.eye(3, dtype=np.float32)
    if original_bug:
        matrix[2, 0] -= (1.0 - strength) * (0.349 - 0.272)
    return matrix


def sepia(image: np.ndarray, strength: float, variant: str = "rgb", original_bug: bool = False) -> np.ndarray:
    """Blends towards sepia tone by `strength`, saturated to uint8.

    `variant="rgb"` is the correct sepia. `variant="bgr"` applies the matrix to the
    channels in reverse order, as the original did on OpenCV's BGR images: the "red"
    row lands on blue, giving its bluish tint.
    """
    if variant not in SEPIA_VARIANTS:
        raise ValueError(f"sepia variant must be one of {SEPIA_VARIANTS}, got {variant!r}")
    matrix = sepia_matrix(strength, original_bug)
    pixels = image[..., ::-1] if variant == "bgr" else image
    out = cv2.transform(np.ascontiguousarray(pixels), matrix)  # saturating
    return np.ascontiguousarray(out[..., ::-1]) if variant == "bgr" else out


def draw_lattice(
    height: int,
    width: int,
    rng: np.random.Generator,
    spacing: float = 20.0,
    jitter: float = 3.0,
    line_width: float = 2.0,
    max_rotation: int = 90,
) -> np.ndarray:
    """A rotated grid of jittered lines, anti-aliased: uint8 (H,W), 255 on the lines.

    Vertical and horizontal lines every `spacing` px, each moved by up to ±`jitter` px,
    `line_width` px wide, the whole grid rotated by a random integer angle in
    [0, max_rotation] degrees about the image centre.
    """
    if spacing <= 2 * jitter:
        raise ValueError(f"lattice spacing ({spacing}) must exceed twice the jitter ({jitter})")
    angle = math.radians(int(rng.integers(0, max_rotation + 1)))
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    xx -= (width - 1) / 2
    yy -= (height - 1) / 2
    cos, sin = math.cos(angle), math.sin(angle)
    half_diagonal = math.hypot(height, width) / 2 + spacing
    count = int(math.ceil(half_diagonal / spacing)) + 1
    coverage = np.zeros((height, width), np.float32)
    for u in (cos * xx + sin * yy, -sin * xx + cos * yy):  # distance along each grid axis
        offsets = rng.uniform(-jitter, jitter, 2 * count + 1).astype(np.float32)
        nearest = np.clip(np.rint(u / spacing).astype(np.int32), -count, count)
        for neighbour in (-1, 0, 1):  # jitter < spacing/2: the closest line is one of these
            index = np.clip(nearest + neighbour, -count, count)
            distance = np.abs(u - (index * spacing + offsets[index + count]))
            np.maximum(coverage, np.clip(line_width / 2 + 0.5 - distance, 0, 1), out=coverage)
    return np.rint(coverage * 255).astype(np.uint8)


def occlude_with_lattice(
    image: np.ndarray, mask: np.ndarray, lattice: np.ndarray, start_row: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Draws the lattice (dark) on skin only, and removes it from the mask.

    The lattice is limited to the mask (min of both, the original's AND for 0/255 masks)
    and to rows >= start_row; it is subtracted, saturating, from every image channel
    and from the mask.
    """
    lines = np.minimum(lattice, mask)
    if start_row > 0:
        lines[:start_row] = 0
    return cv2.subtract(image, cv2.merge([lines] * 3)), cv2.subtract(mask, lines)
