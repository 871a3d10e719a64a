"""Skin and background Gaussian mixtures on (Cb, Cr), and the CbCr lookup tables they run as.

A per-pixel model that depends only on (Cb, Cr) is evaluated once for all 256x256 pairs
into a table indexed [Cb, Cr]; an image then costs one colour conversion and one table
lookup (about 2 ms per megapixel on one core). `cbcr_codes`, `lookup`, `bayes_posterior` and
`TableMethod` are shared with the histogram and ICM methods.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from skinseg.classical.base import SkinMethod, register
from skinseg.classical.storage import load_params, save_params
from skinseg.files import sha256

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_GMM = DATA_DIR / "gmm_original.json"
PRIOR = 0.3
# The original's sampling caps and mixture sizes (fit_gmm.py).
PIXEL_CAP = 500_000
SKIN_COMPONENTS = 3
BACKGROUND_COMPONENTS = 6


def cbcr_codes(image: np.ndarray) -> np.ndarray:
    """RGB uint8 (H,W,3) -> uint16 (H,W) codes 256·Cb + Cr (OpenCV YCrCb), a flat [Cb, Cr] index.

    The code is the little-endian reading of each pixel's adjacent (Cr, Cb) bytes, so it
    is a strided view of the conversion's output with no arithmetic.
    """
    ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
    height, width = ycrcb.shape[:2]
    return np.ndarray((height, width), dtype="<u2", buffer=ycrcb, offset=1, strides=(width * 3, 3))


def lookup(table: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Per-pixel value of a CbCr table: table (256,256) indexed [Cb, Cr], image RGB uint8 -> (H,W)."""
    return np.ascontiguousarray(table).reshape(-1).take(cbcr_codes(image))


def cbcr_grid() -> np.ndarray:
    """All (Cb, Cr) pairs in table order: float64 (65536, 2), row 256·Cb + Cr."""
    cb, cr = np.meshgrid(np.arange(256.0), np.arange(256.0), indexing="ij")
    return np.stack([cb.ravel(), cr.ravel()], axis=1)


def bayes_posterior(skin: np.ndarray, background: np.ndarray, prior: float) -> np.ndarray:
    """P(skin|x) = π·p_s / (π·p_s + (1-π)·p_bg + 1e-12) from class likelihoods (same shapes)."""
    if not 0.0 < prior < 1.0:
        raise ValueError(f"prior must be in (0, 1), got {prior}")
    weighted = prior * skin
    return weighted / (weighted + (1.0 - prior) * background + 1e-12)


def to_uint8(probability: np.ndarray) -> np.ndarray:
    """Probabilities in [0,1] -> uint8 on 0-255 (rounded)."""
    return np.rint(np.clip(probability, 0.0, 1.0) * 255.0).astype(np.uint8)


def file_digest(path: str | os.PathLike) -> str:
    """Short SHA-256 of a file, so a method's config changes when its parameter file does."""
    return sha256(path)[:16]


@dataclass(frozen=True)
class GaussianMixture2D:
    """A Gaussian mixture on (Cb, Cr).

    Attributes:
        weights: (K,) summing to 1.
        means: (K,2) in (Cb, Cr) order.
        covariances: (K,2,2) full, symmetric positive definite.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    def __post_init__(self) -> None:
        weights = np.asarray(self.weights, np.float64)
        means = np.asarray(self.means, np.float64)
        covariances = np.asarray(self.covariances, np.float64)
        count = weights.shape[0] if weights.ndim == 1 else -1
        if count < 1 or means.shape != (count, 2) or covariances.shape != (count, 2, 2):
            raise ValueError(
                f"a 2-D mixture needs weights (K,), means (K,2), covariances (K,2,2); got "
                f"{weights.shape}, {means.shape}, {covariances.shape}"
            )
        if (weights < 0).any() or not math.isclose(weights.sum(), 1.0, abs_tol=1e-3):
            raise ValueError(f"mixture weights must be >= 0 and sum to 1, got {weights.tolist()}")
        determinants = np.linalg.det(covariances)
        if not ((covariances[:, 0, 0] > 0) & (determinants > 0)).all():
            raise ValueError("mixture covariances must be positive definite")
        object.__setattr__(self, "weights", weights / weights.sum())
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "covariances", covariances)

    def log_density(self, points: np.ndarray) -> np.ndarray:
        """log p(x) for points (N,2) (Cb, Cr) -> float64 (N,)."""
        points = np.asarray(points, np.float64)
        cb = points[:, 0] - self.means[:, :1]  # (K,N): components on the short axis, reduced fast
        cr = points[:, 1] - self.means[:, 1:]
        precisions = np.linalg.inv(self.covariances)[..., None]  # (K,2,2,1)
        mahalanobis = (
            precisions[:, 0, 0] * cb**2 + 2 * precisions[:, 0, 1] * cb * cr + precisions[:, 1, 1] * cr**2
        )
        log_norm = (
            np.log(self.weights) - math.log(2 * math.pi) - 0.5 * np.log(np.linalg.det(self.covariances))
        )
        terms = log_norm[:, None] - 0.5 * mahalanobis
        peak = terms.max(axis=0)
        return peak + np.log(np.exp(terms - peak).sum(axis=0))

    def to_dict(self) -> dict[str, list]:
        return {
            "weights": self.weights.tolist(),
            "means": self.means.tolist(),
            "covariances": self.covariances.tolist(),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GaussianMixture2D:
        return cls(values["weights"], values["means"], values["covariances"])


def load_mixtures(params: str | os.PathLike | None = None) -> tuple[GaussianMixture2D, GaussianMixture2D]:
    """(skin, background) mixtures from a "gmm" parameter file (None: the shipped default)."""
    values = load_params(DEFAULT_GMM if params is None else params, kind="gmm")
    return GaussianMixture2D.from_dict(values["skin"]), GaussianMixture2D.from_dict(values["background"])


def save_mixtures(
    path: str | os.PathLike,
    skin: GaussianMixture2D,
    background: GaussianMixture2D,
    metadata: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Writes a "gmm" .json parameter file that `GMMSkin(params=path)` and `ICMSkin` load."""
    values = {"skin": skin.to_dict(), "background": background.to_dict()}
    return save_params(path, "gmm", values, {"features": ["cb", "cr"], **(metadata or {})}, overwrite)


