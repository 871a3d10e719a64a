"""Jones & Rehg style Bayes classifier on a 2-D CbCr colour histogram.

Skin and non-skin pixel counts over Cb x Cr bins (default 32x32 bins of 8 levels) give
the class likelihoods s(c) and n(c); the posterior P(skin|c) = s·π / (s·π + n·(1-π)) is
expanded once to a 256x256 table and looked up per pixel like the GMM's.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from skinseg.classical.base import register
from skinseg.classical.gmm import DATA_DIR, TableMethod, bayes_posterior, cbcr_codes, file_digest, to_uint8
from skinseg.classical.storage import load_params, save_params

DEFAULT_HISTOGRAM = DATA_DIR / "histogram_public.npz"
BINS = 32


def bin_index(bins: int) -> np.ndarray:
    """The bin of each 8-bit level: int (256,), levels split as evenly as integers allow."""
    if not 1 <= bins <= 256:
        raise ValueError(f"bins must be in [1, 256], got {bins}")
    return np.arange(256) * bins // 256


def count_colours(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-(Cb, Cr) pixel counts of skin (mask > 127) and non-skin pixels.

    Args:
        pairs: (RGB uint8 (H,W,3), mask uint8 (H,W)) pairs of equal size; may load lazily.

    Returns:
        skin and non-skin int64 (256,256) counts indexed [Cb, Cr], and the number of images.
    """
    skin = np.zeros(256 * 256, np.int64)
    total = np.zeros(256 * 256, np.int64)
    images = 0
    for image, mask in pairs:
        if mask.shape != image.shape[:2]:
            raise ValueError(f"mask {mask.shape} does not match image {image.shape[:2]}")
        codes = cbcr_codes(image)
        total += np.bincount(codes.reshape(-1), minlength=256 * 256)
        skin += np.bincount(codes[mask > 127], minlength=256 * 256)
        images += 1
    return skin.reshape(256, 256), (total - skin).reshape(256, 256), images


def rebin(counts: np.ndarray, bins: int) -> np.ndarray:
    """Sums (256,256) per-level counts into (bins, bins) bins (see `bin_index`)."""
    starts = np.searchsorted(bin_index(bins), np.arange(bins))
    return np.add.reduceat(np.add.reduceat(counts, starts, axis=0), starts, axis=1)


def fit_histogram(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]], bins: int = BINS
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Skin and non-skin CbCr histograms of training pixels.

    Returns:
        (skin, nonskin, counts): int64 (bins, bins) indexed [Cb bin, Cr bin], and
        {"images", "skin_pixels", "nonskin_pixels"}.
    """
    skin, nonskin, images = count_colours(pairs)
    if images == 0:
        raise ValueError("no training images")
    counts = {"images": images, "skin_pixels": int(skin.sum()), "nonskin_pixels": int(nonskin.sum())}
    return rebin(skin, bins), rebin(nonskin, bins), counts


def save_histogram(
    path: str | os.PathLike,
    skin: np.ndarray,
    nonskin: np.ndarray,
    metadata: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Writes a "histogram" .npz file: counts as uint32 (uint64 if needed), axes [Cb, Cr]."""
    dtype = np.uint32 if max(skin.max(), nonskin.max()) < 2**32 else np.uint64
    values = {"skin": skin.astype(dtype), "nonskin": nonskin.astype(dtype)}
    return save_params(path, "histogram", values, {"axes": ["cb", "cr"], **(metadata or {})}, overwrite)


def histogram_posterior_table(
    skin: np.ndarray, nonskin: np.ndarray, prior: float | None = None, smoothing: float = 0.0
) -> np.ndarray:
    """P(skin | Cb, Cr) for every pair from (bins, bins) counts: float64 (256,256) indexed [Cb, Cr].

    Args:
        skin, nonskin: counts indexed [Cb bin, Cr bin].
        prior: P(skin); None: the skin share of the training pixels.
        smoothing: Laplace pseudo-count added to every bin of both histograms.
    """
    skin, nonskin = np.asarray(skin, np.float64), np.asarray(nonskin, np.float64)
    if skin.shape != nonskin.shape or skin.ndim != 2 or skin.shape[0] != skin.shape[1]:
        raise ValueError(f"histograms must be square and of one shape, got {skin.shape} and {nonskin.shape}")
    if smoothing < 0:
        raise ValueError(f"smoothing must be >= 0, got {smoothing}")
    skin_total, nonskin_total = skin.sum(), nonskin.sum()
    if skin_total == 0 or nonskin_total == 0:
        raise ValueError("the histograms need both skin and non-skin pixels")
    if prior is None:
        prior = skin_total / (skin_total + nonskin_total)
    smoothed_skin = (skin + smoothing) / (skin_total + smoothing * skin.size)
    smoothed_nonskin = (nonskin + smoothing) / (nonskin_total + smoothing * nonskin.size)
    posterior = bayes_posterior(smoothed_skin, smoothed_nonskin, prior)
    index = bin_index(skin.shape[0])
    return posterior[np.ix_(index, index)]


@register("histogram")
class HistogramSkin(TableMethod):
    """Soft skin posterior from CbCr histograms (Jones & Rehg's Bayes classifier).

    Args:
        params: a "histogram" parameter file (`python -m skinseg.classical.fit histogram`);
            None: the shipped histogram of the public datasets' training splits.
        prior: P(skin); None: the skin share of the file's training pixels.
        smoothing: Laplace pseudo-count per bin (0: none; unseen colours then get P = 0).
        **kwargs: `SkinMethod` post-processing options.
    """

    def __init__(
        self,
        params: str | os.PathLike | None = None,
        prior: float | None = None,
        smoothing: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        path = DEFAULT_HISTOGRAM if params is None else params
        self.params = None if params is None else str(params)
        self.params_digest = file_digest(path)
        self.prior, self.smoothing = prior, smoothing
        values = load_params(path, kind="histogram")
        self._table = to_uint8(histogram_posterior_table(values["skin"], values["nonskin"], prior, smoothing))
