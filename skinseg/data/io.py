"""Reading images and masks of any common format into uint8 arrays, with clear errors.

Images become RGB uint8 (H,W,3) and masks uint8 (H,W) on the 0-255 scale, whatever
the file holds: RGBA (alpha dropped), greyscale, palette, CMYK, 16-bit, 0/1 masks,
soft masks, EXIF-rotated photos. Every error names the file and says what to do.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from skinseg.errors import DataError

__all__ = ["IMAGE_EXTENSIONS", "DataError", "read_image", "read_mask", "save_png", "to_uint8"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def _open(path: str | os.PathLike) -> Image.Image:
    """Opens and fully decodes an image, applying its EXIF orientation."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with Image.open(path) as image:
            image.load()
            return ImageOps.exif_transpose(image)
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


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Reads an image file as RGB uint8 (H,W,3), EXIF orientation applied.

    RGBA and LA inputs lose their alpha channel (the colour values are kept);
    greyscale, palette and CMYK become RGB; 16-bit channels are scaled to 8 bits.

    Raises:
        DataError: the file is missing or cannot be decoded.
    """
    image = _open(path)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        grey = to_uint8(np.asarray(image))
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
        raw = np.asarray(image)
        if raw.max(initial=0) <= 1:
            return (raw > 0).astype(np.uint8) * 255
        return to_uint8(raw)
    mask = np.asarray(image.convert("L"), dtype=np.uint8)
    if mask.max(initial=0) == 1:
        return mask * 255
    return mask


def save_png(image: Image.Image, path: str | os.PathLike) -> None:
    """Writes a PNG atomically (temporary file, then rename): a killed run leaves no torn file."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        image.save(temporary, format="PNG")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
