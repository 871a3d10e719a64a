"""Procedurally generated demo dataset for human skin segmentation.

The demo data lets the project train out of the box without any real data. Each sample is a
synthetic photo with 0-3 body parts (faces, arms, hands) in a wide range of skin tones over
cluttered backgrounds, with occluders (hair, clothing, straps, watches, lattices) and
skin-coloured hard negatives (wood, cardboard, tiles, fruit), so that a network has to use
colour, texture and shape.

Everything is drawn with vectorised numpy/OpenCV at twice the target resolution and
area-downsampled; the mask is the supersampled skin coverage thresholded at 0.5, so image and
mask align pixel for pixel. Colours are planar: a colour is a float32 (3, 1, 1) array in [0, 1]
and a colour field a (3, h, w) array, which keeps numpy's inner loops long.
"""

from __future__ import annotations

import colorsys
import contextlib
import hashlib
import json
import math
import os
import pathlib
import shutil
from typing import NamedTuple

import cv2
import numpy as np

from skinseg.errors import OutputExistsError

DEMO_VERSION = 1

_SUPERSAMPLE = 2
_EMPTY_PROB = 0.1
_MARKER = ".complete"


def _palette(rows: list[tuple[float, float, float]], scale: float = 1.0) -> np.ndarray:
    return (np.array(rows, np.float32) / scale).reshape(-1, 3, 1, 1)


# Skin tones from very light to very dark (sRGB); a tone is interpolated between neighbours.
_SKIN_PALETTE = _palette(
    [
        (255, 226, 206),
        (241, 200, 175),
        (228, 180, 150),
        (210, 155, 120),
        (188, 130, 95),
        (160, 105, 72),
        (128, 82, 56),
        (98, 62, 42),
        (70, 45, 32),
        (48, 32, 24),
    ],
    255.0,
)
# Shadows on skin turn redder (subsurface scattering): per-channel gain scaled by the shadow depth.
_SKIN_SHADOW_TINT = _palette([(0.15, 0.0, -0.12)])[0]
_HAIR_COLOURS = _palette(
    [
        (0.04, 0.035, 0.03),
        (0.16, 0.1, 0.06),
        (0.32, 0.2, 0.11),
        (0.72, 0.56, 0.32),
        (0.5, 0.2, 0.08),
        (0.62, 0.62, 0.6),
    ]
)
_HAIR_PROBS = (0.35, 0.25, 0.15, 0.1, 0.07, 0.08)
_IRIS_COLOURS = _palette([(0.3, 0.18, 0.1), (0.12, 0.08, 0.06), (0.3, 0.45, 0.6), (0.3, 0.4, 0.25)])
_BAND_COLOURS = _palette([(0.05, 0.05, 0.06), (0.7, 0.71, 0.74), (0.8, 0.62, 0.25), (0.35, 0.2, 0.1)])
_EYE_WHITE = _palette([(0.9, 0.88, 0.84)])[0]
_LIPS = _palette([(0.82, 0.52, 0.52)])[0]


class _Patch(NamedTuple):
    """Per-pixel geometry of one shape inside a window of the canvas.

    ``u`` runs across the shape and ``v`` along it, both in canvas pixels; ``normal`` is the
    (3, h, w) unit surface normal used for shading.
    """

    y0: int
    x0: int
    inside: np.ndarray
    normal: np.ndarray
    u: np.ndarray
    v: np.ndarray


class _Light(NamedTuple):
    direction: np.ndarray
    half: np.ndarray
    ambient: float
    specular: float


class _Canvas:
    """Supersampled planar RGB image (3, H, W) plus the boolean skin layer painted alongside it."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self.skin = np.zeros(image.shape[1:], bool)

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[2]

    def paint(
        self, patch: _Patch | None, colour: np.ndarray, skin: bool, where: np.ndarray | None = None
    ) -> None:
        """Paints a colour or colour field over the patch and sets the skin label there."""
        if patch is None:
            return
        inside = patch.inside if where is None else patch.inside & where
        h, w = inside.shape
        window = (slice(patch.y0, patch.y0 + h), slice(patch.x0, patch.x0 + w))
        mask = inside.view(np.uint8)
        for channel, plane in zip(self.image, np.broadcast_to(colour, (3, h, w))):
            # Writes into the view in place, as sizes and types match (and is much faster than np.copyto).
            cv2.copyTo(np.ascontiguousarray(plane, np.float32), mask, channel[window])
        labels = self.skin[window]
        if skin:
            labels |= inside
        else:
            labels &= ~inside


def _select(mask: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a`` where ``mask`` else ``b``, for colours or colour fields (arithmetic beats np.where here)."""
    return b + (a - b) * mask.astype(np.float32)


def _hsv(hue: float, saturation: float, value: float) -> np.ndarray:
    return _palette([colorsys.hsv_to_rgb(hue % 1.0, saturation, value)])[0]


def _jitter(rng: np.random.Generator, spread: float) -> np.ndarray:
    return rng.normal(1.0, spread, (3, 1, 1)).astype(np.float32)


def _nonskin_colour(rng: np.random.Generator) -> np.ndarray:
    """Greys, saturated colours and hues away from the skin range."""
    kind = rng.random()
    if kind < 0.25:
        return np.float32(rng.uniform(0.08, 0.92)) * _jitter(rng, 0.02)
    if kind < 0.4:
        # Any hue, but saturation well beyond skin's.
        return _hsv(rng.random(), rng.uniform(0.85, 1.0), rng.uniform(0.5, 1.0))
    return _hsv(rng.uniform(75, 330) / 360, rng.uniform(0.2, 0.9), rng.uniform(0.15, 0.95))


