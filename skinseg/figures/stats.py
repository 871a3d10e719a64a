"""Colour statistics of skin and non-skin pixels in folder datasets, drawn as the original's figures.

`python -m skinseg.figures stats DATASET... --out figures/` samples pixels from the
image/mask pairs of each dataset folder (`images/`, `masks/`) and draws:
- `histograms_hsv.png`: H, S, V histograms (OpenCV 8-bit HSV) of skin and non-skin pixels,
  with the `hsv` method's ranges shaded;
- `histograms_ycbcr.png`: Y, Cb, Cr histograms likewise, with the `ycbcr` box shaded;
- `cbcr_planes.png`: the CbCr plane regions of `ycbcr`, `ellipse` and `diag_ellipse`,
  drawn as colours with Y' = 192 inside and black outside;
- `hist2d_cb_cr.png`: the 2-D Cb-Cr histogram of skin pixels (log scale) with the
  `ellipse` and fitted `diag_ellipse` regions and the 2σ ellipse of a Gaussian fitted
  to these pixels drawn on it.

Images (at most `max_images`, a random subset) and pixels (`pixels_per_image`, uniform)
are sampled, and decoding runs in worker processes, so thousands of images take seconds.
"""

from __future__ import annotations

import concurrent.futures
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from skinseg.files import refuse_existing, save_figure
from skinseg.io import DataError, read_image, read_mask

FIGURES = ("histograms_hsv.png", "histograms_ycbcr.png", "cbcr_planes.png", "hist2d_cb_cr.png")
SKIN_COLOUR, OTHER_COLOUR, RANGE_COLOUR = "#d9822b", "#5b6b7a", "red"


@dataclass
class PixelSample:
    """Sampled pixels of some datasets.

    Attributes:
        rgb: (N,3) uint8 colours.
        skin: (N,) bool, mask >= 128.
        images: images read.
        skipped: "path: reason" for pairs that could not be read.
    """

    rgb: np.ndarray
    skin: np.ndarray
    images: int
    skipped: list[str]

    def colour_space(self, code: int) -> np.ndarray:
        """(N,3) uint8 pixels converted with an OpenCV RGB2* code."""
        return cv2.cvtColor(self.rgb.reshape(-1, 1, 3), code).reshape(-1, 3)


def dataset_pairs(folder: str | os.PathLike) -> list[tuple[Path, Path]]:
    """(image, mask) paths of a dataset folder with `images/` and `masks/` (matched by stem).

    Raises:
        DataError: no such folder, no images/ or masks/ in it, or no pair.
    """
    from skinseg.io import list_by_stem

    root = Path(folder).expanduser()
    if not (root / "images").is_dir() or not (root / "masks").is_dir():
        raise DataError(f"{root}: expected a dataset folder with images/ and masks/ (STEM.jpg|png + STEM.png)")
    images, masks = list_by_stem(root / "images"), list_by_stem(root / "masks")
    pairs = [(images[stem], masks[stem]) for stem in sorted(images.keys() & masks.keys())]
    if not pairs:
        raise DataError(f"{root}: no image in images/ has a mask of the same stem in masks/")
    return pairs


def _sample_pair(pair: tuple[Path, Path], pixels: int, seed: int) -> tuple[np.ndarray, np.ndarray] | str:
    """Random pixels of one pair: ((n,3) uint8, (n,) bool), or the reason it could not be read."""
    image_path, mask_path = pair
    try:
        rgb, mask = read_image(image_path), read_mask(mask_path)
    except DataError as error:
        return str(error)
    if mask.shape != rgb.shape[:2]:
        return f"{mask_path}: mask {mask.shape[1]}x{mask.shape[0]} but image {rgb.shape[1]}x{rgb.shape[0]}"
    flat = np.random.default_rng(seed).integers(0, mask.size, size=min(pixels, mask.size))
    return rgb.reshape(-1, 3)[flat], mask.reshape(-1)[flat] >= 128


