"""The LightningDataModule over one or several folder datasets (or the synthetic demo)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler, get_worker_info

from skinseg.data.folder import FolderIndex, Sample, dataset_folders, describe, load_pair
from skinseg.data.io import DataError
from skinseg.data.transforms import build_transform, check_probability
from skinseg.hardware import AUTO, default_loader_workers, default_threads

log = logging.getLogger(__name__)


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


class SkinDataset(Dataset):
    """Verified samples with an albumentations transform.

    Args:
        samples: pairs from one or several `FolderIndex`es.
        transform: callable `transform(image=, mask=) -> {"image", "mask"}` on uint8 arrays.
        dataset_names: names whose position is each sample's `dataset` id.
        composite: probability that an example's skin is pasted onto another (random)
            example's transformed photo (`paste_skin`); the item keeps the pasted
            example's stem and dataset id.

    Items:
        {"image": uint8 (3,H,W), "mask": uint8 (1,H,W), "dataset": int64 id, "stem": str}.
        Scaling to [0,1] happens on the device, in the LightningModule (4x less to copy).
    """

    def __init__(self, samples: Sequence[Sample], transform, dataset_names: Sequence[str],
                 composite: float = 0.0) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.dataset_ids = {name: index for index, name in enumerate(dataset_names)}
        self.composite = composite

    def __len__(self) -> int:
        return len(self.samples)

    def _transformed(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, mask = load_pair(self.samples[index])
        if self.transform is None:
            return image, mask
        out = self.transform(image=image, mask=mask)
        return out["image"], out["mask"]

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        image, mask = self._transformed(index)
        if self.composite > 0 and len(self.samples) > 1 and np.random.random() < self.composite:
            other = (index + np.random.randint(1, len(self.samples))) % len(self.samples)
            # np.random is seeded per loader worker (seed_worker), so the draws differ by worker
            rng = np.random.default_rng(np.random.randint(2**31))
            image, mask = paste_skin(image, mask, *self._transformed(other), rng)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "mask": torch.from_numpy(np.ascontiguousarray(mask))[None],
            "dataset": self.dataset_ids[sample.dataset],
            "stem": sample.stem,
        }


def seed_worker(worker_id: int) -> None:
    """Gives each loader worker its own augmentation stream, derived from torch's seed.

    albumentations draws from generators created when the pipeline was built; forked
    workers would otherwise all repeat the same random choices.
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    info = get_worker_info()
    info.dataset.transform.set_random_seed(seed)