def _skinlike_colour(rng: np.random.Generator) -> np.ndarray:
    """Beige / tan / light brown, i.e. the hue range of skin."""
    return _hsv(rng.uniform(18, 38) / 360, rng.uniform(0.3, 0.65), rng.uniform(0.45, 0.92))


def _skin_tone(rng: np.random.Generator) -> np.ndarray:
    t = rng.uniform(0.0, len(_SKIN_PALETTE) - 1.0)
    i = min(int(t), len(_SKIN_PALETTE) - 2)
    f = np.float32(t - i)
    return ((1.0 - f) * _SKIN_PALETTE[i] + f * _SKIN_PALETTE[i + 1]) * _jitter(rng, 0.03)


def _noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Smooth value noise in about [-1, 1] with features roughly ``cell`` pixels wide."""
    cell = max(float(cell), 1.0)
    grid = rng.uniform(-1.0, 1.0, (int(h / cell) + 4, int(w / cell) + 4)).astype(np.float32)
    # Output pixel (x, y) samples the grid at (x / cell + 1, y / cell + 1), away from its border.
    to_grid = np.array([[1.0 / cell, 0.0, 1.0], [0.0, 1.0 / cell, 1.0]])
    return cv2.warpAffine(grid, to_grid, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)


def _fractal(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Three octaves of value noise, in about [-1, 1]."""
    octaves = _noise(rng, h, w, cell) + 0.5 * _noise(rng, h, w, cell / 2) + 0.25 * _noise(rng, h, w, cell / 4)
    return octaves / 1.75


def _phase(x: np.ndarray, period: float) -> np.ndarray:
    """Position within a period, in [0, 1)."""
    x = x / period
    return x - np.floor(x)


def _window(
    shape: tuple[int, int], cx: float, cy: float, radius: float
) -> tuple[int, int, np.ndarray, np.ndarray] | None:
    """Clipped square window around a centre: (y0, x0, pixel-centre ys (h, 1), xs (1, w))."""
    y0, y1 = max(0, math.floor(cy - radius)), min(shape[0], math.ceil(cy + radius) + 1)
    x0, x1 = max(0, math.floor(cx - radius)), min(shape[1], math.ceil(cx + radius) + 1)
    if y0 >= y1 or x0 >= x1:
        return None
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5
    return y0, x0, ys, xs


def _local(
    ys: np.ndarray, xs: np.ndarray, cx: float, cy: float, angle: float
) -> tuple[np.ndarray, np.ndarray]:
    c, s = math.cos(angle), math.sin(angle)
    dx, dy = xs - cx, ys - cy
    return c * dx + s * dy, c * dy - s * dx


def _ellipse(shape: tuple[int, int], cx: float, cy: float, a: float, b: float, angle: float) -> _Patch | None:
    """Ellipse with semi-axes ``a`` (across) and ``b`` (along) and ellipsoid normals."""
    win = _window(shape, cx, cy, max(a, b))
    if win is None:
        return None
    y0, x0, ys, xs = win
    u, v = _local(ys, xs, cx, cy, angle)
    nu, nv = u / a, v / b
    r2 = nu * nu + nv * nv
    c, s = math.cos(angle), math.sin(angle)
    normal = np.stack([nu * c - nv * s, nu * s + nv * c, np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))])
    return _Patch(y0, x0, r2 <= 1.0, normal, u, v)


def _capsule(
    shape: tuple[int, int], p0: tuple[float, float], p1: tuple[float, float], r0: float, r1: float
) -> _Patch | None:
    """Tapered capsule from ``p0`` (radius ``r0``) to ``p1`` (radius ``r1``) with cylinder normals."""
    (ax, ay), (bx, by) = p0, p1
    dx, dy = bx - ax, by - ay
    length = max(math.hypot(dx, dy), 1e-6)
    win = _window(shape, (ax + bx) / 2, (ay + by) / 2, length / 2 + max(r0, r1))
    if win is None:
        return None
    y0, x0, ys, xs = win
    px, py = xs - ax, ys - ay
    along = (px * dx + py * dy) / length
    across = (py * dx - px * dy) / length
    t = np.clip(along / length, 0.0, 1.0)
    ex, ey = (px - t * dx) / (r0 + (r1 - r0) * t), (py - t * dy) / (r0 + (r1 - r0) * t)
    dist2 = ex * ex + ey * ey
    normal = np.stack([ex, ey, np.sqrt(np.clip(1.0 - dist2, 0.0, 1.0))])
    return _Patch(y0, x0, dist2 <= 1.0, normal, across, along)


def _box(
    shape: tuple[int, int],
    cx: float,
    cy: float,
    half_u: float,
    half_v: float,
    angle: float,
    corner: float = 0.0,
) -> _Patch | None:
    """Flat rounded rectangle."""
    win = _window(shape, cx, cy, math.hypot(half_u, half_v))
    if win is None:
        return None
    y0, x0, ys, xs = win
    u, v = _local(ys, xs, cx, cy, angle)
    qu, qv = np.abs(u) - (half_u - corner), np.abs(v) - (half_v - corner)
    outside = np.hypot(np.maximum(qu, 0.0), np.maximum(qv, 0.0)) + np.minimum(np.maximum(qu, qv), 0.0)
    normal = np.zeros((3, *u.shape), np.float32)
    normal[2] = 1.0
    return _Patch(y0, x0, outside <= corner, normal, u, v)


def _random_light(rng: np.random.Generator) -> _Light:
    azimuth, elevation = rng.uniform(0.0, 2.0 * math.pi), rng.uniform(0.35, 1.2)
    horizontal = math.cos(elevation)
    direction = np.array(
        [horizontal * math.cos(azimuth), horizontal * math.sin(azimuth), math.sin(elevation)], np.float32
    )
    half = direction + np.array([0.0, 0.0, 1.0], np.float32)
    return _Light(direction, half / np.linalg.norm(half), rng.uniform(0.3, 0.55), rng.uniform(0.0, 0.18))


