"""The original's `model_plot.jpg` comparison grid, with an error map it lacked.

`python -m skinseg.figures compare IMAGES... --models u2netp.onnx ycbcr ... --out figures/model_plot.jpg`
draws one row per image and model (an `.onnx`, a `.ckpt` or a classical method name, as
`skinseg.predict --model`) with the columns:
- original;
- cutout: the image with the predicted mask as alpha, over a checkerboard;
- overlay: the image's luminance coloured from black to magenta, pasted on the image with
  the mask as alpha (as the original);
- error map (where a ground-truth mask is found): the image dimmed to grey, false positives
  red, false negatives blue, with the image's IoU at 0.5 (mask >= 128 vs ground truth >= 128).

Ground truth is `--masks DIR/STEM.png`, else `../masks/STEM.png` beside an image in an
`images/` folder (the dataset layout). A model that fails on an image gives a blank row
labelled "error" with the reason, as the original did.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from skinseg.files import save_figure
from skinseg.io import DataError, read_image, read_mask
from skinseg.metrics import iou_at_half

MAGENTA = np.array([255, 0, 255], np.float32)
COLUMNS = ("original", "cutout", "overlay on the image", "errors: false positive red, false negative blue")


def find_mask(image_path: Path, masks_dir: Path | None) -> Path | None:
    """The ground-truth mask of an image: masks_dir/STEM.png, else ../masks/STEM.<ext> in a dataset."""
    candidates = [masks_dir / f"{image_path.stem}.png"] if masks_dir else []
    if image_path.parent.name == "images":
        candidates += [image_path.parent.parent / "masks" / f"{image_path.stem}{ext}" for ext in (".png", ".jpg")]
    return next((path for path in candidates if path.is_file()), None)


def thumbnail(array: np.ndarray, side: int) -> np.ndarray:
    """Resizes (H,W[,C]) uint8 so that its longer side is `side` (never enlarges)."""
    height, width = array.shape[:2]
    scale = min(1.0, side / max(height, width))
    if scale == 1.0:
        return array
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(array).resize(size, Image.Resampling.LANCZOS))


def checkerboard(height: int, width: int, square: int = 12) -> np.ndarray:
    """(H,W,3) uint8 light-grey checkerboard, the usual background of transparent images."""
    rows, cols = np.indices((height, width)) // square
    return np.where(((rows + cols) % 2 == 0)[..., None], 220, 180).astype(np.uint8).repeat(3, axis=2)


def cutout_on_checkerboard(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image composited over a checkerboard with the mask as alpha: (H,W,3) uint8."""
    alpha = mask[..., None].astype(np.float32) / 255
    return (rgb * alpha + checkerboard(*mask.shape) * (1 - alpha)).astype(np.uint8)


def magenta_overlay(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The original's overlay: the image's luminance coloured black -> magenta, pasted on the
    image with the mask as alpha."""
    alpha = mask[..., None].astype(np.float32) / 255
    luminance = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    coloured = luminance[..., None] / 255 * MAGENTA
    return (coloured * alpha + rgb * (1 - alpha)).astype(np.uint8)


def error_map(rgb: np.ndarray, mask: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, float]:
    """(image dimmed to grey with false positives red and false negatives blue, IoU at 0.5)."""
    predicted, actual = mask >= 128, truth >= 128
    grey = (rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)) * 0.5
    picture = np.repeat(grey[..., None], 3, axis=2).astype(np.uint8)
    picture[predicted & ~actual] = (230, 40, 40)
    picture[~predicted & actual] = (40, 90, 240)
    return picture, iou_at_half(mask, truth)


def compare_figure(
    images: Sequence[Path],
    models: dict[str, Callable[[np.ndarray], np.ndarray]],
    out: Path,
    masks_dir: Path | None = None,
    side: int = 384,
    dpi: int = 150,
) -> dict[str, dict[str, float | str]]:
    """Draws the grid (rows: image x model) and saves it atomically to `out` (.jpg or .png).

    Args:
        images: image files.
        models: label -> RGB uint8 (H,W,3) -> uint8 (H,W) mask function.
        out: the figure file.
        masks_dir: folder of ground-truth STEM.png masks (see `find_mask`).
        side: longer side of each panel in pixels (images are predicted at full size).
        dpi: figure resolution.

    Returns:
        image stem -> model label -> IoU at 0.5 (where there is ground truth) or "error: reason".
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(images) * len(models)
    figure, axes = plt.subplots(rows, len(COLUMNS), figsize=(len(COLUMNS) * 3.2, rows * 3.0), squeeze=False)
    scores: dict[str, dict[str, float | str]] = {}
    row = 0
    for image_path in images:
        scores[image_path.stem] = {}
        try:
            rgb = read_image(image_path)
            truth_path = find_mask(image_path, masks_dir)
            truth = read_mask(truth_path) if truth_path else None
            if truth is not None and truth.shape != rgb.shape[:2]:
                raise DataError(f"{truth_path}: mask {truth.shape[1]}x{truth.shape[0]} but image "
                                f"{rgb.shape[1]}x{rgb.shape[0]}")
        except DataError as error:
            rgb, truth, reading_error = None, None, str(error)
        for label, predict in models.items():
            axes_row = axes[row]
            row += 1
            for axis in axes_row:
                axis.set_xticks([])
                axis.set_yticks([])
            axes_row[0].set_ylabel(f"{label}\n{image_path.stem}", fontsize="small")
            try:
                if rgb is None:
                    raise DataError(reading_error)
                mask = predict(rgb)
            except Exception as error:  # noqa: BLE001 - a failing model is drawn as a blank "error" row
                scores[image_path.stem][label] = f"error: {error}"
                axes_row[1].text(0.5, 0.5, f"error\n{str(error)[:80]}", ha="center", va="center", wrap=True,
                                 fontsize="small", transform=axes_row[1].transAxes)
                continue
            small_rgb, small_mask = thumbnail(rgb, side), thumbnail(mask, side)
            axes_row[0].imshow(small_rgb)
            axes_row[1].imshow(cutout_on_checkerboard(small_rgb, small_mask))
            axes_row[2].imshow(magenta_overlay(small_rgb, small_mask))
            if truth is None:
                axes_row[3].text(0.5, 0.5, "no ground truth", ha="center", va="center", fontsize="small",
                                 transform=axes_row[3].transAxes)
                continue
            picture, iou = error_map(rgb, mask, truth)
            scores[image_path.stem][label] = iou
            axes_row[3].imshow(thumbnail(picture, side))
            axes_row[3].set_xlabel(f"IoU@0.5 {iou:.3f}", fontsize="small")
    for axis, title in zip(axes[0], COLUMNS):
        axis.set_title(title, fontsize="small")
    save_figure(figure, out, dpi)
    return scores
