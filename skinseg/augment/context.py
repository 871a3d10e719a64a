"""Scale and context augmentation of training examples, and the validation views built the same way.

The close-up training sets show skin filling the frame; a model trained on them alone calls
walls and floors skin in photos of people in rooms and streets. `ContextAugment` puts
examples into scenes with exact masks, each step with its own probability per example:

1. `scene_crop` (before the resize, to photos of `scene_datasets`): a random crop of
   10-60 % of the photo's area, so small skin regions grow and some crops have none;
2. `skin_tone` (after the resize): the skin recoloured toward a tone between very light
   and very dark (`skinseg.augment.tone`), shading and texture kept;
3. `zoom_out`: the example shrunk to 15-100 % of its side onto a background photo (a
   training photo of the `backgrounds` dataset, scenes without people);
4. `person_paste`: 1 to `max_people` people cut out of the `people` dataset by their
   silhouettes (`persons/STEM.png`) pasted at 5-40 % of the frame height.

`VIEWS` are deterministic versions for validation, built from validation photos only, one
for each kind of miss seen on photos from other sources: darker skin (`dark_tone`),
people far away (`zoom_out`), group photos with many small people (`small_people`), and
skin-coloured walls behind a person (`skin_wall`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from skinseg.augment.scenes import Person, cut_person, paste_people, scene_crop, zoom_out
from skinseg.augment.tone import SKIN_TONES, SkinToneShift, shift_skin_tone
from skinseg.errors import UsageError
from skinseg.io import read_image, read_mask

VIEWS = ("dark_tone", "zoom_out", "small_people", "skin_wall")
VIEW_PREFIX = "view_"  # a view's dataset name ("view_dark_tone"): reported alone, never pooled with real data

# a person to paste: its photo, skin mask and silhouette (255 = any part of the person) files
PersonFiles = tuple[str, str, str]


def load_person(files: PersonFiles) -> Person:
    """The person of a photo, cut out to its silhouette's box with its skin mask."""
    image, skin, silhouette = files
    return cut_person(read_image(image), read_mask(skin), read_mask(silhouette))


@dataclass
class ContextAugment:
    """The scale and context steps of training, in the order of the module docstring.

    Args:
        zoom_out: probability of shrinking the example onto a background photo.
        person_paste: probability of pasting 1 to `max_people` people.
        scene_crop: probability of a random crop of a `scene_datasets` photo.
        skin_tone: probability of recolouring the skin.
        backgrounds: photo files that are zoom-out canvases (scenes without skin).
        people: files of the people to cut out and paste.
        scene_datasets: names of the datasets whose photos are scenes.
        max_people: most people pasted at once.
    """

    zoom_out: float = 0.0
    person_paste: float = 0.0
    scene_crop: float = 0.0
    skin_tone: float = 0.0
    backgrounds: Sequence[str] = ()
    people: Sequence[PersonFiles] = ()
    scene_datasets: frozenset[str] = frozenset()
    max_people: int = 3
    tone_shift: SkinToneShift = field(default_factory=SkinToneShift)

    def __post_init__(self) -> None:
        for name in ("zoom_out", "person_paste", "scene_crop", "skin_tone"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UsageError(f"data.{name} is a probability in [0, 1], got {value}")
        if self.zoom_out > 0 and not self.backgrounds:
            raise UsageError("data.zoom_out > 0 needs background photos: set data.backgrounds (e.g. negatives)")
        if self.person_paste > 0 and not self.people:
            raise UsageError("data.person_paste > 0 needs people to paste: set data.people (e.g. ccp)")

    @property
    def active(self) -> bool:
        return any((self.zoom_out, self.person_paste, self.scene_crop, self.skin_tone))

    def before_resize(self, image: np.ndarray, mask: np.ndarray, dataset: str,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Step 1 on a full-resolution pair (H,W,3)/(H,W) of dataset `dataset`."""
        if dataset in self.scene_datasets and rng.random() < self.scene_crop:
            return scene_crop(image, mask, rng)
        return image, mask

    def after_resize(self, image: np.ndarray, mask: np.ndarray,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Steps 2-4 on a pair at the network's size (S,S,3)/(S,S)."""
        if rng.random() < self.skin_tone:
            image, mask = self.tone_shift(image, mask, rng)
        if rng.random() < self.zoom_out:
            background = read_image(self.backgrounds[rng.integers(len(self.backgrounds))])
            image, mask = zoom_out(image, mask, background, rng)
        if rng.random() < self.person_paste:
            chosen = rng.choice(len(self.people), size=int(rng.integers(1, self.max_people + 1)))
            image, mask = paste_people(image, mask, [load_person(self.people[i]) for i in chosen], rng)
        return image, mask


def render_view(view: str, index: int, source: tuple[np.ndarray, np.ndarray] | None, backgrounds: Sequence[str],
                people: Sequence[PersonFiles]) -> tuple[np.ndarray, np.ndarray]:
    """The `index`-th image of a validation view (deterministic), at full resolution.

    Args:
        view: one of `VIEWS`.
        index: position in the view (seeds its random choices).
        source: the close-up validation pair (image (H,W,3), mask (H,W)) it starts from
            (dark_tone, zoom_out).
        backgrounds: validation photo files without skin (zoom_out, small_people, skin_wall).
        people: validation people (small_people, skin_wall).

    Returns:
        uint8 (H,W,3) image and (H,W) mask.
    """
    rng = np.random.default_rng(index)
    if view == "dark_tone":
        image, mask = source
        return shift_skin_tone(image, mask, SKIN_TONES[8]), mask  # Monk 9 of 10
    background = read_image(backgrounds[index % len(backgrounds)])
    if view == "zoom_out":
        return zoom_out(*source, background, rng, scale=(0.3, 0.3))
    empty = np.zeros(background.shape[:2], np.uint8)
    if view == "small_people":
        chosen = rng.choice(len(people), size=4)
        return paste_people(background, empty, [load_person(people[i]) for i in chosen], rng, height=(0.1, 0.2))
    if view == "skin_wall":
        # the whole background recoloured to a skin tone, labelled "not skin", behind one person
        wall = shift_skin_tone(background, np.full_like(empty, 255), SKIN_TONES[int(rng.integers(2, 7))])
        return paste_people(wall, empty, [load_person(people[index % len(people)])], rng, height=(0.6, 0.9))
    raise UsageError(f"unknown validation view {view!r}; valid views: {', '.join(VIEWS)}")