def _shade(patch: _Patch, light: _Light) -> np.ndarray:
    diffuse = np.clip(np.tensordot(light.direction, patch.normal, axes=1), 0.0, None)
    return light.ambient + (1.0 - light.ambient) * diffuse


def _highlight(patch: _Patch, light: _Light, strength: float, squarings: int) -> np.ndarray:
    """Blinn-Phong highlight with exponent ``2**squarings`` (repeated squaring is much cheaper than pow)."""
    highlight = np.clip(np.tensordot(light.half, patch.normal, axes=1), 0.0, 1.0)
    for _ in range(squarings):
        highlight *= highlight
    return np.float32(strength) * highlight


def _paint_skin(
    canvas: _Canvas, rng: np.random.Generator, patch: _Patch | None, tone: np.ndarray, light: _Light,
    darken: float = 1.0,
) -> None:
    if patch is None:
        return
    h, w = patch.inside.shape
    shade = _shade(patch, light) * np.float32(darken)
    texture = 1.0 + 0.04 * _noise(rng, h, w, rng.uniform(3, 10))
    colour = tone * (shade * texture) * (1.0 + (1.0 - shade) * _SKIN_SHADOW_TINT)
    canvas.paint(patch, colour + _highlight(patch, light, light.specular, 4), skin=True)


def _fabric(rng: np.random.Generator, patch: _Patch, light: _Light) -> np.ndarray:
    """Clothing colour field: mostly non-skin colours, sometimes tan, with folds and stripes."""
    h, w = patch.inside.shape
    base = _nonskin_colour(rng) if rng.random() < 0.8 else _skinlike_colour(rng)
    if rng.random() < 0.35:
        period = rng.uniform(4, 16)
        stripes = _phase(patch.v if rng.random() < 0.5 else patch.u, period) < 0.5
        base = _select(stripes, base, _nonskin_colour(rng))
    return base * (_shade(patch, light) * (1.0 + 0.12 * _noise(rng, h, w, rng.uniform(6, 20))))


def _paint_hair(
    canvas: _Canvas, rng: np.random.Generator, patch: _Patch | None, colour: np.ndarray, light: _Light,
    where: np.ndarray | None = None,
) -> None:
    if patch is None:
        return
    h, w = patch.inside.shape
    strands = 0.5 + 0.5 * np.sin(patch.u * rng.uniform(0.8, 1.6) + 3.0 * _noise(rng, h, w, 12.0))
    colour = colour * ((0.7 + 0.3 * strands) * _shade(patch, light)) + _highlight(patch, light, 0.1, 3)
    canvas.paint(patch, colour, skin=False, where=where)


def _band(
    canvas: _Canvas, rng: np.random.Generator, light: _Light, centre: np.ndarray, direction: np.ndarray,
    radius: float,
) -> None:
    """Watch or bracelet around a limb of the given radius."""
    perp = np.array([-direction[1], direction[0]])
    half_width = rng.uniform(0.12, 0.3) * radius
    colour = _BAND_COLOURS[rng.integers(len(_BAND_COLOURS))]
    reach = perp * radius * 1.05
    band = _capsule(canvas.shape, centre - reach, centre + reach, half_width, half_width)
    if band is not None:
        canvas.paint(band, colour * _shade(band, light) + _highlight(band, light, 0.3, 3), skin=False)
    if rng.random() < 0.5:
        dial = _ellipse(canvas.shape, centre[0], centre[1], 0.55 * radius, 0.55 * radius, 0.0)
        if dial is not None:
            glass = _select(dial.u**2 + dial.v**2 > (0.42 * radius) ** 2, colour, np.float32(0.08))
            canvas.paint(dial, glass + _highlight(dial, light, 0.4, 5), skin=False)


def _hand(
    canvas: _Canvas, rng: np.random.Generator, tone: np.ndarray, light: _Light, centre: np.ndarray,
    direction: np.ndarray, size: float,
) -> None:
    """Palm plus fingers and thumb; ``direction`` is the unit vector the fingers point along."""
    # Local frame: u across the palm, v towards the fingertips.
    angle = math.atan2(-direction[0], direction[1])
    c, s = math.cos(angle), math.sin(angle)

    def at(u: float, v: float) -> tuple[float, float]:
        return centre[0] + u * c - v * s, centre[1] + u * s + v * c

    a, b = size, size * rng.uniform(1.0, 1.2)
    curl = 0.45 if rng.random() < 0.25 else rng.uniform(0.85, 1.1)
    spread = rng.uniform(0.0, 0.5)
    for base_u, length in zip((-0.62, -0.2, 0.22, 0.62), (0.75, 0.95, 0.9, 0.7)):
        tip = at(base_u * a * (1 + spread), (0.6 + length * 1.1 * curl) * b)
        finger = _capsule(canvas.shape, at(base_u * a, 0.6 * b), tip, 0.2 * a, 0.17 * a)
        _paint_skin(canvas, rng, finger, tone, light)
    side = rng.choice((-1.0, 1.0))
    thumb_tip = at(side * 1.5 * a, 0.55 * b)
    thumb = _capsule(canvas.shape, at(side * 0.7 * a, -0.2 * b), thumb_tip, 0.26 * a, 0.2 * a)
    _paint_skin(canvas, rng, thumb, tone, light)
    _paint_skin(canvas, rng, _ellipse(canvas.shape, centre[0], centre[1], a, b, angle), tone, light)


