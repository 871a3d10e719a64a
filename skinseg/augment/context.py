"""Scale and context in training and validation: people in scenes, with exact masks.

The close-up training sets show skin filling the frame; a model trained on them alone calls
walls and floors skin in photos of people in rooms and streets. The training steps that put
examples into scenes (`scene_crop`, `skin_tone`, `zoom_out`, `person_paste`) are named steps
of `skinseg.augment.pipeline`, built on the operations of `scenes` and `tone`.

`VIEWS` are deterministic versions for validation, built from validation photos only, one
for each kind of miss seen on photos from other sources: darker skin (`dark_tone`),
people far away (`zoom_out`), group photos with many small people (`small_people`), and
skin-coloured walls behind a person (`skin_wall`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from skinseg.augment.scenes import Person, cut_person, paste_people, zoom_out
from skinseg.augment.tone import SKIN_TONES, shift_skin_tone
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
