"""Pre- and post-processing shared by the inference sessions (numpy, Pillow, OpenCV; no torch).

`Predictor` implements `predict`, `predict_batch` and `remove` once, on top of a
subclass's `run` (float32 images (B,3,S,S) in [0,1] -> probabilities (B,1,S,S)):
`skinseg.inference.Session` runs ONNX Runtime, `TorchSession` runs a checkpoint.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps

from skinseg.errors import UsageError
from skinseg.inference.guided import guided_upsample
from skinseg.inference.tiling import predict_tiled
from skinseg.io import read_image, to_uint8
from skinseg.resize import RESIZE_MODES, check_resize_mode, inner_size, resize_image

ImageInput = Image.Image | np.ndarray | str | os.PathLike
NORMALIZE_MODES = ("minmax", "none")
UPSAMPLE_MODES = ("lanczos", "guided")
DEFAULT_UPSAMPLE = "guided"  # skinseg's own models: checkpoints, and exports through their ONNX metadata
_HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I", "F")
DEFAULT_ZOOM_BELOW = 0.05  # largest skin region under 5 % of the frame: people far from the camera
# Bounds of the settings a command line or a model file may choose (BiRefNet runs at 1728 px;
# a larger side only exhausts memory)
MAX_SIZE, MAX_ZOOM = 4096, 4.0
# setting -> (parse, valid, the rule in words), for `predict`'s arguments and ONNX metadata alike
SETTING_RULES: dict[str, tuple[type, Callable[[Any], bool], str]] = {
    "size": (int, lambda side: 1 <= side <= MAX_SIZE, f"an input side of 1 to {MAX_SIZE} px"),
    "zoom": (float, lambda zoom: zoom == 0 or 1 < zoom <= MAX_ZOOM,
             f"0 (no small-skin pass) or a factor in (1, {MAX_ZOOM:g}]"),
    "zoom_below": (float, lambda share: 0 < share <= 1, "a share of the frame in (0, 1]"),
    "resize": (str, lambda mode: mode in RESIZE_MODES, f"one of {RESIZE_MODES}"),
    "upsample": (str, lambda mode: mode in UPSAMPLE_MODES, f"one of {UPSAMPLE_MODES}"),
}


def check_setting(name: str, value: Any, label: str | None = None) -> Any:
    """`value` if it keeps `SETTING_RULES[name]`.

    Raises:
        UsageError: it breaks the rule; the message names `label` (default: the setting) and the rule.
    """
    _, valid, rule = SETTING_RULES[name]
    try:
        kept = valid(value)
    except TypeError:
        kept = False
    if not kept or (isinstance(value, float) and value != value):
        raise UsageError(f"{label or name} must be {rule}, got {value!r}")
    return value


def to_rgb(image: ImageInput) -> np.ndarray:
    """Any supported input -> RGB uint8 (H,W,3), upright.

    Args:
        image: a file path (read with `skinseg.io.read_image`); a PIL image (EXIF
            orientation applied, converted to RGB); or a numpy array (H,W), (H,W,1),
            (H,W,3) RGB or (H,W,4) RGBA of uint8 (0-255), uint16 (0-65535, scaled to 8
            bits), bool, or float in [0, 1] (scaled by 255). Alpha channels are dropped,
            grey is repeated to RGB.

    Raises:
        skinseg.io.DataError: a path that is missing or cannot be decoded.
        ValueError, TypeError: an array of another shape, dtype or range (other
            integer types, floats outside [0, 1] or not finite), an empty image, or another type.
    """
    rgb = _convert_to_rgb(image)
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise UsageError(f"an empty image ({rgb.shape[1]}x{rgb.shape[0]} pixels); pass one of at least 1x1")
    return rgb


def _convert_to_rgb(image: ImageInput) -> np.ndarray:
    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    if isinstance(image, Image.Image):
        image = ImageOps.exif_transpose(image)
        if image.mode not in _HIGH_DEPTH_MODES:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
        grey = np.asarray(image)  # 16-bit (I;16, I) or float (F): the mode says how to scale it
        if not np.isfinite(grey).all():
            raise UsageError("the PIL image holds NaN or infinite values; fill them first")
        return np.repeat(to_uint8(grey)[..., None], 3, axis=2)
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a PIL image, a numpy array or a path, got {type(image).__name__}")
    array = to_uint8(check_pixel_values(image))
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        return np.repeat(array[..., None], 3, axis=2)
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return np.ascontiguousarray(array[..., :3])
    raise UsageError(f"expected an image array (H,W), (H,W,3) or (H,W,4), got shape {image.shape}")


def check_pixel_values(array: np.ndarray) -> np.ndarray:
    """Returns `array` if its dtype and values follow `to_rgb`'s rule; one clear error otherwise.

    Raises:
        UsageError (a ValueError): another integer type (an int64 array holding 0-255 would
            otherwise be read as 16-bit and come out almost black), floats outside [0, 1],
            NaN or infinite values.
    """
    if array.dtype in (np.uint8, np.uint16, np.bool_):
        return array
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise UsageError("the image array holds NaN or infinite values; fill them (np.nan_to_num) first")
        low, high = float(array.min(initial=0.0)), float(array.max(initial=0.0))
        if low < 0 or high > 1:
            raise UsageError(f"a float image array must lie in [0, 1], this one spans [{low:g}, {high:g}]; "
                             "divide 0-255 values by 255, or pass them as uint8")
        return array
    raise UsageError(f"an image array of {array.dtype}: pass uint8 (0-255), uint16 (0-65535) or float in [0, 1], "
                     "e.g. image.astype(np.uint8) for 0-255 values")


def model_input(rgb: np.ndarray, size: int, resize: str,
                interpolation: str = "lanczos") -> tuple[np.ndarray, tuple[int, int]]:
    """Resizes an image for a network with square input `size`.

    Args:
        rgb: uint8 (H,W,3).
        size: side of the network input.
        resize: "squash" (stretch to size x size, aspect not kept) or "letterbox" (long
            side = size, aspect kept, zero padding bottom/right).
        interpolation: "lanczos" (the default, the original's) or "area" (training's); see
            `skinseg.resize`.

    Returns:
        float32 (3,size,size) in [0,1], and the (height, width) of the image inside it
        (without the letterbox padding).
    """
    inner = inner_size(*rgb.shape[:2], size, resize)
    resized = resize_image(rgb, *inner, interpolation)
    chw = np.zeros((3, size, size), np.float32)
    chw[:, : inner[0], : inner[1]] = resized.transpose(2, 0, 1) / np.float32(255)
    return chw, inner


def minmax(probability: np.ndarray) -> np.ndarray:
    """(p - min) / (max - min) of a float map (H,W); a constant map is returned unchanged."""
    low, high = float(probability.min()), float(probability.max())
    if high <= low:
        return probability
    return (probability - low) / (high - low)


def post_process(mask: np.ndarray) -> np.ndarray:
    """The original Session's clean-up of a uint8 (H,W) mask: open (3x3 ellipse), Gaussian 9x9 σ 2."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    return cv2.GaussianBlur(mask, (9, 9), sigmaX=2, sigmaY=2)


