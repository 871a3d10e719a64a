"""The 26 colour/occlusion variants as albumentations transforms, and `seed26` that samples them online.

Families (26 variants per image, the original's parameters):
- hue rotation x6 (+60° ... +360°), desaturation x3 (S x 0.5, 0.3, 0), saturation
  boost x2 (S x 1.2, 1.5): skin colour varies with people, light and cameras, so a
  skin model should rely on more than one narrow hue band (colour-invariant skin
  segmentation, CVPRW 2022);
- contrast/brightness x5 and sepia x8: exposure, white balance and photo filters;
- full and partial lattice occlusion: thin dark lines removed from image and mask, as
  fishnets, bracelets and watches occlude skin.

`VARIANTS` names the 26 (the name is the file suffix offline, e.g. `STEM__hue060.png`);
`seed26()` samples one of them (or none) per example. This module also imports
albumentations for the package, with its network version check off.
"""

from __future__ import annotations

import os
from collections.abc import Callable

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no version check over the network

import albumentations as A  # noqa: E402
import numpy as np  # noqa: E402

from skinseg.augment.ops import (  # noqa: E402
    SEPIA_VARIANTS,
    contrast_brightness,
    draw_lattice,
    occlude_with_lattice,
    rotate_hue,
    scale_saturation,
    sepia,
)


class HueRotation(A.ImageOnlyTransform):
    """Rotates hue by `degrees` (OpenCV HSV); the mask is unchanged."""

    def __init__(self, degrees: float = 60.0, p: float = 1.0) -> None:
        super().__init__(p=p)
        self.degrees = degrees

    def apply(self, img: np.ndarray, **params) -> np.ndarray:
        return rotate_hue(img, self.degrees)


class Saturation(A.ImageOnlyTransform):
    """Scales HSV saturation by `factor` (0 gives grey); the mask is unchanged."""

    def __init__(self, factor: float = 0.5, p: float = 1.0) -> None:
        super().__init__(p=p)
        self.factor = factor

    def apply(self, img: np.ndarray, **params) -> np.ndarray:
        return scale_saturation(img, self.factor)


class ContrastBrightness(A.ImageOnlyTransform):
    """|alpha·x + beta| saturated; the mask is unchanged."""

    def __init__(self, alpha: float = 1.0, beta: float = 0.0, p: float = 1.0) -> None:
        super().__init__(p=p)
        self.alpha, self.beta = alpha, beta

    def apply(self, img: np.ndarray, **params) -> np.ndarray:
        return contrast_brightness(img, self.alpha, self.beta)


class Sepia(A.ImageOnlyTransform):
    """Sepia tone of `strength` k (0: identity, 1: sepia, > 1 extrapolates); mask unchanged.

    `variant="bgr"` reproduces the original's channel-swapped, bluish sepia;
    `original_bug=True` also its one wrong matrix coefficient.
    """

    def __init__(self, strength: float = 1.0, variant: str = "rgb", original_bug: bool = False, p: float = 1.0):
        super().__init__(p=p)
        if variant not in SEPIA_VARIANTS:
            raise ValueError(f"sepia variant must be one of {SEPIA_VARIANTS}, got {variant!r}")
        self.strength, self.variant, self.original_bug = strength, variant, original_bug

    def apply(self, img: np.ndarray, **params) -> np.ndarray:
        return sepia(img, self.strength, self.variant, self.original_bug)


