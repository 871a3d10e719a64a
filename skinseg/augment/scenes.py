"""Scale-and-context augmentations: small people on real scenes, with exact masks.

Close-up training sets (skin fills the frame) teach a segmenter that "the big smooth region is
skin", so on photos of people in rooms or streets it marks walls and floors as skin. These
augmentations show it skin at many scales next to real clutter, without new labelling:

- `zoom_out` shrinks a close-up onto a background photo of a scene with no people;
- `cut_person` + `paste_people` cut whole people out along their silhouettes and paste them,
  small, onto other frames (their clothes and hair hide whatever skin was behind them);
- `scene_crop` crops into scene photos, so small skin regions become larger and some crops
  have no skin at all;
- `paste_skin` blends one example's skin over another example's photo (`data.augment.composite.p`).

Images are uint8 RGB (H,W,3), masks uint8 (H,W) 0-255 (soft values allowed). Inputs are never
modified, and all randomness comes from the `rng` argument (deterministic for a seed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np


def _check_range(name: str, value: tuple[float, float]) -> tuple[float, float]:
    low, high = value
    if not 0 < low <= high <= 1:
        raise ValueError(
            f"{name} must be (min, max) with 0 < min <= max <= 1, got {value}; pass e.g. {name}=(0.1, 0.5)"
        )
    return low, high


def _resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """`array` resized to (height, width): INTER_AREA when shrinking, INTER_LINEAR otherwise."""
    if array.shape[:2] == (height, width):
        return array.copy()
    shrinking = height <= array.shape[0] and width <= array.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(array), (width, height), interpolation=interpolation)


def fill_canvas(background: np.ndarray, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A canvas cut from a background photo of any size.

    Args:
        background: uint8 (H,W,3) photo.
        height: canvas height in pixels.
        width: canvas width in pixels.
        rng: source of randomness.

    Returns:
        uint8 (height,width,3): a random crop with the canvas's aspect ratio, covering 50-100 % of
        the photo's limiting side, resized to the canvas.
    """
    photo_h, photo_w = background.shape[:2]
    # The largest crop with the canvas's aspect ratio that fits in the photo.
    full_h = min(photo_h, photo_w * height / width)
    full_w = full_h * width / height
    fraction = rng.uniform(0.5, 1.0)
    crop_h = min(photo_h, max(1, round(full_h * fraction)))
    crop_w = min(photo_w, max(1, round(full_w * fraction)))
    y = rng.integers(0, photo_h - crop_h + 1)
    x = rng.integers(0, photo_w - crop_w + 1)
    return _resize(background[y : y + crop_h, x : x + crop_w], height, width)


