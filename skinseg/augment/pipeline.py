"""Training augmentation as named steps: each step is one class here and one entry of `data.augment`.

`data.augment` maps a step's name to its parameters, e.g. `{hflip: {p: 0.5}, seed26: {sepia: rgb}}`
(`python train.py data.augment.zoom_out.p=0.3`; a step left out, or null, is off). `build_steps`
turns it into every registered step, each with its parameters (p 0 where not given), and a
training example goes through them by stage, in this order whatever the config's order:

1. `before_resize`: numpy steps on the full-resolution pair (a random crop of scene photos);
2. `albumentations`: the resize to the network's size, or a step replacing it (a random resized
   crop), then geometric and colour steps (flips, quarter turns, the 26 variants);
3. `after_resize`: numpy steps at the network's size (skin tone, zoom-out onto a background,
   people pasted);
4. `composite`: the example's skin pasted onto another training example's photo.

Within a stage, steps run in the order they are registered in this module. A numpy step draws
from the example's generator even when it does not apply, so that switching one step on or off
leaves the others' draws where they were.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import cv2
import numpy as np

from skinseg.augment.context import PersonFiles, load_person
from skinseg.augment.scenes import paste_people, scene_crop, zoom_out
from skinseg.augment.tone import SkinToneShift
from skinseg.augment.transforms import A, seed26
from skinseg.errors import UsageError
from skinseg.io import read_image
from skinseg.registry import Registry

STAGES = ("before_resize", "albumentations", "after_resize", "composite")
AUGMENTATIONS = Registry("augmentation", names_classes=True)  # name -> step class, in registration order
augmentation = AUGMENTATIONS.register  # class decorator: a step available as `data.augment.NAME`


@dataclass
class Sources:
    """What the context steps draw from, found by the datamodule in the data config's datasets.

    Attributes:
        backgrounds: photo files without skin (`data.backgrounds`' train split): zoom-out canvases.
        people: (photo, skin mask, silhouette) files of `data.people`'s train split, to paste.
        scene_datasets: names of the datasets whose photos are scenes (`data.scene_datasets`).
    """

    backgrounds: Sequence[str] = ()
    people: Sequence[PersonFiles] = ()
    scene_datasets: frozenset[str] = frozenset()


@dataclass
class Step:
    """A training step with probability `p` per example (0: off)."""

    name: ClassVar[str]
    stage: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()  # the `Sources` it reads when on
    p: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.p, bool) or not isinstance(self.p, (int, float)) or not 0.0 <= self.p <= 1.0:
            raise UsageError(f"data.augment.{self.name}.p is a probability in [0, 1], got {self.p}")


class AlbumentationsStep(Step):
    """A step of the albumentations pipeline at the network's size."""

    stage = "albumentations"

    def extend(self, steps: list[A.BasicTransform], size: int) -> list[A.BasicTransform]:
        """The pipeline so far (starting with the resize to `size`) with this step added when on."""
        raise NotImplementedError


class ContextStep(Step):
    """A numpy step on (image (H,W,3), mask (H,W)) uint8 with the example's generator."""

    def __call__(self, image: np.ndarray, mask: np.ndarray, dataset: str, rng: np.random.Generator,
                 sources: Sources) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


@augmentation("scene_crop")
@dataclass
class SceneCrop(ContextStep):
    """A random crop of 10-60 % of a scene photo's area (`scene_datasets` only), so skin grows."""

    stage = "before_resize"

    def __call__(self, image, mask, dataset, rng, sources):
        if dataset in sources.scene_datasets and rng.random() < self.p:
            return scene_crop(image, mask, rng)
        return image, mask


@augmentation("crop")
@dataclass
class Crop(AlbumentationsStep):
    """A random resized crop (area share `scale`, aspect 3:4 to 4:3) instead of the plain resize."""

    scale: Sequence[float] = (0.25, 1.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        low, high = self.scale
        if not 0 < low <= high <= 1:
            raise UsageError(f"data.augment.crop.scale must satisfy 0 < min <= max <= 1, got {list(self.scale)}")

    def extend(self, steps, size):
        if self.p == 0:
            return steps
        cropper = A.RandomResizedCrop(
            (size, size), scale=tuple(self.scale), ratio=(3 / 4, 4 / 3), interpolation=cv2.INTER_LINEAR,
            mask_interpolation=cv2.INTER_LINEAR, area_for_downscale="image_mask", p=self.p,
        )
        return [A.OneOf([cropper, A.Compose(steps, p=1.0 - self.p)], p=1.0)]


@augmentation("hflip")
@dataclass
class HorizontalFlip(AlbumentationsStep):
    """A left-right flip."""

    def extend(self, steps, size):
        return [*steps, A.HorizontalFlip(p=self.p)] if self.p > 0 else steps


@augmentation("vflip")
@dataclass
class VerticalFlip(AlbumentationsStep):
    """An upside-down flip."""

    def extend(self, steps, size):
        return [*steps, A.VerticalFlip(p=self.p)] if self.p > 0 else steps


class QuarterTurn(A.DualTransform):
    """Rotates image and mask by 90° or 270° (the original trainer's rotated_l/_r), exactly."""

    def get_params(self) -> dict:
        return {"turns": self.py_random.choice((1, 3))}

    def apply(self, img: np.ndarray, turns: int = 1, **params) -> np.ndarray:
        return np.ascontiguousarray(np.rot90(img, turns))

    def apply_to_mask(self, mask: np.ndarray, turns: int = 1, **params) -> np.ndarray:
        return np.ascontiguousarray(np.rot90(mask, turns))


@augmentation("rotate90")
@dataclass
class Rotate90(AlbumentationsStep):
    """A quarter turn, 90° or 270° equally likely."""

    def extend(self, steps, size):
        return [*steps, QuarterTurn(p=self.p)] if self.p > 0 else steps


@augmentation("seed26")
@dataclass
class Seed26(AlbumentationsStep):
    """One of the original's 26 colour/occlusion variants or the unchanged image (1/27 each).

    sepia: "rgb" (correct) or "bgr" (the original's bluish sepia); lattice_reference: None draws
    lattices in pixels as the original, a size scales them with the input.
    """

    sepia: str = "rgb"
    lattice_reference: int | None = None

    def extend(self, steps, size):
        return [*steps, seed26(self.sepia, self.lattice_reference, self.p)] if self.p > 0 else steps


@augmentation("skin_tone")
@dataclass
class SkinTone(ContextStep):
    """The skin recoloured toward a tone between very light and very dark (`skinseg.augment.tone`)."""

    stage = "after_resize"
    shift: SkinToneShift = field(default_factory=SkinToneShift, init=False, repr=False)

    def __call__(self, image, mask, dataset, rng, sources):
        if rng.random() < self.p:
            return self.shift(image, mask, rng)
        return image, mask


@augmentation("zoom_out")
@dataclass
class ZoomOut(ContextStep):
    """The example shrunk to 15-100 % of its side onto a background photo (a scene without people)."""

    stage = "after_resize"
    needs = ("backgrounds",)

    def __call__(self, image, mask, dataset, rng, sources):
        if rng.random() < self.p:
            background = read_image(sources.backgrounds[rng.integers(len(sources.backgrounds))])
            return zoom_out(image, mask, background, rng)
        return image, mask


@augmentation("person_paste")
@dataclass
class PersonPaste(ContextStep):
    """1 to `max_people` people cut out by their silhouettes, pasted at 5-40 % of the frame height."""

    stage = "after_resize"
    needs = ("people",)
    max_people: int = 3

    def __call__(self, image, mask, dataset, rng, sources):
        if rng.random() < self.p:
            chosen = rng.choice(len(sources.people), size=int(rng.integers(1, self.max_people + 1)))
            return paste_people(image, mask, [load_person(sources.people[i]) for i in chosen], rng)
        return image, mask


@augmentation("composite")
@dataclass
class Composite(Step):
    """The example's skin pasted onto another training example's transformed photo (`paste_skin`)."""

    stage = "composite"


SOURCE_SETTINGS = {"backgrounds": "data.backgrounds (e.g. negatives)", "people": "data.people (e.g. ccp)"}


def build_steps(settings: Mapping[str, Mapping[str, Any] | None] | None) -> list[Step]:
    """Every registered step, by stage then registration order, with `settings`' parameters.

    Args:
        settings: step name -> its parameters (`data.augment`); a step not named, or None, is off.

    Raises:
        UsageError: an unknown step or parameter (the message lists the valid ones), or a value
            outside its rule.
    """
    if settings is not None and not isinstance(settings, Mapping):
        raise UsageError(f"data.augment={settings!r}: it maps step names to their parameters, e.g. "
                         "data.augment.seed26.p=0 turns the 26 variants off, data.augment.zoom_out.p=0.3 one step on")
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(AUGMENTATIONS))
    if unknown:
        raise UsageError(f"data.augment: unknown {unknown}; the augmentations: {', '.join(AUGMENTATIONS)}")
    steps = []
    for name, step_class in AUGMENTATIONS.items():
        parameters = dict(settings.get(name) or {})
        allowed = [item.name for item in fields(step_class) if item.init]
        wrong = sorted(set(parameters) - set(allowed))
        if wrong:
            raise UsageError(f"data.augment.{name}: unknown parameter {wrong}; {name} takes {', '.join(allowed)}")
        steps.append(step_class(**parameters))
    return sorted(steps, key=lambda step: STAGES.index(step.stage))


def check_sources(steps: Sequence[Step], available: Mapping[str, bool]) -> None:
    """Refuses a step that is on without the sources it draws from.

    Raises:
        UsageError: e.g. "data.augment.zoom_out.p > 0 needs backgrounds: set data.backgrounds (e.g. negatives)".
    """
    for step in steps:
        for source in step.needs:
            if step.p > 0 and not available.get(source):
                raise UsageError(f"data.augment.{step.name}.p > 0 needs {source}: set {SOURCE_SETTINGS[source]}")


def probability(steps: Sequence[Step], name: str) -> float:
    """The probability of the step called `name` (0 if none)."""
    return next((step.p for step in steps if step.name == name), 0.0)
