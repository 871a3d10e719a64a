"""Fits the classical methods' parameters on folder datasets (training splits).

    python -m skinseg.classical.fit {ellipse,gmm,histogram} DATA [DATA ...] --out PATH
        [--max-images N] [--stride K] [--seed S] [--maxiter M] [--bins B] [--overwrite]

Each DATA is a folder dataset (images/, masks/, optional splits.json); its train split is
used (every pair when there is no splits.json), pairs matched by stem in sorted order,
datasets in the order given. The file written records the data and settings used and
loads with `params=PATH` in the matching method ("diag_ellipse", "gmm"/"icm", "histogram").

ellipse: the original's fit of the rotated CbCr ellipse. Differential evolution over
(cb0, cr0, a, b, theta) minimises -(mean IoU - 0.01·a·b/3600) on every `stride`-th training
image (at most `max_images`, evenly spread: the original took the first 300 of one
dataset's stride-3 list, which on several datasets would drop the later ones). IoU is on
the raw ellipse mask against GT > 0, computed from per-image CbCr histograms.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy import sparse
from scipy.optimize import differential_evolution

from skinseg.classical.colour import DIAGONAL_ELLIPSE_TUNED, ellipse_intervals
from skinseg.classical.gmm import cbcr_codes, fit_gmm, save_mixtures
from skinseg.classical.histogram import BINS, fit_histogram, save_histogram
from skinseg.classical.storage import save_params
from skinseg.errors import ArgumentParser, DataError, add_debug_option, at_least, user_command

KINDS = ("ellipse", "gmm", "histogram")
ELLIPSE_KEYS = ("cb0", "cr0", "a", "b", "theta")
ELLIPSE_BOUNDS = ((60.0, 160.0), (120.0, 190.0), (3.0, 60.0), (3.0, 60.0), (0.0, 180.0))
AREA_PENALTY = 0.01
# Per kind: the original's image stride, image cap and seed.
DEFAULTS = {
    "ellipse": {"stride": 3, "max_images": 300, "seed": 1337},
    "gmm": {"stride": 1, "max_images": None, "seed": 42},
    "histogram": {"stride": 1, "max_images": None, "seed": None},
}


class Pairs(Sequence):
    """Training pairs read on access: (RGB uint8 (H,W,3), mask uint8 (H,W) resized to the image).

    Args:
        samples: objects with `.image` and `.mask` file paths (e.g. `FolderIndex` samples).
    """

    def __init__(self, samples: Sequence[Any]) -> None:
        self.samples = list(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        # skinseg.data's package __init__ imports torch; only reading data needs it.
        from skinseg.io import read_image, read_mask

        sample = self.samples[index]
        image, mask = read_image(sample.image), read_mask(sample.mask)
        if mask.shape != image.shape[:2]:
            mask = cv2.resize(mask, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
        return image, mask


def select(samples: Sequence[Any], stride: int = 1, max_images: int | None = None) -> list[Any]:
    """Every `stride`-th sample, then at most `max_images` of those spread evenly."""
    chosen = list(samples)[::stride]
    if max_images is not None and len(chosen) > max_images:
        chosen = [chosen[i] for i in np.linspace(0, len(chosen) - 1, max_images).round().astype(int)]
    return chosen


def training_samples(folders: Sequence[str | Path]) -> tuple[list[Any], list[dict[str, Any]]]:
    """The train splits of folder datasets, in the order given, each sorted by stem.

    Returns:
        (samples, per-dataset descriptions {"name", "path", "train_images"} for metadata).
    """
    from skinseg.data.folder import split_samples  # imports torch; see Pairs

    samples, described = [], []
    for folder in folders:
        name = Path(folder).resolve().name
        train = split_samples([(name, Path(folder))], "train", val_fraction=0.0, resize_masks=True)
        samples += train
        described.append({"name": name, "path": str(Path(folder).resolve()), "train_images": len(train)})
    return samples, described


def ellipse_inside(params: Sequence[float]) -> np.ndarray:
    """1.0 inside the (cb0, cr0, a, b, theta) ellipse, else 0.0: float64 (65536,), index 256·Cb + Cr.

    Uses `colour.ellipse_intervals`, so it is exactly the "diag_ellipse" method's region.
    """
    lows, highs = ellipse_intervals(*params)  # per Cr
    cb = np.arange(256)[:, None]
    return ((cb >= lows[None, :]) & (cb <= highs[None, :])).astype(np.float64).reshape(-1)


class EllipseObjective:
    """Per-image IoU of raw ellipse masks, from CbCr histograms instead of pixels.

    For each image, the counts of all pixels and of GT-skin pixels (mask > 0) per (Cb, Cr)
    are stored as sparse rows; for an ellipse table E, intersection = skin·E, predicted
    area = all·E and union = |GT| + all·E - skin·E, the same numbers a per-pixel pass gives.

    Args:
        pairs: (RGB uint8 (H,W,3), mask uint8 (H,W)) pairs of equal size.
    """

    def __init__(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        all_rows, skin_rows = [], []
        self.pixels = 0
        for image, mask in pairs:
            codes = cbcr_codes(image)
            all_rows.append(np.bincount(codes.reshape(-1), minlength=256 * 256))
            skin_rows.append(np.bincount(codes[mask > 0], minlength=256 * 256))
            self.pixels += codes.size
        if not all_rows:
            raise DataError("no training images")
        self._all = sparse.csr_array(np.stack(all_rows).astype(np.float64))
        self._skin = sparse.csr_array(np.stack(skin_rows).astype(np.float64))
        self._truth = self._skin.sum(axis=1)

    def __len__(self) -> int:
        return self._all.shape[0]

    def ious(self, params: Sequence[float]) -> np.ndarray:
        """IoU per image (0 where the union is empty): float64 (N,)."""
        inside = ellipse_inside(params)
        intersection = self._skin @ inside
        union = self._truth + self._all @ inside - intersection
        return np.divide(intersection, union, out=np.zeros_like(union), where=union > 0)

    def __call__(self, params: Sequence[float]) -> float:
        """-(mean IoU - 0.01·a·b/3600), the value differential evolution minimises."""
        a, b = params[2], params[3]
        return -(self.ious(params).mean() - AREA_PENALTY * a * b / 3600.0)


def fit_ellipse(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    seed: int = 1337,
    maxiter: int = 20,
    popsize: int = 15,
    log: Callable[[str], None] | None = print,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Fits the rotated CbCr ellipse with the original's differential-evolution settings.

    Args:
        pairs: training (image, mask) pairs.
        seed: differential evolution seed (the original's 1337).
        maxiter: generations (the original's 20).
        popsize: population multiplier (the original's 15).
        log: called with one progress line per generation; None for silence.

    Returns:
        ({cb0, cr0, a, b, theta}, info with train_iou, objective, generations, evaluations, seconds).
    """
    start = time.perf_counter()
    objective = EllipseObjective(pairs)
    prepared = time.perf_counter() - start
    generation = 0

    def progress(intermediate_result) -> None:
        nonlocal generation
        generation += 1
        if log is not None:
            values = ", ".join(
                f"{key}={value:.2f}" for key, value in zip(ELLIPSE_KEYS, intermediate_result.x)
            )
            log(
                f"generation {generation}/{maxiter}: objective {intermediate_result.fun:.5f}, "
                f"train IoU {objective.ious(intermediate_result.x).mean():.4f} ({values}) "
                f"[{time.perf_counter() - start:.1f} s]"
            )

    result = differential_evolution(
        objective,
        ELLIPSE_BOUNDS,
        maxiter=maxiter,
        popsize=popsize,
        tol=1e-6,
        polish=True,
        seed=seed,
        callback=progress,
        workers=1,
    )
    params = {key: float(value) for key, value in zip(ELLIPSE_KEYS, result.x)}
    info = {
        "train_iou": float(objective.ious(result.x).mean()),
        "objective": float(result.fun),
        "generations": int(result.nit),
        "evaluations": int(result.nfev),
        "images": len(objective),
        "pixels": int(objective.pixels),
        "seconds": round(time.perf_counter() - start, 2),
        "seconds_reading": round(prepared, 2),
        "original_tuned_train_iou": float(
            objective.ious([DIAGONAL_ELLIPSE_TUNED[k] for k in ELLIPSE_KEYS]).mean()
        ),
    }
    return params, info


