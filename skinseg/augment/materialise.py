"""Offline augmentation as the original did it: every variant of every training image, on disk.

`python -m skinseg.augment SRC_DIR DST_DIR` writes `DST_DIR/{images,masks}/STEM__VARIANT.png`
(resumable, in parallel; an existing dataset at DST_DIR keeps its files and splits);
`python -m skinseg.augment --gallery IMAGE MASK OUT.png` draws one image's variants.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from skinseg.augment.ops import SEPIA_VARIANTS
from skinseg.augment.transforms import VARIANTS, apply_variant
from skinseg.errors import ArgumentParser, UsageError, add_debug_option, at_least, user_command
from skinseg.files import atomic_path, refuse_existing, save_figure, write_json
from skinseg.io import read_splits_file


@dataclass
class MaterialiseReport:
    """What a materialisation run did."""

    sources: int = 0
    written: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)


def is_variant(stem: str) -> bool:
    """Whether a stem names a variant this module writes ("STEM__VARIANT")."""
    return "__" in stem and stem.rsplit("__", 1)[1] in VARIANTS


def _write_png(path: Path, array: np.ndarray) -> None:
    """Writes atomically (temporary file + rename), so an interrupted run leaves no half file."""
    array = array[..., ::-1] if array.ndim == 3 else array  # OpenCV writes BGR
    with atomic_path(path) as temporary:
        if not cv2.imwrite(str(temporary), np.ascontiguousarray(array), [cv2.IMWRITE_PNG_COMPRESSION, 3]):
            raise OSError(f"could not write {path}")


def _materialise_one(
    image_path: str, mask_path: str, destination: str, seed: int, sepia_variant: str
) -> tuple[str, int, int, str | None]:
    """Writes the missing variants of one pair: (stem, written, skipped, error)."""
    from skinseg.io import DataError, read_image, read_mask

    stem = Path(image_path).stem
    images, masks = Path(destination) / "images", Path(destination) / "masks"
    todo = [
        name
        for name in VARIANTS
        if not ((images / f"{stem}__{name}.png").exists() and (masks / f"{stem}__{name}.png").exists())
    ]
    if not todo:
        return stem, 0, len(VARIANTS), None
    try:
        image, mask = read_image(image_path), read_mask(mask_path)
        if mask.shape != image.shape[:2]:
            raise DataError(f"{mask_path}: mask size differs from its image's")
    except DataError as error:
        return stem, 0, 0, str(error)
    pair_seed = zlib.crc32(stem.encode("utf-8")) ^ seed
    for index, name in enumerate(VARIANTS):
        if name not in todo:
            continue
        out_image, out_mask = apply_variant(name, image, mask, pair_seed + index, sepia_variant)
        _write_png(images / f"{stem}__{name}.png", out_image)
        _write_png(masks / f"{stem}__{name}.png", out_mask)
    return stem, len(todo), len(VARIANTS) - len(todo), None


def materialise(
    source: str | os.PathLike,
    destination: str | os.PathLike,
    workers: int | None = None,
    seed: int = 0,
    sepia_variant: str = "rgb",
    include_val: bool = False,
    progress: bool = True,
) -> MaterialiseReport:
    """Writes the 26 variants of every pair of a folder dataset to `destination`.

    Only training pairs are augmented when `source/splits.json` exists (the original
    augmented training data only), unless `include_val`; its "test" pairs never are. Outputs
    are `destination/{images,masks}/STEM__VARIANT.png`, and `destination/splits.json` lists
    them all under "train" (a destination that is already a dataset keeps its own splits,
    "test" included; the variants join its train list). Finished outputs are skipped and
    existing files never overwritten, so an interrupted run resumes; unreadable pairs are
    reported by name and skipped.

    Raises:
        DataError: source is not a dataset folder.
        UsageError: destination is the source or inside it (variants would be written into
            the source), or a dataset of its own without a splits.json (a new one listing
            the variants would take its images out of every split).
    """
    from rich.progress import Progress

    from skinseg.io import DataError, list_by_stem

    source, destination = Path(source), Path(destination)
    if not (source / "images").is_dir() or not (source / "masks").is_dir():
        raise DataError(f"{source}: expected images/ and masks/ folders (the folder-dataset layout)")
    if destination.resolve().is_relative_to(source.resolve()):
        raise UsageError(f"destination {destination} is inside the source folder {source}; choose a folder outside it")
    own_images = [path for path in (destination / "images").glob("*") if not is_variant(path.stem)]
    if own_images and not (destination / "splits.json").exists():
        raise UsageError(
            f"destination {destination} holds {len(own_images)} images of its own (e.g. {own_images[0].name}) and no "
            "splits.json: the variants' splits.json would leave them out of every split. Add a splits.json listing "
            "them, or choose an empty folder"
        )
    if sepia_variant not in SEPIA_VARIANTS:
        raise UsageError(f"sepia variant must be one of {SEPIA_VARIANTS}, got {sepia_variant!r}")
    images, masks = list_by_stem(source / "images"), list_by_stem(source / "masks")
    stems = sorted(images)
    splits_file = source / "splits.json"
    if splits_file.exists():
        listed = read_splits_file(splits_file)
        if include_val:
            test = set(listed.get("test", []))
            stems = [stem for stem in stems if stem not in test]
        else:
            train = set(listed.get("train", []))
            stems = [stem for stem in stems if stem in train]
    report = MaterialiseReport(sources=len(stems))
    for stem in stems:
        if stem not in masks:
            report.failed[stem] = f"{images[stem]}: no mask in {source / 'masks'}"
    stems = [stem for stem in stems if stem in masks]
    (destination / "images").mkdir(parents=True, exist_ok=True)
    (destination / "masks").mkdir(parents=True, exist_ok=True)

    workers = workers or os.cpu_count() or 1
    with ProcessPoolExecutor(max_workers=workers) as pool, Progress(disable=not progress) as bar:
        task = bar.add_task(f"augmenting {source.name}", total=len(stems))
        futures = [
            pool.submit(_materialise_one, str(images[s]), str(masks[s]), str(destination), seed, sepia_variant)
            for s in stems
        ]
        for future in as_completed(futures):
            stem, written, skipped, error = future.result()
            report.written += written
            report.skipped += skipped
            if error:
                report.failed[stem] = error
            bar.advance(task)

    done = {
        path.stem
        for path in (destination / "images").glob("*__*.png")
        if (destination / "masks" / path.name).exists()
    }
    # an existing dataset at the destination keeps its splits (test included); the variants join its train
    splits = read_splits_file(destination / "splits.json") if (destination / "splits.json").exists() else {}
    held_out = set(splits.get("val", [])) | set(splits.get("test", []))
    splits["train"] = sorted(set(splits.get("train", [])) | (done - held_out))
    splits.setdefault("val", [])
    write_json(destination / "splits.json", splits, indent=0)
    return report


def gallery(
    image_path: str | os.PathLike,
    mask_path: str | os.PathLike,
    output: str | os.PathLike,
    seed: int = 0,
    sepia_variant: str = "rgb",
    columns: int = 6,
    tile: int = 256,
) -> Path:
    """Draws the original and its 26 variants, each with its mask below, into one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from skinseg.io import DataError, read_image, read_mask

    image, mask = read_image(image_path), read_mask(mask_path)
    if mask.shape != image.shape[:2]:
        raise DataError(f"{mask_path} is {mask.shape[1]}x{mask.shape[0]} but {image_path} is "
                        f"{image.shape[1]}x{image.shape[0]}; give the mask drawn for that image")
    panels = [("original", image, mask)]
    for index, name in enumerate(VARIANTS):  # at full resolution: lattices are sized in pixels
        panels.append((name, *apply_variant(name, image, mask, seed + index, sepia_variant)))
    scale = tile / max(image.shape[:2])
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    panels = [
        (name, cv2.resize(i, size, interpolation=cv2.INTER_AREA), cv2.resize(m, size, interpolation=cv2.INTER_AREA))
        for name, i, m in panels
    ]
    rows = math.ceil(len(panels) / columns)
    aspect = size[1] / size[0]
    figure, axes = plt.subplots(
        2 * rows, columns, figsize=(2.2 * columns, 2.2 * aspect * 2 * rows), squeeze=False
    )
    for axis in axes.flat:
        axis.axis("off")
    for index, (name, variant_image, variant_mask) in enumerate(panels):
        row, column = divmod(index, columns)
        axes[2 * row, column].imshow(variant_image)
        axes[2 * row, column].set_title(name, fontsize=8)
        axes[2 * row + 1, column].imshow(variant_mask, cmap="gray", vmin=0, vmax=255)
    return save_figure(figure, output, dpi=100)