def sample_pixels(
    folders: Sequence[str | os.PathLike],
    max_images: int = 2000,
    pixels_per_image: int = 4000,
    seed: int = 0,
    workers: int = 2,
) -> PixelSample:
    """Samples pixels of up to `max_images` random pairs from the dataset folders.

    Raises:
        DataError: a folder is not a dataset, or no pair could be read.
    """
    pairs = [pair for folder in folders for pair in dataset_pairs(folder)]
    chosen = random.Random(seed).sample(pairs, min(max_images, len(pairs)))
    seeds = range(seed, seed + len(chosen))
    if workers > 1 and len(chosen) > 1:
        with concurrent.futures.ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_sample_pair, chosen, [pixels_per_image] * len(chosen), seeds, chunksize=8))
    else:
        results = [_sample_pair(pair, pixels_per_image, s) for pair, s in zip(chosen, seeds)]
    read = [result for result in results if not isinstance(result, str)]
    if not read:
        raise DataError(f"none of the {len(chosen)} sampled pairs could be read: {results[0]}")
    return PixelSample(
        rgb=np.concatenate([rgb for rgb, _ in read]),
        skin=np.concatenate([skin for _, skin in read]),
        images=len(read),
        skipped=[result for result in results if isinstance(result, str)],
    )


def _histogram_panels(axes, values: np.ndarray, skin: np.ndarray, names: Sequence[str], tops: Sequence[int],
                      ranges: Sequence[tuple[int, int] | None], method: str) -> None:
    for column, axis in enumerate(axes):
        bins = np.arange(tops[column] + 2) - 0.5
        interior_peak = 0.0
        for selection, colour, label in ((~skin, OTHER_COLOUR, "not skin"), (skin, SKIN_COLOUR, "skin")):
            if selection.any():
                density, _, _ = axis.hist(values[selection, column], bins=bins, density=True, histtype="stepfilled",
                                          alpha=0.45, color=colour, label=label)
                interior_peak = max(interior_peak, float(density[1:-1].max()))
        if interior_peak > 0:  # clipped pixels (0 and the top value) would flatten the rest
            axis.set_ylim(0, 1.15 * interior_peak)
        if ranges[column] is not None:
            low, high = ranges[column]
            axis.axvspan(low - 0.5, high + 0.5, color=RANGE_COLOUR, alpha=0.12, label=f"`{method}` range")
        axis.set_xlim(-0.5, tops[column] + 0.5)
        axis.set_title(names[column])
        axis.set_yticks([])
    axes[0].legend(loc="upper right", fontsize="small")


def draw_histograms(sample: PixelSample, out_dir: Path) -> list[Path]:
    """HSV and YCbCr histograms of skin vs non-skin pixels with the methods' ranges shaded."""
    import matplotlib.pyplot as plt

    from skinseg.classical import create_method

    hsv_method, ycbcr_method = create_method("hsv"), create_method("ycbcr")
    ycrcb = sample.colour_space(cv2.COLOR_RGB2YCrCb)
    panels = {
        "histograms_hsv.png": (sample.colour_space(cv2.COLOR_RGB2HSV), ("hue (OpenCV, 0-179)", "saturation", "value"),
                               (179, 255, 255), (hsv_method.hue, hsv_method.saturation, hsv_method.value), "hsv"),
        "histograms_ycbcr.png": (ycrcb[:, [0, 2, 1]], ("Y' (luma)", "Cb", "Cr"), (255, 255, 255),
                                 (None, ycbcr_method.cb, ycbcr_method.cr), "ycbcr"),
    }
    written = []
    for name, (values, names, tops, ranges, method) in panels.items():
        figure, axes = plt.subplots(1, 3, figsize=(12, 3.2))
        _histogram_panels(axes, values, sample.skin, names, tops, ranges, method)
        figure.suptitle(f"{sample.images} images, {len(sample.skin):,} pixels ({sample.skin.mean():.0%} skin)")
        written.append(save_figure(figure, out_dir / name))
    return written


def plane_picture(region: np.ndarray, luma: int = 192) -> np.ndarray:
    """RGB (256,256,3) of the CbCr plane (rows Cr, columns Cb): Y' = luma where region > 0, black elsewhere."""
    cb = np.tile(np.arange(256, dtype=np.uint8), (256, 1))
    ycrcb = np.dstack([np.full_like(cb, luma), cb.T, cb])
    rgb = cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)
    return np.where(region[..., None] > 0, rgb, 0).astype(np.uint8)


def method_regions() -> dict[str, np.ndarray]:
    """(256,256) uint8 regions of the CbCr methods on the plane (rows Cr, columns Cb)."""
    from skinseg.classical import create_method

    ycbcr = create_method("ycbcr")
    box = np.zeros((256, 256), np.uint8)
    box[ycbcr.cr[0]: ycbcr.cr[1] + 1, ycbcr.cb[0]: ycbcr.cb[1] + 1] = 255
    return {"ycbcr": box, "ellipse": create_method("ellipse").plane(255),
            "diag_ellipse": create_method("diag_ellipse").plane(255)}