def _format_mixture(name: str, mixture) -> str:
    rows = [
        f"  {weight:.4f}  mean ({mean[0]:.2f}, {mean[1]:.2f})"
        for weight, mean in zip(mixture.weights, mixture.means)
    ]
    return f"{name} mixture ({len(rows)} components, weight and (Cb, Cr) mean):\n" + "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m skinseg.classical.fit",
        description="Fit classical skin-method parameters on the train splits of folder datasets.",
    )
    parser.add_argument(
        "kind", choices=KINDS, help="what to fit: the diag_ellipse, the gmm/icm mixtures or the histogram"
    )
    parser.add_argument(
        "data", nargs="+", metavar="DATA", help="folder datasets (images/, masks/, optional splits.json)"
    )
    parser.add_argument("--out", required=True, help="file to write (.json; the histogram also takes .npz)")
    parser.add_argument("--max-images", type=at_least(1), help="image cap (default: 300 for ellipse, all otherwise)")
    parser.add_argument(
        "--stride", type=at_least(1), help="use every K-th training image (default: 3 for ellipse, 1 otherwise)"
    )
    parser.add_argument("--seed", type=int, help="random seed (default: 1337 for ellipse, 42 for gmm)")
    parser.add_argument(
        "--maxiter", type=at_least(1), default=20, help="ellipse: differential-evolution generations (20)"
    )
    parser.add_argument("--bins", type=at_least(2), default=BINS, help=f"histogram: bins per axis ({BINS})")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    return parser


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Fails before any fitting on a bad argument, naming it."""
    for folder in args.data:
        if not Path(folder).is_dir():
            parser.error(f"data folder {folder} does not exist")
    out = Path(args.out)
    suffixes = (".json", ".npz") if args.kind == "histogram" else (".json",)
    if out.suffix.lower() not in suffixes:
        parser.error(f"--out for {args.kind} must end in {' or '.join(suffixes)}, got {out.name}")
    if out.exists() and not args.overwrite:
        parser.error(f"{out} already exists; pass --overwrite to replace it")
    for name in ("max_images", "stride", "maxiter", "bins"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.bins > 256:
        parser.error(f"--bins must be <= 256, got {args.bins}")


@user_command
def main(argv: Sequence[str]) -> Path:
    """Runs the command line; returns the file written (a user error exits with code 2)."""
    parser = build_parser()
    add_debug_option(parser)
    args = parser.parse_args(argv)
    _check_args(parser, args)
    defaults = DEFAULTS[args.kind]
    stride = args.stride or defaults["stride"]
    max_images = args.max_images or defaults["max_images"]
    seed = defaults["seed"] if args.seed is None else args.seed

    samples, datasets = training_samples(args.data)
    chosen = select(samples, stride, max_images)
    for dataset in datasets:
        dataset["used_images"] = sum(sample.dataset == dataset["name"] for sample in chosen)
    pairs = Pairs(chosen)
    print(
        f"{args.kind}: {len(chosen)} of {len(samples)} training images (stride {stride}, cap {max_images}): "
        + ", ".join(f"{d['name']} {d['used_images']}" for d in datasets)
    )
    metadata: dict[str, Any] = {
        "data": datasets,
        "images": len(chosen),
        "stride": stride,
        "max_images": max_images,
    }

    if args.kind == "ellipse":
        params, info = fit_ellipse(pairs, seed=seed, maxiter=args.maxiter)
        print(f"{info['pixels']:,} pixels; fitted " + ", ".join(f"{k}={v:.4f}" for k, v in params.items()))
        print(
            f"train IoU {info['train_iou']:.4f} "
            f"(the original's tuned ellipse: {info['original_tuned_train_iou']:.4f}); "
            f"{info['generations']} generations, {info['evaluations']} evaluations, {info['seconds']} s"
        )
        metadata.update(
            info,
            seed=seed,
            maxiter=args.maxiter,
            popsize=15,
            tol=1e-6,
            polish=True,
            bounds=dict(zip(ELLIPSE_KEYS, ELLIPSE_BOUNDS)),
            area_penalty=AREA_PENALTY,
        )
        path = save_params(args.out, "ellipse", params, metadata, overwrite=args.overwrite)
    elif args.kind == "gmm":
        skin, background, counts = fit_gmm(pairs, seed=seed)
        print(f"{counts['skin_pixels']:,} skin and {counts['background_pixels']:,} background pixels sampled")
        print(_format_mixture("skin", skin))
        print(_format_mixture("background", background))
        metadata.update(
            counts,
            seed=seed,
            skin_components=len(skin.weights),
            background_components=len(background.weights),
        )
        path = save_mixtures(args.out, skin, background, metadata, overwrite=args.overwrite)
    else:
        skin, nonskin, counts = fit_histogram(pairs, bins=args.bins)
        prior = counts["skin_pixels"] / (counts["skin_pixels"] + counts["nonskin_pixels"])
        print(
            f"{counts['skin_pixels']:,} skin and {counts['nonskin_pixels']:,} non-skin pixels; "
            f"{args.bins}x{args.bins} bins; skin share {prior:.4f}"
        )
        metadata.update(counts, bins=args.bins)
        path = save_histogram(args.out, skin, nonskin, metadata, overwrite=args.overwrite)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
