"""The LightningDataModule over one or several folder datasets (or the synthetic demo)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, WeightedRandomSampler, get_worker_info

from skinseg.augment.context import VIEW_PREFIX, VIEWS, PersonFiles, render_view
from skinseg.augment.pipeline import ContextStep, Sources, Step, build_steps, check_sources, probability
from skinseg.augment.scenes import paste_skin
from skinseg.data.folder import (
    FolderIndex,
    Sample,
    check_dataset_name,
    dataset_folders,
    describe,
    load_pair,
    split_samples,
)
from skinseg.data.transforms import build_transform
from skinseg.errors import UsageError
from skinseg.hardware import AUTO, default_loader_workers, default_threads
from skinseg.io import DataError

log = logging.getLogger(__name__)

# the original trainer's: a left-right flip half the time and one of the 26 variants (or none)
DEFAULT_AUGMENT = {"hflip": {"p": 0.5}, "seed26": {"p": 1.0}}


class SkinDataset(Dataset):
    """Verified samples with an albumentations transform.

    Args:
        samples: pairs from one or several `FolderIndex`es.
        transform: callable `transform(image=, mask=) -> {"image", "mask"}` on uint8 arrays.
        dataset_names: names whose position is each sample's `dataset` id.
        steps: the training steps (`skinseg.augment.pipeline.build_steps`): the numpy ones run
            before and after `transform` with the example's own generator; `composite` pastes
            the example's skin onto another (random) example's transformed photo (`paste_skin`),
            the item keeping the pasted example's stem and dataset id. None: plain `transform`.
        sources: the files the context steps draw from.

    Items:
        {"image": uint8 (3,H,W), "mask": uint8 (1,H,W), "dataset": int64 id, "stem": str}.
        Scaling to [0,1] happens on the device, in the LightningModule (4x less to copy).
    """

    def __init__(self, samples: Sequence[Sample], transform, dataset_names: Sequence[str],
                 steps: Sequence[Step] = (), sources: Sources | None = None) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.dataset_ids = {name: index for index, name in enumerate(dataset_names)}
        self.composite = probability(steps, "composite")
        context = [step for step in steps if isinstance(step, ContextStep)]
        # no generator is drawn per example unless a numpy step is on (the others' streams stay put)
        self.context = context if any(step.p > 0 for step in context) else []
        self.sources = sources or Sources()

    def __len__(self) -> int:
        return len(self.samples)

    def _transformed(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        sample = self.samples[index]
        image, mask = load_pair(sample)
        # np.random is seeded per loader worker (seed_worker), so the draws differ by worker
        rng = np.random.default_rng(np.random.randint(2**31)) if self.context else None
        for step in self.context:
            if step.stage == "before_resize":
                image, mask = step(image, mask, sample.dataset, rng, self.sources)
        if self.transform is not None:
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        for step in self.context:
            if step.stage == "after_resize":
                image, mask = step(image, mask, sample.dataset, rng, self.sources)
        return image, mask

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        image, mask = self._transformed(index)
        if self.composite > 0 and len(self.samples) > 1 and np.random.random() < self.composite:
            other = (index + np.random.randint(1, len(self.samples))) % len(self.samples)
            rng = np.random.default_rng(np.random.randint(2**31))
            image, mask = paste_skin(image, mask, *self._transformed(other), rng)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "mask": torch.from_numpy(np.ascontiguousarray(mask))[None],
            "dataset": self.dataset_ids[sample.dataset],
            "stem": sample.stem,
        }


class ViewDataset(Dataset):
    """Validation views (`skinseg.augment.context.VIEWS`) rendered from validation photos, then resized.

    Args:
        items: (view, index, source sample or None) per image.
        transform: the validation transform (resize).
        dataset_ids: view name ("view_<view>") -> dataset id.
        backgrounds: validation photo files without skin.
        people: validation people files.

    Items: as `SkinDataset`'s; the stem is "<view>_<index>".
    """

    def __init__(self, items: Sequence[tuple[str, int, Sample | None]], transform, dataset_ids: dict[str, int],
                 backgrounds: Sequence[str], people: Sequence[PersonFiles]) -> None:
        self.items = list(items)
        self.transform = transform
        self.dataset_ids = dataset_ids
        self.backgrounds, self.people = list(backgrounds), list(people)

    def __len__(self) -> int:
        return len(self.items)

    def render(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The `index`-th view image at full resolution: uint8 (H,W,3) and its (H,W) mask."""
        view, position, source = self.items[index]
        pair = load_pair(source) if source is not None else None
        return render_view(view, position, pair, self.backgrounds, self.people)

    def __getitem__(self, index: int) -> dict:
        view, position, _ = self.items[index]
        image, mask = self.render(index)
        out = self.transform(image=image, mask=mask)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(out["image"].transpose(2, 0, 1))),
            "mask": torch.from_numpy(np.ascontiguousarray(out["mask"]))[None],
            "dataset": self.dataset_ids[VIEW_PREFIX + view],
            "stem": f"{view}_{position}",
        }