def gmm_posterior_table(
    skin: GaussianMixture2D, background: GaussianMixture2D, prior: float = PRIOR
) -> np.ndarray:
    """P(skin | Cb, Cr) for every pair: float64 (256,256) indexed [Cb, Cr].

    Likelihoods are exponentiated before the Bayes rule, as the original did, so colours
    far from both mixtures (both densities underflow) get P = 0.
    """
    grid = cbcr_grid()
    posterior = bayes_posterior(np.exp(skin.log_density(grid)), np.exp(background.log_density(grid)), prior)
    return posterior.reshape(256, 256)


class TableMethod(SkinMethod):
    """A method whose raw mask is a uint8 CbCr table looked up per pixel (set `_table` (256,256))."""

    _table: np.ndarray

    def raw_mask(self, image: np.ndarray) -> np.ndarray:
        return lookup(self._table, image)

    def plane(self) -> np.ndarray:
        """The table drawn on the CbCr plane: uint8 (256,256), rows Cr, columns Cb."""
        return self._table.T.copy()


@register("gmm")
class GMMSkin(TableMethod):
    """Soft skin posterior from skin/background Gaussian mixtures on (Cb, Cr).

    Args:
        params: a "gmm" parameter file (`python -m skinseg.classical.fit gmm`); None: the
            original project's published mixtures (skin 3, background 6 components).
        prior: P(skin) before seeing the colour (the original's 0.3).
        **kwargs: `SkinMethod` post-processing options.
    """

    def __init__(self, params: str | os.PathLike | None = None, prior: float = PRIOR, **kwargs) -> None:
        super().__init__(**kwargs)
        self.params = None if params is None else str(params)
        self.params_digest = file_digest(DEFAULT_GMM if params is None else params)
        self.prior = prior
        self._posterior = gmm_posterior_table(*load_mixtures(params), prior)
        self._table = to_uint8(self._posterior)


def sample_pixels(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], cap: int = PIXEL_CAP, seed: int = 42
) -> tuple[np.ndarray, np.ndarray]:
    """(Cb, Cr) training pixels as the original sampled them.

    Each image contributes at most cap // len(pairs) skin (mask > 127) and as many
    background pixels, drawn without replacement with `default_rng(seed)` in the order
    given (skin then background per image).

    Args:
        pairs: (RGB uint8 (H,W,3), mask uint8 (H,W)) pairs of equal size; may load lazily.

    Returns:
        skin float32 (N,2) and background float32 (M,2), columns (Cb, Cr).
    """
    if not pairs:
        raise ValueError("no training images")
    budget = max(1, cap // len(pairs))
    rng = np.random.default_rng(seed)
    skin, background = [], []
    for image, mask in pairs:
        if mask.shape != image.shape[:2]:
            raise ValueError(f"mask {mask.shape} does not match image {image.shape[:2]}")
        ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb).reshape(-1, 3)
        features = ycrcb[:, [2, 1]]
        is_skin = mask.reshape(-1) > 127
        for selected, out in ((is_skin, skin), (~is_skin, background)):
            index = np.flatnonzero(selected)
            if index.size > budget:
                index = rng.choice(index, budget, replace=False)
            out.append(features[index])
    return np.concatenate(skin).astype(np.float32), np.concatenate(background).astype(np.float32)


def fit_mixture(features: np.ndarray, components: int, seed: int = 42) -> GaussianMixture2D:
    """Fits a full-covariance mixture with the original's scikit-learn settings; features (N,2)."""
    from sklearn.mixture import GaussianMixture  # only fitting needs scikit-learn

    if len(features) < components:
        raise ValueError(f"{len(features)} pixels cannot fit {components} mixture components")
    model = GaussianMixture(
        n_components=components,
        covariance_type="full",
        reg_covar=1e-6,
        max_iter=200,
        n_init=1,
        init_params="kmeans",
        random_state=seed,
    ).fit(features)
    return GaussianMixture2D(model.weights_, model.means_, model.covariances_)


def fit_gmm(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    skin_components: int = SKIN_COMPONENTS,
    background_components: int = BACKGROUND_COMPONENTS,
    cap: int = PIXEL_CAP,
    seed: int = 42,
) -> tuple[GaussianMixture2D, GaussianMixture2D, dict[str, int]]:
    """Fits skin and background mixtures on sampled training pixels (see `sample_pixels`).

    Unlike the original, which paired unsorted image and mask listings by position (so
    images could meet the wrong masks) and shuffled them, callers pass pairs matched by
    stem in sorted order (`python -m skinseg.classical.fit gmm` does).

    Returns:
        (skin, background, counts) with counts {"images", "skin_pixels", "background_pixels"}.
    """
    skin, background = sample_pixels(pairs, cap, seed)
    counts = {"images": len(pairs), "skin_pixels": len(skin), "background_pixels": len(background)}
    return (
        fit_mixture(skin, skin_components, seed),
        fit_mixture(background, background_components, seed),
        counts,
    )