def _face(canvas: _Canvas, rng: np.random.Generator, tone: np.ndarray, light: _Light) -> None:
    """Face with neck and ears; eyes, brows, mouth, hair, glasses and shirt are not skin."""
    height, width = canvas.shape
    a = rng.uniform(0.13, 0.28) * min(height, width)
    b = a * rng.uniform(1.2, 1.4)
    cx, cy = rng.uniform(0.15, 0.85) * width, rng.uniform(0.2, 0.75) * height
    angle = rng.normal(0.0, 0.2)
    c, s = math.cos(angle), math.sin(angle)

    def at(u: float, v: float) -> tuple[float, float]:
        return cx + u * c - v * s, cy + u * s + v * c

    hair = _HAIR_COLOURS[rng.choice(len(_HAIR_COLOURS), p=_HAIR_PROBS)] * _jitter(rng, 0.05)
    has_hair = rng.random() < 0.75
    if has_hair and rng.random() < 0.5:  # long hair, behind the face
        long_hair = _ellipse(canvas.shape, *at(0.0, 0.35 * b), 1.3 * a, 1.35 * b, angle)
        _paint_hair(canvas, rng, long_hair, hair, light)
    if rng.random() < 0.85:
        neck = _capsule(canvas.shape, at(0.0, 0.5 * b), at(0.0, 2.2 * b), 0.55 * a, 0.6 * a)
        _paint_skin(canvas, rng, neck, tone, light, darken=0.82)
        shoulders = _ellipse(canvas.shape, *at(0.0, 2.6 * b), 2.4 * a, 1.2 * b, angle)
        if shoulders is not None and rng.random() < 0.75:
            canvas.paint(shoulders, _fabric(rng, shoulders, light), skin=False)
        else:
            _paint_skin(canvas, rng, shoulders, tone, light, darken=0.9)
    if rng.random() < 0.8:
        for side in (-1.0, 1.0):
            ear = _ellipse(canvas.shape, *at(side * 0.96 * a, 0.05 * b), 0.2 * a, 0.3 * b, angle)
            _paint_skin(canvas, rng, ear, tone, light, darken=0.9)
    _paint_skin(canvas, rng, _ellipse(canvas.shape, cx, cy, a, b, angle), tone, light)
    # The nose is only a shadow: still skin.
    nose_side = rng.choice((-1.0, 1.0))
    nose_tip = at(nose_side * 0.1 * a, 0.25 * b)
    nose = _capsule(canvas.shape, at(nose_side * 0.04 * a, -0.05 * b), nose_tip, 0.04 * a, 0.08 * a)
    _paint_skin(canvas, rng, nose, tone, light, darken=0.8)

    eye_a, eye_b = 0.2 * a, 0.085 * b
    iris = _IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))]
    gaze = rng.uniform(-0.4, 0.4) * eye_a
    brow = hair if has_hair else np.float32(0.6) * tone
    for side in (-1.0, 1.0):
        eye = _ellipse(canvas.shape, *at(side * 0.4 * a, -0.12 * b), eye_a, eye_b, angle)
        if eye is not None:
            d2 = (eye.u - gaze) ** 2 + eye.v**2
            colour = _select(d2 < (0.95 * eye_b) ** 2, iris, _EYE_WHITE)
            colour = _select(d2 < (0.4 * eye_b) ** 2, np.float32(0.02), colour)
            lash = ((eye.u / eye_a) ** 2 + (eye.v / eye_b) ** 2 > 0.6) & (eye.v < 0)
            colour = _select(lash, np.float32(0.08), colour)
            canvas.paint(eye, colour * (0.6 + 0.4 * _shade(eye, light)), skin=False)
        brow_end = at(side * 0.62 * a, (-0.32 + rng.normal(0, 0.02)) * b)
        eyebrow = _capsule(canvas.shape, at(side * 0.15 * a, -0.33 * b), brow_end, 0.055 * b, 0.04 * b)
        if eyebrow is not None:
            canvas.paint(eyebrow, brow * _shade(eyebrow, light), skin=False)
    mouth_a, mouth_b = rng.uniform(0.25, 0.38) * a, rng.uniform(0.06, 0.1) * b
    mouth = _ellipse(canvas.shape, *at(0.0, 0.5 * b), mouth_a, mouth_b, angle)
    if mouth is not None:
        lips = tone * _LIPS * np.float32(rng.uniform(0.8, 1.0))
        colour = _select(np.abs(mouth.v) < 0.8, tone * np.float32(0.25), lips)
        canvas.paint(mouth, colour * _shade(mouth, light), skin=False)
    if has_hair:
        top = _ellipse(canvas.shape, *at(0.0, -0.06 * b), 1.1 * a, 1.12 * b, angle)
        if top is not None:
            wave = 0.05 * np.sin(4.0 * top.u / a + rng.uniform(0.0, 2.0 * math.pi))
            hairline = (rng.uniform(-0.5, -0.3) + 0.28 * (top.u / a) ** 2 + wave) * b
            _paint_hair(canvas, rng, top, hair, light, where=top.v < hairline)
    if rng.random() < 0.12:
        frame = np.float32(rng.uniform(0.02, 0.3)) * _jitter(rng, 0.1)
        for side in (-1.0, 1.0):
            lens = _ellipse(canvas.shape, *at(side * 0.42 * a, -0.12 * b), 0.32 * a, 0.22 * b, angle)
            if lens is not None:
                rim = (lens.u / (0.32 * a)) ** 2 + (lens.v / (0.22 * b)) ** 2 > 0.75
                canvas.paint(lens, frame, skin=False, where=rim)
        bridge = _capsule(canvas.shape, at(-0.12 * a, -0.15 * b), at(0.12 * a, -0.15 * b), 0.03 * a, 0.03 * a)
        canvas.paint(bridge, frame, skin=False)