def zoom_out(
    image: np.ndarray,
    mask: np.ndarray,
    background: np.ndarray,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.15, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Shrink an example and place it at a random position on a background scene.

    Args:
        image: uint8 (H,W,3) example.
        mask: uint8 (H,W) skin mask of the example.
        background: uint8 (h,w,3) photo without people (any size), see `fill_canvas`.
        rng: source of randomness.
        scale: range of the factor applied to both sides of the example.

    Returns:
        uint8 (H,W,3) image and uint8 (H,W) mask: the shrunk example on the background, its mask
        shrunk the same way (soft edges) at the same position, 0 elsewhere.
    """
    low, high = _check_range("scale", scale)
    height, width = image.shape[:2]
    factor = rng.uniform(low, high)
    small_h, small_w = max(1, round(height * factor)), max(1, round(width * factor))
    out_image = fill_canvas(background, height, width, rng)
    out_mask = np.zeros_like(mask)
    y = rng.integers(0, height - small_h + 1)
    x = rng.integers(0, width - small_w + 1)
    out_image[y : y + small_h, x : x + small_w] = _resize(image, small_h, small_w)
    out_mask[y : y + small_h, x : x + small_w] = _resize(mask, small_h, small_w)
    return out_image, out_mask


# eq=False: comparing or hashing field by field is meaningless for arrays.
@dataclass(frozen=True, eq=False)
class Person:
    """A person cut out to the bounding box of its silhouette.

    Attributes:
        image: uint8 (h,w,3) RGB crop.
        skin: uint8 (h,w) skin mask of the crop.
        silhouette: uint8 (h,w) whole person (skin, hair, clothes, shoes), 0-255.
    """

    image: np.ndarray
    skin: np.ndarray
    silhouette: np.ndarray

    def __post_init__(self) -> None:
        if not self.image.shape[:2] == self.skin.shape == self.silhouette.shape:
            raise ValueError(
                f"Person arrays differ in size: image {self.image.shape}, skin {self.skin.shape}, "
                f"silhouette {self.silhouette.shape}; crop all three with cut_person"
            )


def cut_person(image: np.ndarray, skin_mask: np.ndarray, silhouette: np.ndarray, margin: int = 2) -> Person:
    """Crop a photo, its skin mask and its person silhouette to the silhouette's bounding box.

    Args:
        image: uint8 (H,W,3) photo.
        skin_mask: uint8 (H,W) skin mask.
        silhouette: uint8 (H,W) 0/255 mask of the whole person.
        margin: pixels added around the box (silhouette >= 128), clipped to the photo.

    Returns:
        The `Person` in the box.

    Raises:
        ValueError: if the silhouette has no pixel >= 128.
    """
    rows, cols = np.nonzero(silhouette >= 128)
    if rows.size == 0:
        raise ValueError("cut_person: the silhouette is empty (no pixel >= 128); skip this photo")
    height, width = silhouette.shape
    top, bottom = max(0, rows.min() - margin), min(height, rows.max() + 1 + margin)
    left, right = max(0, cols.min() - margin), min(width, cols.max() + 1 + margin)
    box = np.s_[top:bottom, left:right]
    return Person(image[box].copy(), skin_mask[box].copy(), silhouette[box].copy())


def paste_people(
    image: np.ndarray,
    mask: np.ndarray,
    people: Sequence[Person],
    rng: np.random.Generator,
    height: tuple[float, float] = (0.05, 0.4),
) -> tuple[np.ndarray, np.ndarray]:
    """Paste people, in order, at random sizes and positions, alpha-blended along their silhouettes.

    Each person is scaled so its height is a random fraction in `height` of the frame's height
    (aspect kept; scaled down further if wider than the frame), flipped horizontally with
    probability 0.5 and placed fully inside the frame. With alpha = silhouette / 255, the image
    becomes alpha * person + (1 - alpha) * image and the mask alpha * skin + (1 - alpha) * mask:
    the person's clothes and hair hide the skin behind them. Later people cover earlier ones.

    Args:
        image: uint8 (H,W,3) frame.
        mask: uint8 (H,W) skin mask of the frame.
        people: people to paste, e.g. from `cut_person`.
        rng: source of randomness.
        height: range of a pasted person's height as a fraction of the frame's height.

    Returns:
        uint8 (H,W,3) image and uint8 (H,W) mask.
    """
    low, high = _check_range("height", height)
    frame_h, frame_w = image.shape[:2]
    out_image = image.astype(np.float32)
    out_mask = mask.astype(np.float32)
    for person in people:
        person_h, person_w = person.silhouette.shape
        factor = min(rng.uniform(low, high) * frame_h / person_h, frame_w / person_w)
        new_h = min(frame_h, max(1, round(person_h * factor)))
        new_w = min(frame_w, max(1, round(person_w * factor)))
        layers = [_resize(array, new_h, new_w) for array in (person.image, person.skin, person.silhouette)]
        if rng.random() < 0.5:
            layers = [layer[:, ::-1] for layer in layers]
        person_image, skin, silhouette = layers
        y = rng.integers(0, frame_h - new_h + 1)
        x = rng.integers(0, frame_w - new_w + 1)
        box = np.s_[y : y + new_h, x : x + new_w]
        alpha = silhouette.astype(np.float32) / 255
        out_image[box] = alpha[..., None] * person_image + (1 - alpha[..., None]) * out_image[box]
        out_mask[box] = alpha * skin + (1 - alpha) * out_mask[box]
    return np.rint(out_image).astype(np.uint8), np.rint(out_mask).astype(np.uint8)


def scene_crop(
    image: np.ndarray,
    mask: np.ndarray,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.1, 0.6),
) -> tuple[np.ndarray, np.ndarray]:
    """A random crop of a scene photo with the photo's aspect ratio, not resized.

    Args:
        image: uint8 (H,W,3) scene photo.
        mask: uint8 (H,W) skin mask.
        rng: source of randomness.
        scale: range of the crop's area as a fraction of the photo's area.

    Returns:
        uint8 (h,w,3) image and uint8 (h,w) mask of the crop (a later resize brings them to the
        network's size, so small skin regions become larger; some crops have no skin).
    """
    low, high = _check_range("scale", scale)
    height, width = image.shape[:2]
    side = np.sqrt(rng.uniform(low, high))
    crop_h, crop_w = max(1, round(height * side)), max(1, round(width * side))
    y = rng.integers(0, height - crop_h + 1)
    x = rng.integers(0, width - crop_w + 1)
    box = np.s_[y : y + crop_h, x : x + crop_w]
    return image[box].copy(), mask[box].copy()


def paste_skin(
    image: np.ndarray, mask: np.ndarray, background: np.ndarray, background_mask: np.ndarray,
    rng: np.random.Generator, max_shift: float = 0.25, scale: tuple[float, float] = (0.7, 1.2),
) -> tuple[np.ndarray, np.ndarray]:
    """Pastes the skin of one example onto another example's photo (compositing augmentation).

    The skin (soft `mask` as alpha) is scaled by a factor drawn from `scale` about the
    centre and shifted by up to `max_shift` of the side, then blended over `background`;
    the background's own skin stays labelled where it is not covered.

    Args:
        image: (H, W, 3) uint8 photo whose skin is pasted.
        mask: (H, W) uint8 mask of `image` (0-255).
        background: (H, W, 3) uint8 photo to paste onto.
        background_mask: (H, W) uint8 mask of `background`.
        rng: random generator for the placement.

    Returns:
        (H, W, 3) uint8 image and (H, W) uint8 mask.
    """
    height, width = mask.shape
    factor = rng.uniform(*scale)
    shift_x, shift_y = rng.uniform(-max_shift, max_shift, 2) * (width, height)
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 0.0, factor)
    matrix[:, 2] += (shift_x, shift_y)
    warp = dict(dsize=(width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    alpha = cv2.warpAffine(mask, matrix, **warp).astype(np.float32)[..., None] / 255.0
    skin = cv2.warpAffine(image, matrix, **warp).astype(np.float32)
    blended = alpha * skin + (1.0 - alpha) * background.astype(np.float32)
    labels = 255.0 * alpha[..., 0] + (1.0 - alpha[..., 0]) * background_mask.astype(np.float32)
    return np.rint(blended).astype(np.uint8), np.rint(labels).astype(np.uint8)