def to_mask(
    probability: np.ndarray, shape: tuple[int, int], normalize: str = "none", postprocess: bool = False,
    guide: np.ndarray | None = None, network_side: int | None = None,
) -> np.ndarray:
    """A probability map float (h,w) -> uint8 (H,W) mask at the image's size `shape`.

    Min-max normalisation (if "minmax"); then, without `guide`, x255 rounded to uint8 and
    Lanczos resize (cv2.INTER_LANCZOS4, saturating) to `shape` (the original's); with
    `guide` (the image, uint8 (H,W,3)), `guided_upsample` to its size, then x255 to uint8;
    then `post_process` if asked.
    """
    if normalize == "minmax":
        probability = minmax(probability)
    if guide is not None:
        probability = guided_upsample(probability, guide, network_side or max(probability.shape))
    mask = np.clip(np.rint(probability * 255), 0, 255).astype(np.uint8)
    if mask.shape != tuple(shape):
        mask = cv2.resize(mask, (shape[1], shape[0]), interpolation=cv2.INTER_LANCZOS4)
    return post_process(mask) if postprocess else mask


def largest_region_share(probability: np.ndarray) -> float:
    """Area of the largest 8-connected region of p >= 0.5 in a map float (h,w), as a share of h·w (0 if none)."""
    count, _, stats, _ = cv2.connectedComponentsWithStats((probability >= 0.5).astype(np.uint8), connectivity=8)
    if count < 2:
        return 0.0
    return float(stats[1:, cv2.CC_STAT_AREA].max()) / probability.size


def cutout(rgb: np.ndarray, mask: np.ndarray) -> Image.Image:
    """RGB uint8 (H,W,3) and mask uint8 (H,W) -> an RGBA PIL image with alpha = mask."""
    return Image.fromarray(np.dstack([rgb, mask]))