def _limb_end(
    rng: np.random.Generator, shape: tuple[int, int], length: float
) -> tuple[np.ndarray, np.ndarray]:
    """A start point ``length`` away from a point inside the frame, and the unit direction towards it."""
    height, width = shape
    end = np.array([rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height])
    theta = rng.uniform(0.0, 2.0 * math.pi)
    direction = np.array([math.cos(theta), math.sin(theta)])
    return end - direction * length, direction


def _sleeve(
    canvas: _Canvas,
    rng: np.random.Generator,
    light: _Light,
    start: np.ndarray,
    end: np.ndarray,
    radius: float,
) -> None:
    sleeve = _capsule(canvas.shape, start, end, radius * 1.3, radius * 1.25)
    if sleeve is not None:
        canvas.paint(sleeve, _fabric(rng, sleeve, light), skin=False)


def _arm(canvas: _Canvas, rng: np.random.Generator, tone: np.ndarray, light: _Light) -> None:
    """Forearm capsule, optionally with a hand, a sleeve and a watch or bracelet."""
    m = min(canvas.shape)
    r0 = rng.uniform(0.06, 0.11) * m
    r1 = r0 * rng.uniform(0.65, 0.85)
    length = rng.uniform(0.5, 1.0) * m
    start, direction = _limb_end(rng, canvas.shape, length)
    end = start + direction * length
    _paint_skin(canvas, rng, _capsule(canvas.shape, start, end, r0, r1), tone, light)
    if rng.random() < 0.6:
        size = r1 * rng.uniform(1.2, 1.45)
        _hand(canvas, rng, tone, light, end + direction * size * 0.9, direction, size)
    if rng.random() < 0.5:
        cuff = start + direction * length * rng.uniform(0.2, 0.6)
        _sleeve(canvas, rng, light, start - direction * r0, cuff, r0)
    if rng.random() < 0.3:
        _band(canvas, rng, light, end - direction * r1 * rng.uniform(0.3, 1.5), direction, r1)


def _lone_hand(canvas: _Canvas, rng: np.random.Generator, tone: np.ndarray, light: _Light) -> None:
    """Hand with a short wrist, possibly in a cuff or with a bracelet."""
    size = rng.uniform(0.08, 0.14) * min(canvas.shape)
    wrist_length = 3.0 * size
    wrist_start, direction = _limb_end(rng, canvas.shape, wrist_length)
    centre = wrist_start + direction * (wrist_length + 0.5 * size)
    wrist = _capsule(canvas.shape, wrist_start, centre, 0.8 * size, 0.72 * size)
    _paint_skin(canvas, rng, wrist, tone, light)
    _hand(canvas, rng, tone, light, centre, direction, size)
    if rng.random() < 0.4:
        cuff_end = wrist_start + direction * size * rng.uniform(1.0, 2.0)
        _sleeve(canvas, rng, light, wrist_start - direction * size, cuff_end, 0.8 * size)
    elif rng.random() < 0.3:
        _band(canvas, rng, light, centre - direction * size * 1.4, direction, 0.75 * size)


def _wood(canvas: _Canvas, rng: np.random.Generator, light: _Light) -> None:
    """One to three planks with grain: skin-like hue, very different texture."""
    height, width = canvas.shape
    m = min(height, width)
    half_u, half_v = rng.uniform(0.3, 0.8) * m, rng.uniform(0.07, 0.16) * m
    angle = rng.uniform(0.0, math.pi)
    cx, cy = rng.uniform(0.0, 1.0) * width, rng.uniform(0.0, 1.0) * height
    for k in range(int(rng.integers(1, 4))):
        # Boards side by side: offset across their width.
        offset = k * (2.0 * half_v + rng.uniform(1.0, 3.0))
        px, py = cx - offset * math.sin(angle), cy + offset * math.cos(angle)
        plank = _box(canvas.shape, px, py, half_u, half_v, angle)
        if plank is None:
            continue
        h, w = plank.inside.shape
        light_wood = _hsv(rng.uniform(20, 34) / 360, rng.uniform(0.4, 0.65), rng.uniform(0.6, 0.92))
        dark_wood = light_wood * _palette([(0.6, 0.5, 0.4)])[0]
        period = rng.uniform(3.0, 9.0)
        warped = plank.v + rng.uniform(3, 12) * _fractal(rng, h, w, 30.0)
        rings = 0.5 + 0.5 * np.cos(warped * (2.0 * math.pi / period))
        grain = rings ** rng.uniform(2.0, 6.0) + 0.15 * _noise(rng, h, w, 2.0)
        edge = (np.abs(plank.u) > half_u - 2.0) | (np.abs(plank.v) > half_v - 2.0)
        colour = (light_wood + (dark_wood - light_wood) * grain) * ((1.0 - 0.4 * edge) * _shade(plank, light))
        canvas.paint(plank, colour, skin=False)


