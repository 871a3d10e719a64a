"""Skin-tone shift: recolour the masked skin of a photo toward a target skin tone, in CIELAB.

The public skin segmentation sets are mostly light-skinned, so a model trained on them sees few
dark (or very light) tones. This augmentation moves the skin of a training image to a tone drawn
from the whole range, light to dark, while the mask stays exact: the mean colour of the skin goes
to the target's, and each pixel keeps its offset from that mean (scaled in lightness, so shading
and texture stay visible but proportionate to the new tone). Pixels outside the mask are left
untouched, and a soft mask edge blends the new colour in gradually.

Pure numpy + OpenCV; it works on RGB uint8 arrays and knows nothing of torch or albumentations.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

# The 10 swatches of the Monk Skin Tone scale, MST-1 (lightest) to MST-10 (darkest):
# Monk Skin Tone Scale, Google / Ellis Monk, 2023 (https://skintone.google).
SKIN_TONES: tuple[tuple[int, int, int], ...] = (
    (0xF6, 0xED, 0xE4),
    (0xF3, 0xE7, 0xDB),
    (0xF7, 0xEA, 0xD0),
    (0xEA, 0xDA, 0xBA),
    (0xD7, 0xBD, 0x96),
    (0xA0, 0x7E, 0x56),
    (0x82, 0x5C, 0x43),
    (0x60, 0x41, 0x34),
    (0x3A, 0x31, 0x2A),
    (0x29, 0x24, 0x20),
)

# Bounds of the lightness scale factor k = L_target / L_mean: a dark target compresses the
# shading (but keeps at least half of it, so it stays visible); a light one stretches it a little.
K_MIN, K_MAX = 0.5, 1.2


def _rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) float32 RGB in 0..1 -> (..., 3) float32 Lab (L 0..100, a/b about -127..127)."""
    return cv2.cvtColor(rgb.reshape(-1, 1, 3), cv2.COLOR_RGB2Lab).reshape(rgb.shape)


def _lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """(..., 3) float32 Lab -> (..., 3) float32 RGB, clipped to 0..1 (out-of-gamut colours)."""
    rgb = cv2.cvtColor(lab.reshape(-1, 1, 3), cv2.COLOR_Lab2RGB).reshape(lab.shape)
    return np.clip(rgb, 0.0, 1.0)


def _check_rgb(rgb: Sequence[int], name: str) -> np.ndarray:
    """`rgb` as a (3,) float32 array in 0..255, or ValueError naming `name`."""
    arr = np.asarray(rgb, dtype=np.float32)
    if arr.shape != (3,) or not np.all((arr >= 0) & (arr <= 255)):
        raise ValueError(f"{name} must be an RGB triple with values in 0..255, got {rgb!r}")
    return arr


def tone_lab(rgb: Sequence[int]) -> tuple[float, float, float]:
    """The CIELAB of one RGB colour, with the conversion `shift_skin_tone` uses.

    Args:
        rgb: (3,) RGB values in 0..255.

    Returns:
        (L, a, b), L in 0..100.
    """
    lab = _rgb_to_lab(_check_rgb(rgb, "rgb") / 255.0)
    return float(lab[0]), float(lab[1]), float(lab[2])