class LatticeOcclusion(A.DualTransform):
    """Dark jittered lattice lines drawn on skin and removed from the mask.

    Args:
        spacing: line spacing in px (20 full, 40 partial in the original).
        jitter: maximum random shift of each line in px.
        line_width: line width in px.
        max_rotation: the grid turns by a random integer angle in [0, max_rotation] degrees.
        partial: occlude only below a random row in [H/4, H/2] (bracelets, watches).
        reference_size: None keeps the sizes in pixels (the original); a number scales
            spacing, jitter and width by min(H, W) / reference_size.
    """

    def __init__(
        self,
        spacing: float = 20.0,
        jitter: float = 3.0,
        line_width: float = 2.0,
        max_rotation: int = 90,
        partial: bool = False,
        reference_size: int | None = None,
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        self.spacing, self.jitter, self.line_width = spacing, jitter, line_width
        self.max_rotation, self.partial, self.reference_size = max_rotation, partial, reference_size

    def get_params_dependent_on_data(self, params: dict, data: dict) -> dict:
        height, width = params["shape"][:2]
        scale = min(height, width) / self.reference_size if self.reference_size else 1.0
        seed = int(self.random_generator.integers(0, 2**63 - 1))
        lattice = draw_lattice(
            height,
            width,
            np.random.default_rng(seed),
            self.spacing * scale,
            self.jitter * scale,
            max(1.0, self.line_width * scale),
            self.max_rotation,
        )
        start_row = int(self.random_generator.integers(height // 4, height // 2 + 1)) if self.partial else 0
        mask = data.get("mask")
        if mask is None:
            raise ValueError("LatticeOcclusion needs the mask: call it with image= and mask=")
        image, occluded = occlude_with_lattice(data["image"], mask, lattice, start_row)
        return {"occluded_image": image, "occluded_mask": occluded}

    def apply(self, img: np.ndarray, occluded_image: np.ndarray, **params) -> np.ndarray:
        return occluded_image

    def apply_to_mask(self, mask: np.ndarray, occluded_mask: np.ndarray, **params) -> np.ndarray:
        return occluded_mask


def variant_factories(
    sepia_variant: str = "rgb", lattice_reference: int | None = None
) -> dict[str, Callable[[], A.BasicTransform]]:
    """Name -> transform factory for the original's 26 variants, in the original's order."""
    factories: dict[str, Callable[[], A.BasicTransform]] = {}
    for step in range(1, 7):
        factories[f"hue{60 * step:03d}"] = lambda d=60 * step: HueRotation(d)
    for factor in (0.5, 0.3, 0.0):
        factories[f"desat{round(factor * 100):03d}"] = lambda f=factor: Saturation(f)
    for factor in (1.2, 1.5):
        factories[f"sat{round(factor * 100):03d}"] = lambda f=factor: Saturation(f)
    for alpha, beta in ((1.0, 5), (1.5, 0), (0.7, 5), (0.7, 0), (1.5, 5)):
        name = f"contrast{round(alpha * 100):03d}_bright{beta:02d}"
        factories[name] = lambda a=alpha, b=beta: ContrastBrightness(a, b)
    for index in range(8):
        strength = index * 0.25
        factories[f"sepia{round(strength * 100):03d}"] = lambda k=strength: Sepia(k, sepia_variant)
    factories["lattice_full"] = lambda: LatticeOcclusion(20, 3, 2, reference_size=lattice_reference)
    factories["lattice_partial"] = lambda: LatticeOcclusion(
        40, 3, 2, partial=True, reference_size=lattice_reference
    )
    return factories


VARIANTS: tuple[str, ...] = tuple(variant_factories())  # seed26: the named list of the 26 variants


def seed26(sepia_variant: str = "rgb", lattice_reference: int | None = None, p: float = 1.0) -> A.OneOf:
    """With probability `p`, one of the 26 variants or the unchanged image, uniformly (1/27 each)."""
    choices = [make() for make in variant_factories(sepia_variant, lattice_reference).values()]
    return A.OneOf([*choices, A.NoOp()], p=p)


def apply_variant(
    name: str, image: np.ndarray, mask: np.ndarray, seed: int, sepia_variant: str = "rgb"
) -> tuple[np.ndarray, np.ndarray]:
    """One named variant of a pair, deterministic for `seed`: (image, mask), uint8."""
    factories = variant_factories(sepia_variant)
    if name not in factories:
        raise KeyError(f"unknown variant {name!r}; valid names: {', '.join(factories)}")
    transform = A.Compose([factories[name]()], seed=seed)
    out = transform(image=image, mask=mask)
    return out["image"], out["mask"]