class Predictor(ABC):
    """Image -> skin mask around a network's `run`, with the original Session's processing.

    The steps (input conversion, Lanczos squash/letterbox resize, min-max, resize back
    (Lanczos or guided), post-processing) are listed on `skinseg.inference.session.Session`.
    With `tile`, the resize and run become `predict_tiled` at the image's own resolution
    (no resize back, so `upsample` does not apply).

    The small-skin pass (`zoom` > 1): a network trained on close-ups marks skin at close-up
    scale, so people far from the camera come out (almost) empty. When the first pass's
    largest skin region covers less than `zoom_below` of the input, the image is run again
    at input side round(size·zoom) and that pass's probabilities are used instead.
    Images with a large skin region (portraits, hands) run once.

    Subclasses set `size`, `resize`, `normalize`, `postprocess`, `upsample`, `zoom`,
    `zoom_below` (with `_configure`), `fixed_size` (the network's static input side, or None)
    and implement `run`.
    """

    size: int
    resize: str
    normalize: str
    postprocess: bool
    upsample: str
    zoom: float = 0.0
    zoom_below: float = DEFAULT_ZOOM_BELOW
    fixed_size: int | None = None
    interpolation: str = "lanczos"  # of the input resize; "area" is training's (`skinseg.resize`)

    def _configure(self, size: int, resize: str, normalize: str, postprocess: bool, upsample: str,
                   zoom: float | None = None, zoom_below: float | None = None) -> None:
        check_resize_mode(resize)
        if normalize not in NORMALIZE_MODES:
            raise ValueError(f"normalize must be one of {NORMALIZE_MODES}, got {normalize!r}")
        self.size = check_setting("size", int(size))
        self.resize, self.normalize = resize, normalize
        self.postprocess = bool(postprocess)
        self.upsample = check_setting("upsample", upsample)
        zoom = check_setting("zoom", float(zoom or 0.0))
        zoom_below = check_setting("zoom_below", DEFAULT_ZOOM_BELOW if zoom_below is None else float(zoom_below))
        if zoom and self.fixed_size is not None:
            raise ValueError(f"this model has a fixed input size {self.fixed_size}; zoom needs dynamic height/width")
        self.zoom, self.zoom_below = zoom, zoom_below

    def _to_mask(self, probability: np.ndarray, rgb: np.ndarray, side: int | None = None) -> np.ndarray:
        """The network's probabilities for `rgb` (padding removed) at input side `side` -> its uint8 (H,W) mask."""
        guide = rgb if self.upsample == "guided" else None
        return to_mask(probability, rgb.shape[:2], self.normalize, self.postprocess, guide, side or self.size)

    def _finish(self, probability: np.ndarray, rgb: np.ndarray) -> np.ndarray:
        """First-pass probabilities (padding removed) -> the mask, after the small-skin pass where it applies."""
        if not self.zoom or largest_region_share(probability) >= self.zoom_below:
            return self._to_mask(probability, rgb)
        side = round(self.size * self.zoom)
        chw, (inner_h, inner_w) = model_input(rgb, side, self.resize, self.interpolation)
        return self._to_mask(self.run(chw[None])[0, 0, :inner_h, :inner_w], rgb, side)

    @abstractmethod
    def run(self, images: np.ndarray) -> np.ndarray:
        """float32 images (B,3,H,W) in [0,1] -> probabilities float32 (B,1,H,W)."""

    def _predict_tiled(self, rgb: np.ndarray, tile: int, overlap: int, batch_size: int) -> np.ndarray:
        if self.fixed_size is not None:
            raise ValueError(
                f"this model has a fixed input size {self.fixed_size}; tiled inference needs dynamic "
                "height/width (export with dynamic_size=True)"
            )
        probability = predict_tiled(self.run, rgb, tile, overlap, batch_size)
        return to_mask(probability, rgb.shape[:2], self.normalize, self.postprocess)

    def predict(
        self, image: ImageInput, tile: int | None = None, overlap: int = 64, batch_size: int = 4
    ) -> np.ndarray:
        """One image -> uint8 (H,W) skin mask on 0-255 at the image's (upright) size.

        Args:
            image: PIL image, numpy array or path (see `to_rgb`).
            tile: run on tile x tile crops at the image's own resolution, blended with a
                Hann window (`predict_tiled`), instead of resizing the image to `size`.
            overlap: overlap of neighbouring tiles in pixels.
            batch_size: tiles per `run` call.
        """
        rgb = to_rgb(image)
        if tile:
            return self._predict_tiled(rgb, tile, overlap, batch_size)
        chw, (inner_h, inner_w) = model_input(rgb, self.size, self.resize, self.interpolation)
        return self._finish(self.run(chw[None])[0, 0, :inner_h, :inner_w], rgb)

    def predict_batch(
        self, images: Sequence[ImageInput], batch_size: int = 8, tile: int | None = None, overlap: int = 64
    ) -> list[np.ndarray]:
        """Several images -> a uint8 (H,W) mask each, running `batch_size` images (or tiles) per call."""
        if tile:
            return [self._predict_tiled(to_rgb(image), tile, overlap, batch_size) for image in images]
        masks = []
        for start in range(0, len(images), batch_size):
            rgbs = [to_rgb(image) for image in images[start : start + batch_size]]
            inputs = [model_input(rgb, self.size, self.resize, self.interpolation) for rgb in rgbs]
            probabilities = self.run(np.stack([chw for chw, _ in inputs]))[:, 0]
            masks.extend(
                self._finish(probability[:inner_h, :inner_w], rgb)
                for rgb, (_, (inner_h, inner_w)), probability in zip(rgbs, inputs, probabilities, strict=True)
            )
        return masks

    def remove(self, image: ImageInput, tile: int | None = None, overlap: int = 64) -> Image.Image:
        """One image -> RGBA PIL cutout (H,W): the upright RGB image with alpha = the skin mask."""
        rgb = to_rgb(image)
        return cutout(rgb, self.predict(rgb, tile=tile, overlap=overlap))