def seed_worker(worker_id: int) -> None:
    """Gives each loader worker its own augmentation stream, derived from torch's seed.

    albumentations draws from generators created when the pipeline was built; forked
    workers would otherwise all repeat the same random choices.
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    dataset = get_worker_info().dataset
    # the validation set is the plain val pairs plus the views (a ConcatDataset)
    for part in dataset.datasets if isinstance(dataset, ConcatDataset) else [dataset]:
        part.transform.set_random_seed(seed)


class SkinDataModule(L.LightningDataModule):
    """Train/val/test loaders over folder datasets in the `images/` + `masks/` layout.

    The test loader (`trainer.test`) reads the "test" split of every dataset whose
    splits.json lists one, resized as for validation; training and validation never see it.

    Args:
        root: a dataset folder, or the parent of the folders named in `datasets`.
        datasets: names of dataset folders under `root` to use together; None uses
            `root` itself as the only dataset.
        demo: parameters of the synthetic demo dataset (`seed`, `num_train`, `num_val`,
            `min_size`, `max_size`); when given, it is generated under `root` on first
            use and used instead of real data.
        input_size: side of the square network input (the model's input spec, `model.input_size`).
        resize_mode: "squash" (stretch, as the original) or "letterbox" (pad).
        batch_size: training batch size; `val_batch_size` defaults to it.
        num_workers: loader processes (0 loads in the main process); "auto":
            `skinseg.hardware.default_loader_workers()` for the cores this process may use.
        val_fraction: validation share for folders without splits.json.
        resize_masks: accept masks of another size than their image (resized to it).
        augment: the training augmentation, step name -> its parameters, e.g.
            {"hflip": {"p": 0.5}, "seed26": {"sepia": "rgb"}, "zoom_out": {"p": 0.3}}; the steps
            and their order: `skinseg.augment.pipeline`. None: `DEFAULT_AUGMENT` (the
            original's flips and 26 variants); {}: none.
        backgrounds: name of the dataset (under `root`) whose photos, without skin, are the
            zoom-out canvases (its train split) and the views' backgrounds (its val split).
        people: name of the dataset (under `root`) with `persons/STEM.png` silhouettes whose
            people are pasted (train split) and shown in the views (val split).
        scene_datasets: names of the datasets whose photos are scenes (`scene_crop`).
        val_views: extra validation sets among `VIEWS`, reported as `val/view_<name>/...`.
        val_view_images: images per validation view.
        weights: per-dataset sampling weights, e.g. {"negatives": 3.0}: each training image
            of a dataset is drawn `weight` times as often as one of weight 1 (datasets not
            named: 1; 0 leaves a dataset out of training but in validation). An epoch still
            draws as many images as the training split holds, with replacement. None: every
            image once per epoch, shuffled.
        train_on_val: datasets whose val split is trained on too (and not validated on): a
            final model trained on everything, scored on a dataset's test split (lfw_faces).
        cache_dir: where the verified dataset indexes are kept.
        pin_memory: pin host memory (helps GPU training).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        datasets: Sequence[str] | None = None,
        demo: dict | None = None,
        input_size: int = 320,
        resize_mode: str = "squash",
        batch_size: int = 8,
        val_batch_size: int | None = None,
        num_workers: int | str = AUTO,
        val_fraction: float = 0.1,
        resize_masks: bool = False,
        augment: dict[str, dict | None] | None = None,
        backgrounds: str | None = None,
        people: str | None = None,
        scene_datasets: Sequence[str] = (),
        val_views: Sequence[str] = (),
        val_view_images: int = 100,
        weights: dict[str, float] | None = None,
        train_on_val: Sequence[str] = (),
        cache_dir: str | os.PathLike | None = None,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        if batch_size < 1:
            raise UsageError(f"data.batch_size must be >= 1, got {batch_size}")
        if not 0 <= val_fraction < 1:
            raise UsageError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
        if num_workers == AUTO:
            self.num_workers = default_loader_workers()
            self.num_workers_reason = f"auto, for {default_threads()} cores"
        elif isinstance(num_workers, int) and not isinstance(num_workers, bool) and num_workers >= 0:
            self.num_workers, self.num_workers_reason = num_workers, "set explicitly"
        else:
            raise UsageError(f"data.num_workers must be 'auto' or an integer >= 0, got {num_workers!r}")
        self.steps = build_steps(DEFAULT_AUGMENT if augment is None else augment)
        check_sources(self.steps, {"backgrounds": backgrounds is not None, "people": people is not None})
        unknown_views = sorted(set(val_views) - set(VIEWS))
        if unknown_views:
            raise UsageError(f"data.val_views: unknown {unknown_views}; valid views: {', '.join(VIEWS)}")
        if val_view_images < 1:
            raise UsageError(f"data.val_view_images must be >= 1, got {val_view_images}")
        for setting, names in (("datasets", datasets or ()), ("backgrounds", [backgrounds] if backgrounds else ()),
                               ("people", [people] if people else ()), ("scene_datasets", scene_datasets),
                               ("train_on_val", train_on_val)):
            for name in names:
                check_dataset_name(name, f"data.{setting}")
        if weights is not None:
            bad = {name: w for name, w in weights.items() if not isinstance(w, (int, float)) or w < 0}
            if bad:
                raise UsageError(f"data.weights must map dataset names to numbers >= 0; got {weights}")
        self.train_transform = build_transform(input_size, resize_mode, self.steps)
        self.val_transform = build_transform(input_size, resize_mode)
        self._folders: list[tuple[str, Path]] | None = None
        self.indexes: list[FolderIndex] = []
        self.train_set: SkinDataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: SkinDataset | None = None
        self.sample_weights: list[float] | None = None

    def folders(self) -> list[tuple[str, Path]]:
        """(name, folder) of every dataset this module reads (generates the demo on first use)."""
        if self._folders is None:
            self._folders = dataset_folders(self.hparams.root, self.hparams.datasets, self.hparams.demo)
        return self._folders

    @property
    def dataset_names(self) -> list[str]:
        """Names of the datasets and then the validation views ("view_<view>"), in the order of
        the `dataset` ids in batches."""
        return [name for name, _ in self.folders()] + [VIEW_PREFIX + view for view in self.hparams.val_views]

    def _split_of(self, name: str | None, split: str, setting: str) -> list[Sample]:
        """One split of a dataset named by a setting (one of ours, else the folder `root/name`)."""
        if name is None:
            return []
        index = next((index for index in self.indexes if index.name == name), None)
        folder = Path(self.hparams.root).expanduser() / name if index is None else index.root
        samples = index.split(split) if index else split_samples([(name, folder)], split,
                                                                 cache_dir=self.hparams.cache_dir)
        if not samples:
            raise DataError(f"data.{setting}={name}: no {split} images in {folder}")
        return samples

    def _people(self, split: str) -> list[PersonFiles]:
        """The people of `data.people`'s split: (photo, skin mask, silhouette) files."""
        people = []
        for sample in self._split_of(self.hparams.people, split, "people"):
            silhouette = Path(sample.mask).parent.parent / "persons" / f"{sample.stem}.png"
            if not silhouette.is_file():
                raise DataError(f"data.people={self.hparams.people}: {silhouette} is missing; a people dataset "
                                "holds persons/STEM.png (255 = any part of the person) beside images/ and masks/")
            people.append((sample.image, sample.mask, str(silhouette)))
        return people

    def _view_set(self, val: Sequence[Sample]) -> ViewDataset | None:
        """The validation views, from close-up val photos (datasets that are neither scenes nor backgrounds)."""
        views = list(self.hparams.val_views)
        if not views:
            return None
        needs = {"dark_tone": (), "zoom_out": ("backgrounds",), "small_people": ("backgrounds", "people"),
                 "skin_wall": ("backgrounds", "people")}
        examples = {"backgrounds": "negatives", "people": "ccp"}
        for view in views:
            for setting in needs[view]:
                if self.hparams[setting] is None:
                    raise UsageError(f"data.val_views={view} needs data.{setting} (e.g. {examples[setting]})")
        others = {*self.hparams.scene_datasets, self.hparams.backgrounds, self.hparams.people}
        closeups = [sample for sample in val if sample.dataset not in others]
        count = self.hparams.val_view_images
        step = max(1, len(closeups) // count)
        items = []
        for view in views:
            sources = closeups[::step][:count] if view in ("dark_tone", "zoom_out") else [None] * count
            if not sources:
                raise UsageError(f"data.val_views={view} needs close-up validation images; none among "
                                 f"{self.dataset_names}")
            items += [(view, position, source) for position, source in enumerate(sources)]
        backgrounds = [sample.image for sample in self._split_of(self.hparams.backgrounds, "val", "backgrounds")]
        people = self._people("val") if self.hparams.people else []
        ids = {name: index for index, name in enumerate(self.dataset_names)}
        return ViewDataset(items, self.val_transform, ids, backgrounds, people)

    def prepare_data(self) -> None:
        self.folders()

    def setup(self, stage: str | None = None) -> None:
        """Scans the datasets; builds the test set for stage "test", else the train and val sets."""
        if not self.indexes:
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
        if stage == "test":
            self._setup_test()
        elif self.train_set is None:
            self._setup_fit()

    def _setup_test(self) -> None:
        """The test split of every dataset that has one.

        Raises:
            DataError: no dataset lists a "test" split.
        """
        if self.test_set is not None:
            return
        test = [s for index in self.indexes for s in index.split("test")]
        if not test:
            where = ", ".join(str(folder / "splits.json") for _, folder in self.folders())
            raise DataError(f'no test images: none of {where} lists a "test" split; add a "test" list of '
                            "held-out stems to a splits.json, or run without the test loop (test=false)")
        counts = {name: n["test"] for name, n in describe(test, ["test"]).items()}
        without = [index.name for index in self.indexes if index.name not in counts]
        log.info("test pairs: %s%s", counts, f" (no test split: {', '.join(without)})" if without else "")
        self.test_set = SkinDataset(test, self.val_transform, self.dataset_names)

    def _setup_fit(self) -> None:
        """The train and val sets (with the views), and the training sampling weights."""
        trained_val = set(self.hparams.train_on_val)
        unknown = sorted(trained_val - {index.name for index in self.indexes})
        if unknown:
            raise DataError(f"data.train_on_val: {unknown} are not among the datasets {self.dataset_names}")
        train: list[Sample] = [s for index in self.indexes
                               for s in index.split("all" if index.name in trained_val else "train")]
        val: list[Sample] = [s for index in self.indexes if index.name not in trained_val for s in index.split("val")]
        counts = describe(train + val, ["train", "val"])
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
        hparams = self.hparams
        sources = Sources(
            backgrounds=[s.image for s in self._split_of(hparams.backgrounds, "train", "backgrounds")]
            if probability(self.steps, "zoom_out") else (),
            people=self._people("train") if probability(self.steps, "person_paste") else (),
            scene_datasets=frozenset(hparams.scene_datasets),
        )
        self.train_set = SkinDataset(train, self.train_transform, self.dataset_names, self.steps, sources)
        views = self._view_set(val)
        plain_val = SkinDataset(val, self.val_transform, self.dataset_names)
        self.val_set = ConcatDataset([plain_val, views]) if views is not None else plain_val
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
            raise UsageError(f"data.weights names {unknown}, which are not among the datasets {self.dataset_names}")
        per_sample = [float(weights.get(sample.dataset, 1.0)) for sample in train]
        total = sum(per_sample)
        if total == 0:
            raise UsageError(f"data.weights {weights} leave no training image with a weight above 0")
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

    def test_dataloader(self) -> DataLoader:
        size = self.hparams.val_batch_size or self.hparams.batch_size
        return self._loader(self.test_set, size, train=False)