def shift_skin_tone(
    image: np.ndarray, mask: np.ndarray, target_rgb: Sequence[int], strength: float = 1.0
) -> np.ndarray:
    """Recolour the masked skin toward `target_rgb`, keeping its shading and texture.

    In CIELAB, with (L_m, a_m, b_m) the mask-weighted mean of the skin (pixels with mask >= 128,
    weights mask/255), (L_t, a_t, b_t) the target's and s = `strength`:

        k  = 1 + s * (clip(L_t / L_m, 0.5, 1.2) - 1)
        L' = clip(L_m + s * (L_t - L_m) + (L - L_m) * k, 0, 100)
        a' = a + s * (a_t - a_m),   b' = b + s * (b_t - b_m)

    so at s = 1 the skin's mean goes to the target and its lightness deviations scale with the
    ratio of the lightnesses (a dark target keeps compressed but visible shading). The recoloured
    pixel is then blended with the original by alpha = mask/255, in RGB.

    Args:
        image: (H, W, 3) uint8 RGB.
        mask: (H, W) uint8, 0..255 (soft allowed; 255 = skin).
        target_rgb: (3,) RGB of the target tone, 0..255.
        strength: 0..1; 0 leaves the image as is, 1 moves the skin's mean all the way.

    Returns:
        A new (H, W, 3) uint8 RGB image; pixels with mask 0 are identical to `image`'s. An
        unchanged copy if no mask pixel is >= 128.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    if mask.dtype != np.uint8 or mask.shape != image.shape[:2]:
        raise ValueError(f"mask must be (H, W) uint8 matching the image, got {mask.shape} {mask.dtype}")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    target = _check_rgb(target_rgb, "target_rgb")

    out = image.copy()
    if not np.any(mask >= 128):
        return out

    touched = mask > 0
    original = image[touched].astype(np.float32) / 255.0  # (N, 3)
    alpha = mask[touched].astype(np.float32)[:, None] / 255.0  # (N, 1)
    lab = _rgb_to_lab(original)

    weights = np.where(alpha[:, 0] >= 128 / 255.0, alpha[:, 0], 0.0)
    mean = (lab * weights[:, None]).sum(axis=0) / weights.sum()
    target_lab = _rgb_to_lab(target / 255.0)

    k = 1.0 + strength * (np.clip(target_lab[0] / max(mean[0], 1e-3), K_MIN, K_MAX) - 1.0)
    shifted = lab + strength * (target_lab - mean)
    centre = mean[0] + strength * (target_lab[0] - mean[0])
    shifted[:, 0] = np.clip(centre + (lab[:, 0] - mean[0]) * k, 0.0, 100.0)

    blended = original + alpha * (_lab_to_rgb(shifted) - original)
    out[touched] = np.clip(np.rint(blended * 255.0), 0, 255).astype(np.uint8)
    return out


class SkinToneShift:
    """Random skin-tone shift over a continuous range of reference tones.

    Each call draws a position uniformly along the tone list and interpolates (in RGB) between
    the two neighbouring swatches, so every tone between the lightest and the darkest can come
    out, and draws a strength uniformly from `strength`.

    Args:
        tones: reference RGB tones (0..255), ordered (e.g. light to dark); neighbours are mixed.
        strength: (min, max) range of the strength, within [0, 1].
    """

    def __init__(
        self, tones: Sequence[Sequence[int]] = SKIN_TONES, strength: tuple[float, float] = (0.7, 1.0)
    ) -> None:
        if len(tones) == 0:
            raise ValueError("tones must not be empty: pass at least one RGB triple, e.g. SKIN_TONES")
        self.tones = np.stack([_check_rgb(tone, f"tones[{i}]") for i, tone in enumerate(tones)])
        if len(strength) != 2:
            raise ValueError(f"strength must be a (min, max) pair, got {strength!r}")
        low, high = float(strength[0]), float(strength[1])
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"strength must be (min, max) with 0 <= min <= max <= 1, got {strength!r}")
        self.strength = (low, high)

    def __call__(
        self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Shift the skin of `image` to a random tone.

        Args:
            image: (H, W, 3) uint8 RGB.
            mask: (H, W) uint8, 0..255 (255 = skin).
            rng: the source of randomness (same seed, same result).

        Returns:
            ((H, W, 3) uint8 shifted image, (H, W) uint8 copy of `mask`).
        """
        last = len(self.tones) - 1
        position = rng.uniform(0.0, last)
        i = min(int(position), max(last - 1, 0))
        frac = position - i
        tone = (1.0 - frac) * self.tones[i] + frac * self.tones[min(i + 1, last)]
        strength = rng.uniform(*self.strength)
        target = tuple(int(v) for v in np.rint(tone))
        return shift_skin_tone(image, mask, target, strength), mask.copy()
