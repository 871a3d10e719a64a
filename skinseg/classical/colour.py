"""Colour-rule methods: HSV and YCbCr boxes, axis-aligned and rotated CbCr ellipses.

All follow the original project's conventions: OpenCV 8-bit HSV (H 0-179 in 2° units,
S and V 0-255) and OpenCV YCrCb (0-255, chroma offset at 128), inclusive bounds.
Every rule is a region of a 2-D colour plane whose horizontal slices are intervals, so
it runs as two 256-entry lookups and two comparisons per pixel (OpenCV SIMD), well
under the cost of decoding the JPEG it runs on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from skinseg.classical.base import SkinMethod, register

# The original's fitted rotated ellipse (training-set IoU optimum; see skinseg.classical.fit).
DIAGONAL_ELLIPSE_TUNED = {
    "cb0": 119.31423371082059,
    "cr0": 155.55795465744077,
    "a": 37.089397631238135,
    "b": 14.80887169802648,
    "theta": 148.63290799558428,
}


def interval_mask(row_channel: np.ndarray, column_channel: np.ndarray, lows: np.ndarray, highs: np.ndarray) -> np.ndarray:
    """255 where lows[row] <= column <= highs[row], per pixel; uint8 (H,W).

    Args:
        row_channel: uint8 (H,W) indexing the 256-entry tables (e.g. Cr).
        column_channel: uint8 (H,W) compared with the looked-up bounds (e.g. Cb).
        lows, highs: uint8 (256,) inclusive bounds; lows > highs marks an empty row.
    """
    low = cv2.LUT(row_channel, lows)
    high = cv2.LUT(row_channel, highs)
    return cv2.bitwise_and(cv2.compare(column_channel, low, cv2.CMP_GE), cv2.compare(column_channel, high, cv2.CMP_LE))


def ellipse_intervals(cb0: float, cr0: float, a: float, b: float, theta_degrees: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Per Cr value, the inclusive Cb interval inside a (rotated) ellipse; uint8 (256,) x 2.

    The ellipse: x = Cb - cb0, y = Cr - cr0, x' = cos·x + sin·y, y' = -sin·x + cos·y,
    inside when (x'/a)² + (y'/b)² <= 1 (a positive angle turns x' towards Cr). Exact for
    integer Cb values, as the per-pixel test.
    """
    theta = math.radians(theta_degrees)
    cos, sin = math.cos(theta), math.sin(theta)
    cb = np.arange(256, dtype=np.float64)[None, :] - cb0
    cr = np.arange(256, dtype=np.float64)[:, None] - cr0
    inside = ((cos * cb + sin * cr) / a) ** 2 + ((-sin * cb + cos * cr) / b) ** 2 <= 1.0
    return table_intervals(inside)