def _cardboard(canvas: _Canvas, rng: np.random.Generator, light: _Light) -> None:
    """Box side with a fold, packing tape and printed marks."""
    height, width = canvas.shape
    m = min(height, width)
    half_u, half_v = rng.uniform(0.15, 0.4) * m, rng.uniform(0.15, 0.4) * m
    cx, cy = rng.uniform(0, 1) * width, rng.uniform(0, 1) * height
    box = _box(canvas.shape, cx, cy, half_u, half_v, rng.normal(0, 0.3))
    if box is None:
        return
    h, w = box.inside.shape
    base = _hsv(rng.uniform(26, 36) / 360, rng.uniform(0.35, 0.55), rng.uniform(0.55, 0.85))
    fold = np.abs(box.v - rng.uniform(-0.6, -0.2) * half_v) < 1.5
    colour = base * ((1.0 + 0.05 * _noise(rng, h, w, 3.0)) * (1.0 - 0.3 * fold))
    tape = np.abs(box.u - rng.uniform(-0.3, 0.3) * half_u) < rng.uniform(0.08, 0.18) * half_u
    colour = _select(tape, base * _palette([(1.15, 1.05, 0.85)])[0], colour)
    for _ in range(int(rng.integers(0, 4))):
        pu, pv = rng.uniform(-0.7, 0.7) * half_u, rng.uniform(-0.1, 0.8) * half_v
        text_u, text_v = rng.uniform(0.1, 0.3) * half_u, rng.uniform(0.04, 0.1) * half_v
        text = (np.abs(box.u - pu) < text_u) & (np.abs(box.v - pv) < text_v)
        colour = _select(text & (_phase(box.u, 5.0) < 0.6), np.float32(0.12), colour)
    edge = (np.abs(box.u) > half_u - 2.0) | (np.abs(box.v) > half_v - 2.0)
    canvas.paint(box, colour * ((1.0 - 0.35 * edge) * _shade(box, light)), skin=False)


def _tiles(canvas: _Canvas, rng: np.random.Generator, light: _Light) -> None:
    """Large tiled region in beige/terracotta with grout lines."""
    height, width = canvas.shape
    m = min(height, width)
    wall = _box(canvas.shape, rng.uniform(0, 1) * width, rng.uniform(0, 1) * height,
                rng.uniform(0.3, 0.8) * width, rng.uniform(0.3, 0.8) * height, rng.normal(0.0, 0.1))
    if wall is None:
        return
    period = rng.uniform(0.1, 0.25) * m
    grout_width = rng.uniform(1.5, 3.5)
    tile_u, tile_v = np.floor(wall.u / period), np.floor(wall.v / period)
    brightness = rng.normal(1.0, 0.05, (8, 8)).astype(np.float32)
    variation = brightness[tile_v.astype(int) & 7, tile_u.astype(int) & 7]
    grout = (wall.u - tile_u * period < grout_width) | (wall.v - tile_v * period < grout_width)
    colour = _select(grout, np.float32(rng.uniform(0.5, 0.85)), _skinlike_colour(rng) * variation)
    canvas.paint(wall, colour * _shade(wall, light), skin=False)


def _fruit(canvas: _Canvas, rng: np.random.Generator, light: _Light) -> None:
    """Orange / peach: skin-like hue, but saturated, dimpled and glossy."""
    height, width = canvas.shape
    r = rng.uniform(0.07, 0.16) * min(height, width)
    cx, cy = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height
    fruit = _ellipse(canvas.shape, cx, cy, r, r * rng.uniform(0.9, 1.05), rng.uniform(0, math.pi))
    if fruit is None:
        return
    h, w = fruit.inside.shape
    base = _hsv(rng.uniform(18, 38) / 360, rng.uniform(0.8, 1.0), rng.uniform(0.75, 1.0))
    dimples = 1.0 + 0.07 * _noise(rng, h, w, 1.5)
    colour = base * (_shade(fruit, light) * dimples) + _highlight(fruit, light, 0.35, 5)
    canvas.paint(fruit, colour, skin=False)
    stem = _ellipse(canvas.shape, cx, cy - 0.9 * r, 0.12 * r, 0.1 * r, 0.0)
    canvas.paint(stem, _hsv(0.2, 0.65, 0.3), skin=False)


def _clutter(canvas: _Canvas, rng: np.random.Generator, light: _Light) -> None:
    """A non-skin object: box, disc or rod, plain or striped."""
    height, width = canvas.shape
    m = min(height, width)
    cx, cy = rng.uniform(0, 1) * width, rng.uniform(0, 1) * height
    kind = rng.integers(3)
    if kind == 0:
        patch = _box(canvas.shape, cx, cy, rng.uniform(0.05, 0.3) * m, rng.uniform(0.05, 0.3) * m,
                     rng.uniform(0, math.pi), rng.uniform(0, 0.05) * m)
    elif kind == 1:
        patch = _ellipse(canvas.shape, cx, cy, rng.uniform(0.05, 0.25) * m, rng.uniform(0.05, 0.25) * m,
                         rng.uniform(0, math.pi))
    else:
        r = rng.uniform(0.02, 0.08) * m
        end = (cx + rng.normal(0, 0.4) * m, cy + rng.normal(0, 0.4) * m)
        patch = _capsule(canvas.shape, (cx, cy), end, r, r)
    if patch is None:
        return
    colour = _nonskin_colour(rng)
    if rng.random() < 0.3:
        colour = _select(_phase(patch.u, rng.uniform(4, 20)) < 0.5, colour, _nonskin_colour(rng))
    canvas.paint(patch, colour * _shade(patch, light) + _highlight(patch, light, 0.2, 4), skin=False)


def _strap(canvas: _Canvas, rng: np.random.Generator, light: _Light) -> None:
    """Bag strap crossing the frame, with stitching."""
    height, width = canvas.shape
    r = rng.uniform(0.025, 0.05) * min(height, width)
    reach = 1.5 * max(height, width)
    start, direction = _limb_end(rng, canvas.shape, reach)
    strap = _capsule(canvas.shape, start, start + 2.0 * reach * direction, r, r)
    if strap is None:
        return
    base = _nonskin_colour(rng) * np.float32(0.6) if rng.random() < 0.7 else _BAND_COLOURS[3]
    stitch = (np.abs(np.abs(strap.u) - 0.7 * r) < 0.8) & (_phase(strap.v, 6.0) < 0.5)
    canvas.paint(strap, _select(stitch, np.float32(0.8), base) * _shade(strap, light), skin=False)


