"""The files of the folder-dataset layout: images, masks and splits.json, read with clear errors.

Images become RGB uint8 (H,W,3) and masks uint8 (H,W) on the 0-255 scale, whatever
the file holds: RGBA (alpha dropped), greyscale, palette, CMYK, 16-bit, 0/1 masks,
soft masks, EXIF-rotated photos. Every error names the file and says what to do.
This module sits below `skinseg.data` and `skinseg.augment`, which both read these files.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from skinseg.errors import DataError, UsageError
from skinseg.files import atomic_path

__all__ = ["IMAGE_EXTENSIONS", "DataError", "read_image", "read_mask", "save_png", "to_uint8"]

SPLITS = ("train", "val", "test")  # the keys a splits.json may hold
MAX_LISTED = 10  # files named in one error message
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


MAX_PIXELS_VARIABLE = "SKINSEG_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 2 * 89_478_485  # PIL's own hard limit: about 179 megapixels


def max_pixels() -> int:
    """The largest image (width x height) read: $SKINSEG_MAX_PIXELS, else about 179 megapixels.

    A larger file is refused before it is decoded (a 200-megapixel PNG decodes to 600 MB;
    a decompression bomb to far more).
    """
    value = os.environ.get(MAX_PIXELS_VARIABLE)
    if not value:
        return DEFAULT_MAX_PIXELS
    if not value.strip().isdigit() or int(value) < 1:
        raise UsageError(f"{MAX_PIXELS_VARIABLE}={value!r}: give the largest image to read in pixels (width x "
                         f"height), a whole number >= 1, or unset it for {DEFAULT_MAX_PIXELS:,}")
    return int(value)


def _open(path: str | os.PathLike) -> Image.Image:
    """Opens and fully decodes an image, applying its EXIF orientation."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not an image file")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    limit = max_pixels()
    # PIL refuses files above twice its own limit itself; keep that above ours, so ours decides
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, limit)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.width * image.height > limit:
                    raise DataError(
                        f"{path}: {image.width}x{image.height} = {image.width * image.height:,} pixels, over the "
                        f"limit of {limit:,}; resize it, or raise the limit with {MAX_PIXELS_VARIABLE}=<pixels>"
                    )
                image.load()
                return ImageOps.exif_transpose(image)
    except DataError:
        raise
    except Image.DecompressionBombError as error:  # over twice PIL's own limit: refused before our check
        raise DataError(f"{path}: too large to decode ({error}); resize it, or raise the limit with "
                        f"{MAX_PIXELS_VARIABLE}=<pixels>") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(
            f"{path}: cannot decode the file ({error}); re-export it as PNG or JPEG, or remove it"
        ) from error


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Scales 16-bit, 32-bit integer or float pixel arrays to uint8."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        scale = 255.0 if array.max(initial=0.0) <= 1.0 else 1.0
        return np.clip(np.rint(array * scale), 0, 255).astype(np.uint8)
    # 16-bit data (PIL gives it as uint16 or int32): map 0..65535 onto 0..255.
    return np.clip(np.rint(array.astype(np.float32) / 257.0), 0, 255).astype(np.uint8)


def _finite(array: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """The pixel array of a float file, refused if any value is NaN or infinite (they have no brightness)."""
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int(np.size(array) - np.isfinite(array).sum())
        raise DataError(f"{path}: {bad} pixels are NaN or infinite; fill them (e.g. with 0) and save the image again")
    return array


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Reads an image file as RGB uint8 (H,W,3), EXIF orientation applied.

    RGBA and LA inputs lose their alpha channel (the colour values are kept);
    greyscale, palette and CMYK become RGB; 16-bit channels are scaled to 8 bits.

    Raises:
        DataError: the file is missing or cannot be decoded.
    """
    image = _open(path)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        grey = to_uint8(_finite(np.asarray(image), path))
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Reads a mask file as uint8 (H,W) on the 0-255 scale, EXIF orientation applied.

    Accepts 0/255, 0/1 and soft greyscale masks (8- or 16-bit, 1-bit, palette); colour
    masks are converted to luminance. A mask whose maximum is 1 is treated as 0/1.

    Raises:
        DataError: the file is missing or cannot be decoded.
    """
    image = _open(path)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        raw = _finite(np.asarray(image), path)
        if raw.max(initial=0) <= 1:
            return (raw > 0).astype(np.uint8) * 255
        return to_uint8(raw)
    mask = np.asarray(image.convert("L"), dtype=np.uint8)
    if mask.max(initial=0) == 1:
        return mask * 255
    return mask


def save_png(image: Image.Image, path: str | os.PathLike) -> None:
    """Writes a PNG atomically (temporary file, then rename): a killed run leaves no torn file."""
    with atomic_path(path) as temporary:
        image.save(temporary, format="PNG")


def list_images(path: Path) -> list[Path]:
    """The image itself, or a folder's image files one level deep (`IMAGE_EXTENSIONS`), sorted.

    Raises:
        UsageError: no such file or folder, or a folder without images.
    """
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UsageError(f"input {path}: no such file or folder")
    images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise UsageError(f"input {path}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    return images


def list_by_stem(folder: Path) -> dict[str, Path]:
    """Maps stem -> file for the supported image files in folder."""
    files: dict[str, Path] = {}
    duplicates = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if path.stem in files:
            duplicates.append(f"{files[path.stem].name} and {path.name}")
        files[path.stem] = path
    if duplicates:
        raise DataError(
            f"{folder}: several files share a stem ({'; '.join(duplicates[:MAX_LISTED])}); "
            "keep one file per stem"
        )
    return files


def read_splits_file(path: Path) -> dict[str, list[str]]:
    """Reads and validates a splits.json: {"train": [stems], "val": [stems], "test": [stems]}, each optional.

    Raises:
        DataError: invalid JSON, other keys, a split that is not a list of strings, or a
            stem listed in two splits.
    """
    try:
        listed = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: invalid JSON ({error}); fix it or delete it") from error
    if not isinstance(listed, dict) or not set(listed) <= set(SPLITS) or not listed:
        shape = f"keys {list(listed)}" if isinstance(listed, dict) else f"a {type(listed).__name__}"
        raise DataError(f'{path}: expected {{"train": [stems], "val": [stems], "test": [stems]}} '
                        f"(each key optional), got {shape}")
    first_split: dict[str, str] = {}
    in_two = []
    for split, split_stems in listed.items():
        if not isinstance(split_stems, list) or not all(isinstance(stem, str) for stem in split_stems):
            raise DataError(f'{path}: "{split}" must be a list of stems (strings, e.g. ["img01", "img02"]), '
                            f"got {json.dumps(split_stems)[:80]}")
        for stem in split_stems:
            if first_split.setdefault(stem, split) != split:
                in_two.append(f"{stem!r} in {first_split[stem]} and {split}")
    if in_two:
        more = f" and {len(in_two) - MAX_LISTED} more" if len(in_two) > MAX_LISTED else ""
        raise DataError(f"{path}: stems listed in two splits ({', '.join(in_two[:MAX_LISTED])}{more}); "
                        "keep each stem in one split")
    return listed
