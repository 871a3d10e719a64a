"""The original's 26 colour and occlusion augmentations, online and offline.

Families (26 variants per image, the original's parameters):
- hue rotation x6 (+60° ... +360°), desaturation x3 (S x 0.5, 0.3, 0), saturation
  boost x2 (S x 1.2, 1.5): skin colour varies with people, light and cameras, so a
  skin model should rely on more than one narrow hue band (colour-invariant skin
  segmentation, CVPRW 2022);
- contrast/brightness x5 and sepia x8: exposure, white balance and photo filters;
- full and partial lattice occlusion: thin dark lines removed from image and mask, as
  fishnets, bracelets and watches occlude skin.

Each family is a functional op on uint8 RGB arrays plus an albumentations transform
around it. `VARIANTS` names the 26 (the name is the file suffix offline, e.g.
`STEM__hue060.png`); `seed26()` samples one of them (or none) per example, online.

Offline, as the original did: `python -m skinseg.data.augment SRC_DIR DST_DIR` writes
every variant of every training image, resumable and in parallel;
`python -m skinseg.data.augment --gallery IMAGE MASK OUT.png` draws one image's variants.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from skinseg.data.transforms import A  # albumentations, with its network version check off

# Sepia matrix for RGB (rows give R', G', B' from R, G, B).
SEPIA = np.array(
    [[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], dtype=np.float32
)
SEPIA_VARIANTS = ("rgb", "bgr")


# --- functional ops on uint8 (H,W,3) RGB images ----------------------------------------------


def rotate_hue(image: np.ndarray, degrees: float) -> np.ndarray:
    """Rotates the hue by `degrees` in OpenCV's 8-bit HSV (H in 2° units); keeps S and V."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    shift = int(round(degrees / 2.0)) % 180
    hue = hsv[..., 0].astype(np.int16) + shift
    hsv[..., 0] = (hue % 180).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def scale_saturation(image: np.ndarray, factor: float) -> np.ndarray:
    """Multiplies HSV saturation by `factor` (clipped at 255, truncated, as the original)."""
    if factor < 0:
        raise ValueError(f"saturation factor must be >= 0, got {factor}")
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    hsv[..., 1] = np.minimum(hsv[..., 1].astype(np.float32) * factor, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def contrast_brightness(image: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """|alpha·x + beta|, saturated to uint8 (OpenCV's convertScaleAbs)."""
    return cv2.convertScaleAbs(image, alpha=alpha, beta=beta)


def sepia_matrix(strength: float, original_bug: bool = False) -> np.ndarray:
    """k·SEPIA + (1-k)·I; k > 1 extrapolates.

    With `original_bug`, entry (3,1) uses 0.349 instead of 0.272 in its (1-k) term, as
    the original's code did (so at k = 0 it is -0.077, not 0).
    """
    matrix = strength * SEPIA + (1.0 - strength) * np.eye(3, dtype=np.float32)
    if original_bug:
        matrix[2, 0] -= (1.0 - strength) * (0.349 - 0.272)
    return matrix


def sepia(image: np.ndarray, strength: float, variant: str = "rgb", original_bug: bool = False) -> np.ndarray:
    """Blends towards sepia tone by `strength`, saturated to uint8.

    `variant="rgb"` is the correct sepia. `variant="bgr"` applies the matrix to the
    channels in reverse order, as the original did on OpenCV's BGR images: the "red"
    row lands on blue, giving its bluish tint.
    """
    if variant not in SEPIA_VARIANTS:
        raise ValueError(f"sepia variant must be one of {SEPIA_VARIANTS}, got {variant!r}")
    matrix = sepia_matrix(strength, original_bug)
    pixels = image[..., ::-1] if variant == "bgr" else image
    out = cv2.transform(np.ascontiguousarray(pixels), matrix)  # saturating
    return np.ascontiguousarray(out[..., ::-1]) if variant == "bgr" else out


def draw_lattice(
    height: int,
    width: int,
    rng: np.random.Generator,
    spacing: float = 20.0,
    jitter: float = 3.0,
    line_width: float = 2.0,
    max_rotation: int = 90,
) -> np.ndarray:
    """A rotated grid of jittered lines, anti-aliased: uint8 (H,W), 255 on the lines.

    Vertical and horizontal lines every `spacing` px, each moved by up to ±`jitter` px,
    `line_width` px wide, the whole grid rotated by a random integer angle in
    [0, max_rotation] degrees about the image centre.
    """
    if spacing <= 2 * jitter:
        raise ValueError(f"lattice spacing ({spacing}) must exceed twice the jitter ({jitter})")
    angle = math.radians(int(rng.integers(0, max_rotation + 1)))
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    xx -= (width - 1) / 2
    yy -= (height - 1) / 2
    cos, sin = math.cos(angle), math.sin(angle)
    half_diagonal = math.hypot(height, width) / 2 + spacing
    count = int(math.ceil(half_diagonal / spacing)) + 1
    coverage = np.zeros((height, width), np.float32)
    for u in (cos * xx + sin * yy, -sin * xx + cos * yy):  # distance along each grid axis
        offsets = rng.uniform(-jitter, jitter, 2 * count + 1).astype(np.float32)
        nearest = np.clip(np.rint(u / spacing).astype(np.int32), -count, count)
        for neighbour in (-1, 0, 1):  # jitter < spacing/2: the closest line is one of these
            index = np.clip(nearest + neighbour, -count, count)
            distance = np.abs(u - (index * spacing + offsets[index + count]))
            np.maximum(coverage, np.clip(line_width / 2 + 0.5 - distance, 0, 1), out=coverage)
    return np.rint(coverage * 255).astype(np.uint8)


def occlude_with_lattice(
    image: np.ndarray, mask: np.ndarray, lattice: np.ndarray, start_row: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Draws the lattice (dark) on skin only, and removes it from the mask.

    The lattice is limited to the mask (min of both, the original's AND for 0/255 masks)
    and to rows >= start_row; it is subtracted, saturating, from every image channel
    and from the mask.
    """
    lines = np.minimum(lattice, mask)
    if start_row > 0:
        lines[:start_row] = 0
    return cv2.subtract(image, cv2.merge([lines] * 3)), cv2.subtract(mask, lines)


# --- albumentations transforms ----------------------------------------------------------------


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


# --- the 26 variants ---------------------------------------------------------------------------


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


VARIANTS: tuple[str, ...] = tuple(variant_factories())
AUGMENTS = ("none", "seed26")


def seed26(sepia_variant: str = "rgb", lattice_reference: int | None = None) -> A.OneOf:
    """One of the 26 variants or the unchanged image, uniformly (1/27 each), per call."""
    choices = [make() for make in variant_factories(sepia_variant, lattice_reference).values()]
    return A.OneOf([*choices, A.NoOp()], p=1.0)


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


# --- offline materialisation -----------------------------------------------------------------


@dataclass
class MaterialiseReport:
    """What a materialisation run did."""

    sources: int = 0
    written: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)


def _write_png(path: Path, array: np.ndarray) -> None:
    """Writes atomically (temporary file + rename), so an interrupted run leaves no half file."""
    temporary = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")  # keeps the codec
    array = array[..., ::-1] if array.ndim == 3 else array  # OpenCV writes BGR
    if not cv2.imwrite(str(temporary), np.ascontiguousarray(array), [cv2.IMWRITE_PNG_COMPRESSION, 3]):
        raise OSError(f"could not write {path}")
    os.replace(temporary, path)


def _materialise_one(
    image_path: str, mask_path: str, destination: str, seed: int, sepia_variant: str
) -> tuple[str, int, int, str | None]:
    """Writes the missing variants of one pair: (stem, written, skipped, error)."""
    from skinseg.data.io import DataError, read_image, read_mask

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
    augmented training data only), unless `include_val`. Outputs are
    `destination/{images,masks}/STEM__VARIANT.png`, and `destination/splits.json` lists
    them all under "train". Finished outputs are skipped, so an interrupted run resumes;
    unreadable pairs are reported by name and skipped.

    Raises:
        DataError: source is not a dataset folder.
        ValueError: destination is the source (it would feed variants back as sources).
    """
    from rich.progress import Progress

    from skinseg.data.folder import list_by_stem
    from skinseg.data.io import DataError

    source, destination = Path(source), Path(destination)
    if not (source / "images").is_dir() or not (source / "masks").is_dir():
        raise DataError(f"{source}: expected images/ and masks/ folders (the folder-dataset layout)")
    if destination.resolve() == source.resolve():
        raise ValueError(f"destination {destination} is the source folder; choose another folder")
    if sepia_variant not in SEPIA_VARIANTS:
        raise ValueError(f"sepia variant must be one of {SEPIA_VARIANTS}, got {sepia_variant!r}")
    images, masks = list_by_stem(source / "images"), list_by_stem(source / "masks")
    stems = sorted(images)
    splits_file = source / "splits.json"
    if splits_file.exists() and not include_val:
        train = set(json.loads(splits_file.read_text()).get("train", []))
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

    done = sorted(
        path.stem
        for path in (destination / "images").glob("*__*.png")
        if (destination / "masks" / path.name).exists()
    )
    temporary = destination / f".splits.json.tmp-{os.getpid()}"
    temporary.write_text(json.dumps({"train": done, "val": []}, indent=0))
    os.replace(temporary, destination / "splits.json")
    return report


# --- gallery -----------------------------------------------------------------------------------


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

    from skinseg.data.io import read_image, read_mask

    image, mask = read_image(image_path), read_mask(mask_path)
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
    figure.tight_layout()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=100)
    plt.close(figure)
    return output


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m skinseg.data.augment",
        description="Write the 26 colour/occlusion variants of a folder dataset, or draw one image's.",
    )
    parser.add_argument("paths", nargs="+", help="SRC_DIR DST_DIR, or with --gallery: IMAGE MASK OUT.png")
    parser.add_argument("--gallery", action="store_true", help="draw one image's variants into OUT.png")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: one per CPU)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the lattices")
    parser.add_argument("--sepia", choices=SEPIA_VARIANTS, default="rgb",
                        help="rgb: correct sepia; bgr: the original's channel-swapped, bluish sepia")
    parser.add_argument("--include-val", action="store_true", help="also augment the val split")
    args = parser.parse_args(argv)

    from rich.console import Console

    console = Console()
    if args.gallery:
        if len(args.paths) != 3:
            parser.error("--gallery takes IMAGE MASK OUT.png")
        console.print(f"wrote {gallery(*args.paths, seed=args.seed, sepia_variant=args.sepia)}")
        return 0
    if len(args.paths) != 2:
        parser.error("give SRC_DIR DST_DIR")
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