def draw_planes(out_dir: Path) -> Path:
    """The CbCr regions of the box and ellipse methods, as colours at Y' = 192."""
    import matplotlib.pyplot as plt

    regions = method_regions()
    figure, axes = plt.subplots(1, len(regions), figsize=(4 * len(regions), 4.2))
    for axis, (name, region) in zip(axes, regions.items()):
        axis.imshow(plane_picture(region), origin="lower", extent=(-0.5, 255.5, -0.5, 255.5))
        axis.set_title(f"`{name}`: Y' = 192 inside, 0 outside")
        axis.set_xlabel("Cb")
        axis.set_ylabel("Cr")
    return save_figure(figure, out_dir / "cbcr_planes.png")


def gaussian_ellipse(points: np.ndarray, sigmas: float = 2.0, steps: int = 200) -> np.ndarray:
    """(steps,2) outline of the `sigmas` Mahalanobis ellipse of a Gaussian fitted to (N,2) points."""
    mean, covariance = points.mean(axis=0), np.cov(points, rowvar=False)
    values, vectors = np.linalg.eigh(covariance)
    angles = np.linspace(0, 2 * np.pi, steps)
    circle = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return mean + sigmas * (circle * np.sqrt(np.maximum(values, 0))) @ vectors.T


def draw_hist2d(sample: PixelSample, out_dir: Path) -> Path:
    """2-D Cb-Cr histogram of skin pixels with the ellipse methods' regions and a fitted Gaussian."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm
    from matplotlib.lines import Line2D

    ycrcb = sample.colour_space(cv2.COLOR_RGB2YCrCb)[sample.skin]
    figure, axis = plt.subplots(figsize=(6.4, 5.6))
    if len(ycrcb):
        counts, _, _ = np.histogram2d(ycrcb[:, 2], ycrcb[:, 1], bins=256, range=((-0.5, 255.5), (-0.5, 255.5)))
        image = axis.imshow(counts.T, origin="lower", extent=(-0.5, 255.5, -0.5, 255.5), cmap="magma",
                            norm=LogNorm(vmin=1, vmax=max(2, counts.max())))
        figure.colorbar(image, ax=axis, label="skin pixels")
    handles = []
    for (name, region), colour in zip(method_regions().items(), ("white", "cyan", "lime")):
        if name == "ycbcr":
            continue
        axis.contour(region > 0, levels=[0.5], colors=[colour], linewidths=1.2, origin="lower",
                     extent=(-0.5, 255.5, -0.5, 255.5))
        handles.append(Line2D([], [], color=colour, label=f"`{name}` region"))
    if len(ycrcb) > 2:
        outline = gaussian_ellipse(ycrcb[:, [2, 1]].astype(np.float64))
        axis.plot(outline[:, 0], outline[:, 1], "--", color="white", linewidth=1.2)
        handles.append(Line2D([], [], color="white", linestyle="--", label="2σ Gaussian fit of these pixels"))
    axis.legend(handles=handles, loc="upper left", fontsize="small", facecolor="#333333", labelcolor="white")
    axis.set(xlabel="Cb", ylabel="Cr", xlim=(60, 180), ylim=(100, 220),
             title=f"Cb-Cr of skin pixels ({len(ycrcb):,} from {sample.images} images)")
    return save_figure(figure, out_dir / "hist2d_cb_cr.png")


def draw_stats(folders: Sequence[str | os.PathLike], out_dir: str | os.PathLike, max_images: int = 2000,
               pixels_per_image: int = 4000, seed: int = 0, workers: int = 2,
               overwrite: bool = False) -> tuple[list[Path], PixelSample]:
    """Samples the datasets and writes the four figures into out_dir; returns (paths, sample).

    Raises:
        FileExistsError: a figure exists and `overwrite` is False (checked before any work).
        DataError: a folder is not a dataset, or nothing could be read.
    """
    import matplotlib

    matplotlib.use("Agg")
    out_dir = Path(out_dir)
    if not overwrite:
        refuse_existing([out_dir / name for name in FIGURES], "choose another --out or pass --overwrite")
    sample = sample_pixels(folders, max_images, pixels_per_image, seed, workers)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [*draw_histograms(sample, out_dir), draw_planes(out_dir), draw_hist2d(sample, out_dir)]
    return paths, sample