def _lattice(canvas: _Canvas, rng: np.random.Generator, light: _Light) -> None:
    """Thin dark grid (fence, mesh) over part of the frame."""
    height, width = canvas.shape
    angle = rng.choice((0.0, math.pi / 4)) + rng.normal(0.0, 0.1)
    grid = _box(canvas.shape, rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height,
                rng.uniform(0.25, 0.7) * width, rng.uniform(0.25, 0.7) * height, angle)
    if grid is None:
        return
    period = rng.uniform(0.06, 0.14) * min(height, width)
    thickness = rng.uniform(2.0, 4.0) / period
    wires = (_phase(grid.u, period) < thickness) | (_phase(grid.v, period) < thickness)
    colour = np.float32(rng.uniform(0.03, 0.35)) * _jitter(rng, 0.05)
    canvas.paint(grid, colour * _shade(grid, light), skin=False, where=wires)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Gradient, value noise, stripes, checker or wall/floor split in two non-skin colours."""
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    m = min(height, width)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    along = xs * math.cos(angle) + ys * math.sin(angle)
    kind = rng.integers(5)
    if kind == 0:
        pattern = (along - along.min()) / (along.max() - along.min() + 1e-6)
    elif kind == 1:
        pattern = 0.5 + 0.5 * _fractal(rng, height, width, rng.uniform(0.1, 0.5) * m)
    elif kind == 2:
        pattern = 0.5 + 0.5 * np.sin(along * (2.0 * math.pi / (rng.uniform(0.03, 0.2) * m)))
        if rng.random() < 0.5:
            pattern = (pattern > 0.5).astype(np.float32)
    elif kind == 3:
        period = rng.uniform(0.05, 0.2) * m
        across = ys * math.cos(angle) - xs * math.sin(angle)
        pattern = 2.0 * _phase(np.floor(along / period) + np.floor(across / period), 2.0)
    else:
        horizon = rng.uniform(0.3, 0.8) * height + rng.normal(0.0, 0.1) * (xs - width / 2)
        pattern = (ys > horizon) * (0.8 + 0.2 * ys / height)
    c0, c1 = _nonskin_colour(rng), _nonskin_colour(rng)
    grain = 1.0 + np.float32(rng.uniform(0.0, 0.08)) * _noise(rng, height, width, rng.uniform(2.0, 12.0))
    return ((c0 + (c1 - c0) * pattern) * grain).astype(np.float32)


def _camera(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """White balance, exposure, lighting ramp, optional blur, gamma and sensor noise.

    Takes a planar float image and returns an interleaved uint8 RGB image.
    """
    _, height, width = image.shape
    temperature = rng.normal(0.0, 0.06)
    gains = _palette([(1.0 + temperature, 1.0, 1.0 - temperature)])[0] * _jitter(rng, 0.03)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    xs = np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :]
    ys = np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None]
    ramp = 1.0 + np.float32(rng.uniform(0.0, 0.4)) * (xs * math.cos(angle) + ys * math.sin(angle))
    image = image * (gains * np.float32(rng.uniform(0.75, 1.2))) * ramp
    if rng.random() < 0.3:
        sigma = rng.uniform(0.4, 0.8)
        image = np.stack([cv2.GaussianBlur(plane, (0, 0), sigma) for plane in image])
    image = np.clip(image, 0.0, 1.0) ** np.float32(rng.uniform(0.85, 1.15))
    # Gaussian luminance noise plus weaker (and cheaper, uniform) chroma noise.
    noise = rng.standard_normal((height, width), np.float32)
    noise = noise + 0.7 * (rng.random((3, height, width), np.float32) - 0.5)
    image = image + np.float32(rng.uniform(0.004, 0.02)) * noise
    image = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    return cv2.merge(list(image))


_HARD_NEGATIVES = (_wood, _cardboard, _tiles, _fruit)
_BODY_PARTS = (_face, _arm, _lone_hand)


def render_demo_sample(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Renders one synthetic skin segmentation sample.

    Args:
        rng: Source of all randomness; the output is a pure function of its state.
        height: Image height in pixels.
        width: Image width in pixels.

    Returns:
        ``(image, mask)``: uint8 RGB image of shape (height, width, 3) and uint8 mask of shape
        (height, width) that is 255 on skin and 0 elsewhere.
    """
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    canvas = _Canvas(_background(rng, height * _SUPERSAMPLE, width * _SUPERSAMPLE))
    light = _random_light(rng)
    for _ in range(int(rng.integers(0, 4))):
        _clutter(canvas, rng, light)
    has_skin = rng.random() >= _EMPTY_PROB
    negatives = []
    if rng.random() < (0.55 if has_skin else 0.8):
        negatives = [_HARD_NEGATIVES[i] for i in rng.integers(len(_HARD_NEGATIVES), size=rng.integers(1, 3))]
    negatives_in_front = rng.random() < 0.2
    if not negatives_in_front:
        for draw in negatives:
            draw(canvas, rng, light)
    if has_skin:
        base_tone = _skin_tone(rng)
        for _ in range(rng.choice((1, 2, 3), p=(0.5, 0.35, 0.15))):
            tone = base_tone if rng.random() < 0.75 else _skin_tone(rng)
            _BODY_PARTS[rng.choice(len(_BODY_PARTS), p=(0.45, 0.35, 0.2))](canvas, rng, tone, light)
    if negatives_in_front:
        for draw in negatives:
            draw(canvas, rng, light)
    if rng.random() < 0.2:
        _clutter(canvas, rng, light)
    if rng.random() < 0.15:
        _strap(canvas, rng, light)
    if rng.random() < 0.12:
        _lattice(canvas, rng, light)

    size = (width, height)
    image = np.stack([cv2.resize(plane, size, interpolation=cv2.INTER_AREA) for plane in canvas.image])
    coverage = cv2.resize(canvas.skin.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    mask = (coverage >= 0.5).astype(np.uint8) * np.uint8(255)
    return _camera(rng, image), mask


def _write_png(path: pathlib.Path, array: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", array)
    if not ok:
        raise OSError(f"could not encode {path}")
    path.write_bytes(encoded.tobytes())


def _write_dataset(folder: pathlib.Path, params: dict[str, int]) -> None:
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    stems = [f"demo_{index:05d}" for index in range(params["num_train"] + params["num_val"])]
    for index, stem in enumerate(stems):
        # One generator per sample: a sample does not depend on how many are generated.
        rng = np.random.default_rng([params["seed"], index])
        height = int(rng.integers(params["min_size"], params["max_size"] + 1))
        width = int(rng.integers(params["min_size"], params["max_size"] + 1))
        image, mask = render_demo_sample(rng, height, width)
        _write_png(folder / "images" / f"{stem}.png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        _write_png(folder / "masks" / f"{stem}.png", mask)
    splits = {"train": stems[: params["num_train"]], "val": stems[params["num_train"] :]}
    (folder / "splits.json").write_text(json.dumps(splits, indent=1) + "\n")
    (folder / "README.md").write_text(
        "# Synthetic skin segmentation demo data\n\n"
        "Procedurally generated by `skinseg.data.demo` (not real photographs): faces, arms and hands in\n"
        "a range of skin tones over cluttered backgrounds, with occluders and skin-coloured distractors.\n\n"
        f"- generator version: {params['demo_version']}\n"
        f"- seed: {params['seed']}\n"
        f"- samples: {params['num_train']} train, {params['num_val']} val\n"
        f"- image sizes: {params['min_size']} to {params['max_size']} px per side\n"
        "- layout: `images/*.png` (RGB), `masks/*.png` (0 = background, 255 = skin), `splits.json`\n"
    )
    # Written last: its presence means the folder is complete.
    (folder / _MARKER).write_text(json.dumps(params, sort_keys=True) + "\n")


def _holds_dataset(root: pathlib.Path, params: dict[str, int]) -> bool:
    """Whether ``root`` holds the complete dataset for ``params``.

    Returns False when ``root`` is missing or an empty folder.

    Raises:
        OutputExistsError: ``root`` holds something else.
    """
    if not root.exists() or (root.is_dir() and not any(root.iterdir())):
        return False
    try:
        found = json.loads((root / _MARKER).read_text())
    except (OSError, ValueError):
        raise OutputExistsError(
            f"'{root}' exists but is not a complete demo dataset (no valid {_MARKER} marker); "
            "delete it or choose another path"
        ) from None
    if found != params:
        raise OutputExistsError(
            f"'{root}' holds a demo dataset generated with different parameters ({found}, wanted {params}); "
            "delete it or choose another path"
        )
    return True


def generate_demo_dataset(
    root: str | os.PathLike,
    num_train: int = 240,
    num_val: int = 48,
    seed: int = 0,
    min_size: int = 96,
    max_size: int = 192,
) -> pathlib.Path:
    """Writes the demo dataset to ``root`` unless it is already there.

    The layout is ``images/demo_XXXXX.png`` (RGB), ``masks/demo_XXXXX.png`` (0/255),
    ``splits.json`` (the first ``num_train`` stems train, the rest val), ``README.md`` and a
    ``.complete`` marker holding the generation parameters. The folder is generated next to
    ``root`` and renamed into place, so it is either absent or complete, also when several
    processes generate it at once.

    Args:
        root: Dataset folder. Must be absent, empty, or hold this exact dataset.
        num_train: Number of training samples.
        num_val: Number of validation samples.
        seed: Non-negative seed; the same seed gives the same data.
        min_size: Smallest image side in pixels.
        max_size: Largest image side in pixels.

    Returns:
        ``root`` as a path.

    Raises:
        FileExistsError: ``root`` holds anything other than this dataset.
        ValueError: Invalid counts or sizes.
    """
    if num_train < 0 or num_val < 0:
        raise ValueError(f"sample counts must be non-negative, got {num_train} train and {num_val} val")
    if not 1 <= min_size <= max_size:
        raise ValueError(f"need 1 <= min_size <= max_size, got {min_size} and {max_size}")
    root = pathlib.Path(root)
    params = {
        "demo_version": DEMO_VERSION,
        "num_train": num_train,
        "num_val": num_val,
        "seed": seed,
        "min_size": min_size,
        "max_size": max_size,
    }
    if _holds_dataset(root, params):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)  # left over from an interrupted run with the same pid
    try:
        _write_dataset(tmp, params)
        with contextlib.suppress(OSError):
            root.rmdir()  # only succeeds on an empty folder, which os.replace cannot replace on Windows
        try:
            os.replace(tmp, root)
        except OSError:
            # Another process may have published the same dataset first.
            if not _holds_dataset(root, params):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def demo_dataset(root: str | os.PathLike, params: dict) -> pathlib.Path:
    """The demo set for generator `params` under `root`, generated on first use.

    Its folder is named by the generator version and a hash of the parameters
    (`root/demo-v1-<hash>`), so other parameters never reuse a set made with these.
    """
    settings = json.dumps(dict(params), sort_keys=True)
    digest = hashlib.sha1(settings.encode("utf-8")).hexdigest()[:8]
    return generate_demo_dataset(pathlib.Path(root) / f"demo-v{DEMO_VERSION}-{digest}", **dict(params))