@user_command
def main(argv: Sequence[str]) -> int:
    parser = ArgumentParser(
        prog="python -m skinseg.augment",
        description="Write the 26 colour/occlusion variants of a folder dataset, or draw one image's.",
    )
    parser.add_argument("paths", nargs="+", help="SRC_DIR DST_DIR, or with --gallery: IMAGE MASK OUT.png")
    parser.add_argument("--gallery", action="store_true", help="draw one image's variants into OUT.png")
    parser.add_argument("--workers", type=at_least(1), default=None, help="processes (default: one per CPU)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the lattices")
    parser.add_argument("--sepia", choices=SEPIA_VARIANTS, default="rgb",
                        help="rgb: correct sepia; bgr: the original's channel-swapped, bluish sepia")
    parser.add_argument("--include-val", action="store_true",
                        help="also augment the val split (and pairs in no split; never the test split)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --gallery OUT.png")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    if len(args.paths) != (3 if args.gallery else 2):
        parser.error("--gallery takes IMAGE MASK OUT.png" if args.gallery else "give SRC_DIR DST_DIR")
    if args.gallery and not args.overwrite:
        refuse_existing([args.paths[2]], "pass --overwrite to replace it, or another OUT.png")
    from rich.console import Console

    console = Console()
    if args.gallery:
        console.print(f"wrote {gallery(*args.paths, seed=args.seed, sepia_variant=args.sepia)}")
        return 0
    report = materialise(*args.paths, workers=args.workers, seed=args.seed, sepia_variant=args.sepia,
                         include_val=args.include_val)
    console.print(
        f"{report.sources} source pairs: {report.written} variants written, {report.skipped} already "
        f"present, {len(report.failed)} pairs failed"
    )
    for stem, error in sorted(report.failed.items()):
        console.print(f"  [red]skipped[/red] {stem}: {error}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
