"""GMM colour likelihoods plus a contrast-sensitive Potts MRF, solved by ICM (the original's
icm_segment.py, whose docstring says graph cuts but whose code does synchronous ICM).

Energy: unaries U1 = -log P, U0 = -log(1-P) with P the GMM skin posterior, and for each
4-neighbour pair with different labels λ·exp(-β·||Lab_i - Lab_j||²). Each sweep relabels
all pixels at once: skin where E1 < E0. Because E0 = U0 + S and E1 = U1 + (W - S), with S
the weight of a pixel's skin neighbours and W the weight of all its neighbours, a sweep
reduces to S > (U1 - U0 + W) / 2: four multiply-adds and one comparison per pixel.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from skinseg.classical.base import SkinMethod, register
from skinseg.classical.gmm import DEFAULT_GMM, PRIOR, file_digest, gmm_posterior_table, load_mixtures, lookup


def squared_distances(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Squared colour distances to the right (H,W-1) and lower (H-1,W) neighbours.

    Args:
        lab: float32 (H,W,3) colours.
    """
    distances = []
    for first, second in ((lab[:, 1:], lab[:, :-1]), (lab[1:], lab[:-1])):
        difference = first - second
        difference *= difference
        total = difference[..., 0] + difference[..., 1]
        total += difference[..., 2]
        distances.append(total)
    return distances[0], distances[1]


def contrast_beta(horizontal: np.ndarray, vertical: np.ndarray) -> float:
    """β = 1 / (2·mean squared colour distance) over all horizontal and vertical neighbour pairs.

    Args:
        horizontal, vertical: squared distances from `squared_distances`.

    Returns:
        β, or 1.0 when the mean is 0 (a flat image or one without pairs).
    """
    pairs = horizontal.size + vertical.size
    mean = (horizontal.sum(dtype=np.float64) + vertical.sum(dtype=np.float64)) / pairs if pairs else 0.0
    return 1.0 / (2.0 * mean) if mean > 0 else 1.0


def contrast_weights(image: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Pair weights λ·exp(-β·||Lab_i - Lab_j||²): horizontal (H,W-1) and vertical (H-1,W), float32.

    Args:
        image: RGB uint8 (H,W,3); Lab from OpenCV's 8-bit conversion, as float32.
        lam: λ, the weight of a pair of identical colours.
    """
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2Lab).astype(np.float32)
    horizontal, vertical = squared_distances(lab)
    beta = contrast_beta(horizontal, vertical)
    for weights in (horizontal, vertical):
        weights *= np.float32(-beta)
        np.exp(weights, out=weights)
        weights *= np.float32(lam)
    return horizontal, vertical


def icm_labels(gap: np.ndarray, horizontal: np.ndarray, vertical: np.ndarray, sweeps: int) -> np.ndarray:
    """Synchronous ICM for a binary contrast-sensitive Potts model.

    Args:
        gap: float32 (H,W) unary difference U1 - U0 (negative favours skin).
        horizontal: float32 (H,W-1) weights between (y, x) and (y, x+1).
        vertical: float32 (H-1,W) weights between (y, x) and (y+1, x).
        sweeps: number of all-pixels-at-once updates.

    Returns:
        bool (H,W), True for skin.
    """
    total = np.zeros_like(gap)  # W: each pixel's summed neighbour weight
    total[:, 1:] += horizontal
    total[:, :-1] += horizontal
    total[1:] += vertical
    total[:-1] += vertical
    threshold = np.add(gap, total, out=total)
    threshold *= np.float32(0.5)

    skin = gap < 0
    labels = skin.astype(np.float32)
    neighbours = np.empty_like(gap)  # S: summed weight of skin neighbours
    row_buffer, column_buffer = np.empty_like(horizontal), np.empty_like(vertical)
    for _ in range(sweeps):
        neighbours.fill(0.0)
        for out, weights, source, buffer in (
            (neighbours[:, 1:], horizontal, labels[:, :-1], row_buffer),
            (neighbours[:, :-1], horizontal, labels[:, 1:], row_buffer),
            (neighbours[1:], vertical, labels[:-1], column_buffer),
            (neighbours[:-1], vertical, labels[1:], column_buffer),
        ):
            out += np.multiply(weights, source, out=buffer)
        np.greater(neighbours, threshold, out=skin)
        np.copyto(labels, skin)
    return skin


@register("icm")
class ICMSkin(SkinMethod):
    """GMM skin likelihoods smoothed by a contrast-sensitive Potts MRF (ICM); hard 0/255 output.

    Args:
        params: a "gmm" parameter file; None: the original's published mixtures.
        prior: P(skin) in the GMM posterior (the original's 0.3).
        lam: λ, the Potts weight for neighbours of identical colour (the original's 40).
        sweeps: synchronous ICM sweeps (the original's 5).
        scale: segment a copy resized by this factor (0 < scale <= 1) and resize the labels
            back (nearest); 1.0 is full resolution. The original's demo used 0.25.
        **kwargs: `SkinMethod` post-processing options.
    """

    def __init__(
        self,
        params: str | os.PathLike | None = None,
        prior: float = PRIOR,
        lam: float = 40.0,
        sweeps: int = 5,
        scale: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if lam < 0 or sweeps < 0:
            raise ValueError(f"lam and sweeps must be >= 0, got lam={lam}, sweeps={sweeps}")
        if not 0.0 < scale <= 1.0:
            raise ValueError(f"scale must be in (0, 1], got {scale}")
        self.params = None if params is None else str(params)
        self.params_digest = file_digest(DEFAULT_GMM if params is None else params)
        self.prior, self.lam, self.sweeps, self.scale = prior, lam, sweeps, scale
        posterior = gmm_posterior_table(*load_mixtures(params), prior)
        skin_cost = -np.log(np.clip(posterior, 1e-12, 1.0))
        background_cost = -np.log(np.clip(1.0 - posterior, 1e-12, 1.0))
        self._gap = (skin_cost - background_cost).astype(np.float32)

    def raw_mask(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        if self.scale < 1.0:
            size = (max(1, round(width * self.scale)), max(1, round(height * self.scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        skin = icm_labels(lookup(self._gap, image), *contrast_weights(image, self.lam), self.sweeps)
        mask = skin.view(np.uint8) * np.uint8(255)
        if mask.shape != (height, width):
            mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
        return mask