class SkinDataModule(L.LightningDataModule):
    """Train/val loaders over folder datasets in the `images/` + `masks/` layout.

    Args:
        root: a dataset folder, or the parent of the folders named in `datasets`.
        datasets: names of dataset folders under `root` to use together; None uses
            `root` itself as the only dataset.
        demo: parameters of the synthetic demo dataset (`seed`, `num_train`, `num_val`,
            `min_size`, `max_size`); when given, it is generated under `root` on first
            use and used instead of real data.
        image_size: side of the square network input.
        resize_mode: "squash" (stretch, as the original) or "letterbox" (pad).
        batch_size: training batch size; `val_batch_size` defaults to it.
        num_workers: loader processes (0 loads in the main process); "auto":
            `skinseg.hardware.default_loader_workers()` for the cores this process may use.
        val_fraction: validation share for folders without splits.json.
        resize_masks: accept masks of another size than their image (resized to it).
        hflip: horizontal flip probability in training.
        vflip: vertical flip probability in training.
        rotate90: probability of a 90° or 270° turn in training.
        crop: probability of a random resized crop (instead of the resize) in training.
        crop_scale: (min, max) share of the image area a random crop covers.
        composite: probability, in training, of pasting the example's skin onto another
            training example's photo (see `paste_skin`); 0 turns it off.
        weights: per-dataset sampling weights, e.g. {"negatives": 3.0}: each training image
            of a dataset is drawn `weight` times as often as one of weight 1 (datasets not
            named: 1; 0 leaves a dataset out of training but in validation). An epoch still
            draws as many images as the training split holds, with replacement. None: every
            image once per epoch, shuffled.
        augment: "seed26" (one of the original's 26 colour/occlusion variants or none,
            per example and epoch) or "none".
        sepia: "rgb" (correct) or "bgr" (the original's bluish) sepia in seed26.
        lattice_reference: None draws seed26's lattices in pixels (the original); a size
            scales them with the input.
        cache_dir: where the verified dataset indexes are kept.
        pin_memory: pin host memory (helps GPU training).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        datasets: Sequence[str] | None = None,
        demo: dict | None = None,
        image_size: int = 320,
        resize_mode: str = "squash",
        batch_size: int = 8,
        val_batch_size: int | None = None,
        num_workers: int | str = AUTO,
        val_fraction: float = 0.1,
        resize_masks: bool = False,
        hflip: float = 0.5,
        vflip: float = 0.0,
        rotate90: float = 0.0,
        crop: float = 0.0,
        crop_scale: Sequence[float] = (0.25, 1.0),
        composite: float = 0.0,
        weights: dict[str, float] | None = None,
        augment: str = "seed26",
        sepia: str = "rgb",
        lattice_reference: int | None = None,
        cache_dir: str | os.PathLike | None = None,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        if num_workers == AUTO:
            self.num_workers = default_loader_workers()
            self.num_workers_reason = f"auto, for {default_threads()} cores"
        elif isinstance(num_workers, int) and not isinstance(num_workers, bool) and num_workers >= 0:
            self.num_workers, self.num_workers_reason = num_workers, "set explicitly"
        else:
            raise ValueError(f"data.num_workers must be 'auto' or an integer >= 0, got {num_workers!r}")
        check_probability("composite", composite)
        if weights is not None:
            bad = {name: w for name, w in weights.items() if not isinstance(w, (int, float)) or w < 0}
            if bad:
                raise ValueError(f"data.weights must map dataset names to numbers >= 0; got {weights}")
        self.train_transform = build_transform(
            image_size,
            resize_mode,
            train=True,
            hflip=hflip,
            vflip=vflip,
            rotate90=rotate90,
            crop=crop,
            crop_scale=crop_scale,
            augment=augment,
            sepia=sepia,
            lattice_reference=lattice_reference,
        )
        self.val_transform = build_transform(image_size, resize_mode, False)
        self._folders: list[tuple[str, Path]] | None = None
        self.indexes: list[FolderIndex] = []
        self.train_set: SkinDataset | None = None
        self.val_set: SkinDataset | None = None
        self.sample_weights: list[float] | None = None

    def folders(self) -> list[tuple[str, Path]]:
        """(name, folder) of every dataset this module reads (generates the demo on first use)."""
        if self._folders is None:
            self._folders = dataset_folders(self.hparams.root, self.hparams.datasets, self.hparams.demo)
        return self._folders

    @property
    def dataset_names(self) -> list[str]:
        """Names of the datasets, in the order of the `dataset` ids in batches."""
        return [name for name, _ in self.folders()]

    def prepare_data(self) -> None:
        self.folders()

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.indexes = [
            FolderIndex(
                folder,
                name=name,
                val_fraction=self.hparams.val_fraction,
                resize_masks=self.hparams.resize_masks,
                cache_dir=self.hparams.cache_dir,
            )
            for name, folder in self.folders()
        ]
        train: list[Sample] = [s for index in self.indexes for s in index.split("train")]
        val: list[Sample] = [s for index in self.indexes for s in index.split("val")]
        counts = describe(train + val)
        where = ", ".join(str(folder) for _, folder in self.folders())
        if not train:
            raise DataError(f"no training images in {where}; check splits.json or data.val_fraction")
        if not val:
            raise DataError(
                f"no validation images in {where}; add a 'val' list to splits.json or set "
                "data.val_fraction > 0"
            )
        log.info("datasets (train/val pairs): %s", counts)
        self.train_transform.set_random_seed(torch.initial_seed() % 2**32)
        self.train_set = SkinDataset(train, self.train_transform, self.dataset_names, self.hparams.composite)
        self.val_set = SkinDataset(val, self.val_transform, self.dataset_names)
        self.sample_weights = self._sample_weights(train)

    def _sample_weights(self, train: Sequence[Sample]) -> list[float] | None:
        """Each training sample's draw weight from `weights` (None: plain shuffling); logs the shares.

        Raises:
            ValueError: `weights` names a dataset this module does not read, or leaves no
                training image with a weight above 0.
        """
        weights = self.hparams.weights
        if weights is None:
            return None
        unknown = sorted(set(weights) - set(self.dataset_names))
        if unknown:
            raise ValueError(f"data.weights names {unknown}, which are not among the datasets {self.dataset_names}")
        per_sample = [float(weights.get(sample.dataset, 1.0)) for sample in train]
        total = sum(per_sample)
        if total == 0:
            raise ValueError(f"data.weights {weights} leave no training image with a weight above 0")
        shares = {name: sum(w for w, s in zip(per_sample, train) if s.dataset == name) / total
                  for name in self.dataset_names}
        log.info("sampling shares per epoch: %s", ", ".join(f"{name} {share:.1%}" for name, share in shares.items()))
        return per_sample

    def _loader(self, dataset: SkinDataset, batch_size: int, train: bool) -> DataLoader:
        workers = self.num_workers
        sampler = None
        if train and self.sample_weights is not None:
            sampler = WeightedRandomSampler(self.sample_weights, num_samples=len(dataset), replacement=True)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=train and sampler is None,
            sampler=sampler,
            drop_last=train and len(dataset) > batch_size,
            num_workers=workers,
            pin_memory=self.hparams.pin_memory,
            persistent_workers=workers > 0,
            worker_init_fn=seed_worker if workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.hparams.batch_size, train=True)

    def val_dataloader(self) -> DataLoader:
        size = self.hparams.val_batch_size or self.hparams.batch_size
        return self._loader(self.val_set, size, train=False)
