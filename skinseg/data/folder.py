"""Folder datasets: `ROOT/images/STEM.*` paired with `ROOT/masks/STEM.*` by stem.

Pure numpy/OpenCV (no torch), so evaluation of classical methods can use it too.
A folder is scanned once before training: every pair is decoded and checked (readable,
same size), so bad files fail fast with one error that lists them all, never mid-epoch.
The verified index is cached as JSON and reused while the files' sizes and modification
times are unchanged. An optional `ROOT/splits.json` {"train": [...], "val": [...], "test": [...]}
fixes the splits; without it a stable hash of each stem assigns `val_fraction` of the pairs
to validation (adding images never moves old ones between splits), and there is no test split.
"test" is a held-out split: it is read only when asked for by name (`FolderIndex.split("test")`,
`evaluate.py split=test`, `train.py test=true`), never trained on or used to choose anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from skinseg.data.demo import demo_dataset
from skinseg.errors import UsageError
from skinseg.files import write_json
from skinseg.io import (
    IMAGE_EXTENSIONS,
    MAX_LISTED,
    SPLITS,
    DataError,
    list_by_stem,
    read_image,
    read_mask,
    read_splits_file,
)

log = logging.getLogger(__name__)

INDEX_VERSION = 1


@dataclass(frozen=True)
class Sample:
    """One verified image/mask pair."""

    image: str
    mask: str
    stem: str
    dataset: str
    split: str
    height: int
    width: int


def _stable_fraction(stem: str) -> float:
    """A stem's fixed pseudo-random position in [0, 1), independent of the other files."""
    digest = hashlib.sha1(stem.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _read_splits(root: Path, stems: Sequence[str], val_fraction: float) -> dict[str, str]:
    """Maps stem -> split name, from splits.json or from stable stem hashes."""
    path = root / "splits.json"
    if not path.exists():
        return {stem: "val" if _stable_fraction(stem) < val_fraction else "train" for stem in stems}
    listed = read_splits_file(path)
    assignment: dict[str, str] = {}
    known = set(stems)
    unknown = []
    for split, split_stems in listed.items():
        for stem in split_stems:
            if stem in known:
                assignment[stem] = split
            else:
                unknown.append(stem)
    if unknown:
        raise DataError(
            f"{path}: {len(unknown)} listed stems have no image in {root / 'images'} "
            f"(e.g. {', '.join(unknown[:MAX_LISTED])}); fix splits.json"
        )
    unlisted = len(known) - len(assignment)
    if unlisted:
        log.warning("%s: %d images are in no split and are not used", path, unlisted)
    return assignment


def file_stamp(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _verify_pair(image_path: Path, mask_path: Path, resize_masks: bool) -> tuple[int, int]:
    """Decodes both files; returns the image's (H, W). Raises DataError when unusable."""
    image = read_image(image_path)
    mask = read_mask(mask_path)
    if image.shape[:2] != mask.shape and not resize_masks:
        raise DataError(
            f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image {image_path.name} is "
            f"{image.shape[1]}x{image.shape[0]} (WxH); fix the mask or set data.resize_masks=true "
            "to resize masks to their images"
        )
    return image.shape[0], image.shape[1]


class FolderIndex:
    """Scans and verifies one folder dataset, caching the verified index.

    Args:
        root: folder holding `images/` and `masks/` (and optionally `splits.json`).
        name: dataset name used in logs and per-dataset metrics; default: folder name.
        val_fraction: share of pairs for validation when there is no splits.json.
        resize_masks: accept masks whose size differs from their image's.
        cache_dir: where to keep the verified index; None disables caching.
        workers: threads used to decode files during the first scan.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        name: str | None = None,
        val_fraction: float = 0.1,
        resize_masks: bool = False,
        cache_dir: str | os.PathLike | None = None,
        workers: int = 4,
    ) -> None:
        self.root = Path(root).expanduser()
        self.name = name or self.root.resolve().name
        if not 0.0 <= val_fraction < 1.0:
            raise DataError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
        self.val_fraction = val_fraction
        self.resize_masks = resize_masks
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.workers = workers
        self.samples = self._scan()

    def split(self, split: str) -> list[Sample]:
        """The samples of one split: "train", "val", "test", or "all".

        "all" is train + val, every pair that may be scored for a dataset held out of
        training; it never includes "test", which is read only when asked for by name.
        """
        if split not in (*SPLITS, "all"):
            raise DataError(f"split must be 'train', 'val', 'test' or 'all', got {split!r}")
        wanted = ("train", "val") if split == "all" else (split,)
        return [sample for sample in self.samples if sample.split in wanted]

    def _check_layout(self) -> tuple[Path, Path]:
        check_dataset_folder(self.root)
        images, masks = self.root / "images", self.root / "masks"
        missing = [str(folder) for folder in (images, masks) if not folder.is_dir()]
        if missing:
            raise DataError(
                f"{self.root}: missing {' and '.join(missing)}; a dataset folder holds images/STEM.jpg|png "
                "and masks/STEM.png with the same stems"
            )
        return images, masks

    def _cache_path(self) -> Path | None:
        if self.cache_dir is None:
            return None
        key = f"{self.root.resolve()}|{self.resize_masks}"
        digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]
        return self.cache_dir / "index" / f"{self.name}-{digest}.json"

    def _load_cache(self) -> dict[str, dict]:
        path = self._cache_path()
        if path is None or not path.exists():
            return {}
        try:
            cached = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            cached = None
        pairs = cached.get("pairs") if isinstance(cached, dict) else None
        keys = {"image_path", "mask_path", "stamp", "size"}
        if not isinstance(pairs, dict) or not all(isinstance(entry, dict) and keys <= entry.keys()
                                                  for entry in pairs.values()):
            log.warning("%s: unreadable or not a dataset index; rebuilding it", path)
            return {}
        return pairs if cached.get("version") == INDEX_VERSION else {}

    def _save_cache(self, pairs: dict[str, dict]) -> None:
        path = self._cache_path()
        if path is None:
            return
        try:
            write_json(path, {"version": INDEX_VERSION, "pairs": pairs}, indent=None)
        except OSError as error:  # a read-only cache only costs a rescan next time
            log.warning("could not write the dataset index cache %s: %s", path, error)

    def _scan(self) -> list[Sample]:
        images_dir, masks_dir = self._check_layout()
        images = list_by_stem(images_dir)
        masks = list_by_stem(masks_dir)
        if not images:
            raise DataError(
                f"{images_dir}: no images found (supported: {', '.join(IMAGE_EXTENSIONS)}); "
                "check data.root"
            )
        unmatched = [stem for stem in images if stem not in masks]
        if unmatched:
            raise DataError(
                f"{self.root}: {len(unmatched)} images have no mask in {masks_dir} "
                f"(e.g. {', '.join(images[s].name for s in unmatched[:MAX_LISTED])}); "
                "add masks/STEM.png for each or remove those images"
            )
        splits = _read_splits(self.root, list(images), self.val_fraction)

        cached = self._load_cache()
        pairs: dict[str, dict] = {}
        to_verify = []
        for stem in splits:
            image_path, mask_path = images[stem], masks[stem]
            stamp = {"image": file_stamp(image_path), "mask": file_stamp(mask_path)}
            entry = cached.get(stem)
            if (
                entry
                and entry["image_path"] == image_path.name
                and entry["mask_path"] == mask_path.name
                and entry["stamp"] == stamp
            ):
                pairs[stem] = entry
            else:
                to_verify.append((stem, image_path, mask_path, stamp))

        if to_verify:
            log.info("%s: verifying %d image/mask pairs", self.root, len(to_verify))
            errors = []

            def verify(item):
                stem, image_path, mask_path, stamp = item
                try:
                    height, width = _verify_pair(image_path, mask_path, self.resize_masks)
                except DataError as error:
                    errors.append(str(error))
                    return
                pairs[stem] = {
                    "image_path": image_path.name,
                    "mask_path": mask_path.name,
                    "stamp": stamp,
                    "size": [height, width],
                }

            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                list(pool.map(verify, to_verify))
            if errors:
                errors.sort()
                more = f"\n  ... and {len(errors) - MAX_LISTED} more" if len(errors) > MAX_LISTED else ""
                raise DataError(
                    f"{self.root}: {len(errors)} unusable image/mask pairs:\n  "
                    + "\n  ".join(errors[:MAX_LISTED])
                    + more
                )
            self._save_cache(pairs)

        return [
            Sample(
                image=str(images_dir / pairs[stem]["image_path"]),
                mask=str(masks_dir / pairs[stem]["mask_path"]),
                stem=stem,
                dataset=self.name,
                split=split,
                height=pairs[stem]["size"][0],
                width=pairs[stem]["size"][1],
            )
            for stem, split in sorted(splits.items())
        ]


def check_dataset_name(name: str, setting: str = "data.datasets") -> str:
    """Returns `name` if it names a folder under the data root: not a path, not '.' or '..'.

    Raises:
        UsageError: the name holds a path separator, is absolute, empty, '.' or '..'
            (cache and output files are written under dataset names).
    """
    text = str(name)
    if text in ("", ".", "..") or "/" in text or "\\" in text or Path(text).is_absolute():
        raise UsageError(f"{setting}: {text!r} is not a dataset name; name a folder under data.root (e.g. sfa), "
                         "and set data.root to read datasets from another folder")
    return text


def dataset_folders(
    root: str | os.PathLike, datasets: Sequence[str] | None = None, demo: dict | None = None
) -> list[tuple[str, Path]]:
    """(name, folder) of each dataset a data config names.

    Args:
        root: a dataset folder, or the parent of the folders named in `datasets`.
        datasets: folder names under root; None: root itself is the only dataset.
        demo: demo-generator parameters: the demo set replaces real data (see
            `skinseg.data.demo.demo_dataset`, which generates it under root on first use).
    """
    root = Path(root).expanduser()
    if root.exists() and not root.is_dir():
        raise UsageError(f"data.root {root} is a file; set it to a folder")
    if demo is not None:
        if (root / "images").is_dir() or (root / "splits.json").is_file():
            raise UsageError(f"data.root {root} is a dataset, but data=demo generates synthetic images there; "
                             f"train on it with data=folder data.root={root}")
        return [("demo", demo_dataset(root, demo))]
    if datasets:
        folders = [(name, root / check_dataset_name(name)) for name in datasets]
        missing = [name for name, folder in folders if not folder.is_dir()]
        if missing and root.is_dir():
            present = sorted(folder.name for folder in root.iterdir() if (folder / "images").is_dir())
            raise UsageError(f"data.datasets: no {', '.join(missing)} under {root}; the datasets there: "
                             f"{', '.join(present) or 'none'} (data.root, or SKINSEG_DATA, is their folder)")
    else:
        folders = [(root.resolve().name, root)]
    for _, folder in folders:
        check_dataset_folder(folder)
    return folders


def check_dataset_folder(folder: Path) -> None:
    """Raises DataError, naming the setting to fix, if `folder` is not a folder."""
    if not folder.is_dir():
        raise DataError(f"dataset folder {folder} does not exist; set data.root (or the SKINSEG_DATA "
                        "environment variable) to a folder holding images/ and masks/")


def split_samples(
    folders: Sequence[tuple[str, Path]],
    split: str,
    val_fraction: float = 0.1,
    resize_masks: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> list[Sample]:
    """The verified samples of one split of each dataset, in the order given: the one way a split is read.

    Args:
        folders: (name, folder) of each dataset, e.g. from `dataset_folders`.
        split: "train", "val", "test" or "all" (train + val; see `FolderIndex.split`).
        val_fraction, resize_masks, cache_dir: see `FolderIndex`.
    """
    return [sample for name, folder in folders
            for sample in FolderIndex(folder, name=name, val_fraction=val_fraction, resize_masks=resize_masks,
                                      cache_dir=cache_dir).split(split)]


def load_pair(sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    """Reads a verified pair: image uint8 (H,W,3) RGB and mask uint8 (H,W), same size."""
    image = read_image(sample.image)
    mask = read_mask(sample.mask)
    if mask.shape != image.shape[:2]:
        mask = cv2.resize(mask, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    return image, mask


def describe(samples: Sequence[Sample], splits: Sequence[str] = SPLITS) -> dict[str, dict[str, int]]:
    """Counts per dataset and split (of `splits`, which must hold every sample's split), for logs."""
    counts: dict[str, dict[str, int]] = {}
    for sample in samples:
        counts.setdefault(sample.dataset, {split: 0 for split in splits})[sample.split] += 1
    return counts


__all__ = ["FolderIndex", "Sample", "dataset_folders", "describe", "load_pair", "split_samples"]
