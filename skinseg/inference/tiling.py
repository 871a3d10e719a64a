"""Tiled inference at native resolution: overlapping tiles blended with a Hann window (numpy only).

The original's chunk stitching, with its gap fixed: tile starts lie on a grid with stride
tile - overlap and the last start is snapped to the image edge, so every pixel is covered
(the original left pixels outside every tile at 0, and skipped images smaller than a tile).
An image side shorter than the tile gets one tile of that side's length (the image passes
through at its own size, so the network needs dynamic height/width, as every skinseg
export has); an image smaller than a tile on both sides is one untiled run.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

WINDOW_FLOOR = 1e-3


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Starts 0, stride, 2·stride, ... on one axis, the last at length - tile; [0] if length <= tile."""
    if length <= tile:
        return [0]
    count = -(-(length - tile) // stride) + 1
    return [min(index * stride, length - tile) for index in range(count)]


def tile_boxes(height: int, width: int, tile: int = 512, overlap: int = 64) -> list[tuple[int, ...]]:
    """The tiles covering an image, as (y, x, tile_height, tile_width), all of one shape.

    Raises:
        ValueError: tile < 1, or overlap outside [0, tile).
    """
    if tile < 1 or not 0 <= overlap < tile:
        raise ValueError(f"tiling needs tile >= 1 and 0 <= overlap < tile, got {tile=}, {overlap=}")
    tile_h, tile_w = min(tile, height), min(tile, width)
    stride = tile - overlap
    rows, cols = tile_starts(height, tile, stride), tile_starts(width, tile, stride)
    return [(y, x, tile_h, tile_w) for y in rows for x in cols]


def hann_window(height: int, width: int) -> np.ndarray:
    """Separable Hann window float64 (height,width), each axis floored at 1e-3, maximum 1."""
    rows = np.maximum(np.hanning(height), WINDOW_FLOOR)
    cols = np.maximum(np.hanning(width), WINDOW_FLOOR)
    window = np.outer(rows, cols)
    return window / window.max()


def predict_tiled(
    run_batch: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    tile: int = 512,
    overlap: int = 64,
    batch_size: int = 4,
) -> np.ndarray:
    """Probabilities of a large image from overlapping tiles, blended with a Hann window.

    Args:
        run_batch: float32 tiles (B,3,h,w) in [0,1] -> probabilities (B,1,h,w), e.g. a
            session's `run`.
        image: RGB uint8 (H,W,3).
        tile: tile side in pixels (sides of the image shorter than this: one tile of
            that side's length).
        overlap: pixels shared by neighbouring tiles (stride = tile - overlap).
        batch_size: tiles per `run_batch` call.

    Returns:
        float32 (H,W): sum(window·p) / sum(window) over the tiles covering each pixel.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    height, width = image.shape[:2]
    boxes = tile_boxes(height, width, tile, overlap)
    tile_h, tile_w = boxes[0][2:]
    window = hann_window(tile_h, tile_w)
    total = np.zeros((height, width), np.float64)
    weights = np.zeros((height, width), np.float64)
    for start in range(0, len(boxes), batch_size):
        chunk = boxes[start : start + batch_size]
        tiles = np.stack([image[y : y + tile_h, x : x + tile_w] for y, x, _, _ in chunk])
        probabilities = run_batch(tiles.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255))
        for (y, x, _, _), probability in zip(chunk, probabilities[:, 0], strict=True):
            total[y : y + tile_h, x : x + tile_w] += window * probability
            weights[y : y + tile_h, x : x + tile_w] += window
    return (total / weights).astype(np.float32)