def table_intervals(inside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(256 rows, 256 columns) bool table whose rows are intervals -> (lows, highs) uint8."""
    any_inside = inside.any(axis=1)
    lows = np.where(any_inside, inside.argmax(axis=1), 255).astype(np.uint8)
    highs = np.where(any_inside, 255 - inside[:, ::-1].argmax(axis=1), 0).astype(np.uint8)
    if not (inside.sum(axis=1) == np.where(any_inside, highs.astype(int) - lows + 1, 0)).all():
        raise ValueError("the region's rows are not intervals; use a full 2-D lookup instead")
    return lows, highs


def _channels(image: np.ndarray, code: int) -> tuple[np.ndarray, ...]:
    return cv2.split(cv2.cvtColor(image, code))


def _check_bounds(name: str, low: int, high: int, top: int) -> None:
    if not 0 <= low <= high <= top:
        raise ValueError(f"{name} bounds must satisfy 0 <= low <= high <= {top}, got ({low}, {high})")


@register("hsv")
class HSVRange(SkinMethod):
    """Box in OpenCV HSV: H 0-20, S 48-255, V 80-255 by default (the original's GUI defaults).

    The original's defaults used a 1-pixel structuring element (no morphology) and a
    3x3 Gaussian blur; both are the defaults here.
    """

    default_kernel_size = 1

    def __init__(
        self,
        hue: Sequence[int] = (0, 20),
        saturation: Sequence[int] = (48, 255),
        value: Sequence[int] = (80, 255),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        _check_bounds("hue", *hue, top=179)
        _check_bounds("saturation", *saturation, top=255)
        _check_bounds("value", *value, top=255)
        self.hue, self.saturation, self.value = tuple(hue), tuple(saturation), tuple(value)

    def raw_mask(self, image: np.ndarray) -> np.ndarray:
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
        low = np.array([self.hue[0], self.saturation[0], self.value[0]], np.uint8)
        high = np.array([self.hue[1], self.saturation[1], self.value[1]], np.uint8)
        return cv2.inRange(hsv, low, high)


@register("ycbcr")
class YCbCrRange(SkinMethod):
    """Box in the CbCr plane: Cb 85-135, Cr 137-180, any Y (the original's defaults)."""

    def __init__(self, cb: Sequence[int] = (85, 135), cr: Sequence[int] = (137, 180), **kwargs) -> None:
        super().__init__(**kwargs)
        _check_bounds("cb", *cb, top=255)
        _check_bounds("cr", *cr, top=255)
        self.cb, self.cr = tuple(cb), tuple(cr)

    def raw_mask(self, image: np.ndarray) -> np.ndarray:
        ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
        return cv2.inRange(ycrcb, np.array([0, self.cr[0], self.cb[0]], np.uint8),
                           np.array([255, self.cr[1], self.cb[1]], np.uint8))


@register("hsv_ycbcr")
class HSVAndYCbCr(SkinMethod):
    """Skin where both the HSV and the YCbCr boxes say skin (the original's "YCbCr & HSV" row,
    which had no code; the intersection is the reading that narrows both rules)."""

    def __init__(self, hsv: dict | None = None, ycbcr: dict | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.hsv = HSVRange(postprocess=False, **(hsv or {}))
        self.ycbcr = YCbCrRange(postprocess=False, **(ycbcr or {}))

    def raw_mask(self, image: np.ndarray) -> np.ndarray:
        return cv2.bitwise_and(self.hsv.raw_mask(image), self.ycbcr.raw_mask(image))

    def config(self) -> dict:
        return {**super().config(), "hsv": self.hsv.config(), "ycbcr": self.ycbcr.config()}


class CbCrRegion(SkinMethod):
    """A region of the CbCr plane given by per-Cr Cb intervals (see `interval_mask`)."""

    lows: np.ndarray
    highs: np.ndarray

    def raw_mask(self, image: np.ndarray) -> np.ndarray:
        _, cr, cb = _channels(image, cv2.COLOR_RGB2YCrCb)
        return interval_mask(cr, cb, self.lows, self.highs)

    def plane(self, luma: int = 192) -> np.ndarray:
        """The region drawn on the 256x256 CbCr plane (rows Cr, columns Cb): `luma` inside, 0 out."""
        cb = np.tile(np.arange(256, dtype=np.uint8), (256, 1))
        cr = cb.T.copy()
        return (interval_mask(cr, cb, self.lows, self.highs) > 0).astype(np.uint8) * luma

    def config(self) -> dict:
        return {k: v for k, v in super().config().items() if k not in ("lows", "highs")}


@register("ellipse")
class CbCrEllipse(CbCrRegion):
    """Axis-aligned CbCr ellipse: centre (109.38, 152.02), semi-axes 13.64 (Cb) and 15.38 (Cr)."""

    def __init__(self, cb0: float = 109.38, cr0: float = 152.02, a: float = 13.64, b: float = 15.38, **kwargs):
        super().__init__(**kwargs)
        if a <= 0 or b <= 0:
            raise ValueError(f"ellipse semi-axes must be > 0, got a={a}, b={b}")
        self.cb0, self.cr0, self.a, self.b = cb0, cr0, a, b
        self.lows, self.highs = ellipse_intervals(cb0, cr0, a, b)


@register("diag_ellipse")
class DiagonalCbCrEllipse(CbCrRegion):
    """Rotated CbCr ellipse; defaults: the original's parameters fitted on its training set.

    Refit on your data with `python -m skinseg.classical.fit ellipse DATA...` and pass the
    JSON it writes as `params=PATH` (or the five numbers).
    """

    def __init__(
        self,
        cb0: float = DIAGONAL_ELLIPSE_TUNED["cb0"],
        cr0: float = DIAGONAL_ELLIPSE_TUNED["cr0"],
        a: float = DIAGONAL_ELLIPSE_TUNED["a"],
        b: float = DIAGONAL_ELLIPSE_TUNED["b"],
        theta: float = DIAGONAL_ELLIPSE_TUNED["theta"],
        params: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if params is not None:
            from skinseg.classical.storage import load_params

            fitted = load_params(params, kind="ellipse")
            cb0, cr0, a, b, theta = (fitted[key] for key in ("cb0", "cr0", "a", "b", "theta"))
        if a <= 0 or b <= 0:
            raise ValueError(f"ellipse semi-axes must be > 0, got a={a}, b={b}")
        self.cb0, self.cr0, self.a, self.b, self.theta = cb0, cr0, a, b, theta
        self.lows, self.highs = ellipse_intervals(cb0, cr0, a, b, theta)
