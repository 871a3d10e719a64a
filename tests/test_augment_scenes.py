"""Scale-and-context augmentations on synthetic arrays: sizes, positions and exact masks."""

from __future__ import annotations

import numpy as np
import pytest

from skinseg.augment.scenes import Person, cut_person, fill_canvas, paste_people, scene_crop, zoom_out

GREY = (90, 90, 90)
SKIN = (220, 170, 140)
CLOTHES = (20, 40, 160)
OUTSIDE = (255, 0, 255)  # person-crop pixels outside the silhouette: must never show at full strength
SCENE = (10, 200, 30)


def solid(height: int, width: int, colour: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.uint8), (height, width, 3)).copy()


def is_colour(image: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.all(image == colour, axis=-1)


def box_of(where: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the True pixels."""
    rows, cols = np.nonzero(where)
    return rows.min(), cols.min(), rows.max() + 1 - rows.min(), cols.max() + 1 - cols.min()


@pytest.fixture
def example() -> tuple[np.ndarray, np.ndarray]:
    """A 60x80 close-up: uniform skin colour, a skin rectangle in the mask."""
    mask = np.zeros((60, 80), np.uint8)
    mask[10:50, 20:70] = 255
    return solid(60, 80, SKIN), mask


@pytest.fixture
def person() -> Person:
    """40x20: a narrow skin head (rows 0-11) on a full-width body in clothes (rows 12-39)."""
    image = solid(40, 20, OUTSIDE)
    skin = np.zeros((40, 20), np.uint8)
    silhouette = np.zeros((40, 20), np.uint8)
    image[:12, 5:15], skin[:12, 5:15], silhouette[:12, 5:15] = SKIN, 255, 255
    image[12:], silhouette[12:] = CLOTHES, 255
    return Person(image, skin, silhouette)


def block(height: int, width: int, colour: tuple[int, int, int]) -> Person:
    """A person that is a uniform rectangle of `colour`, all silhouette, no skin."""
    full = np.full((height, width), 255, np.uint8)
    return Person(solid(height, width, colour), np.zeros_like(full), full)


@pytest.mark.parametrize("size", [(48, 64), (300, 100), (7, 500)])
def test_fill_canvas_has_the_canvas_size_and_the_background_colour(size):
    for background in (solid(120, 90, SCENE), solid(20, 30, SCENE)):  # shrinking and enlarging
        canvas = fill_canvas(background, *size, np.random.default_rng(0))
        assert canvas.shape == (*size, 3) and canvas.dtype == np.uint8
        assert is_colour(canvas, SCENE).all()


def test_zoom_out_keeps_sizes_and_shrinks_the_mask_area(example):
    image, mask = example
    out_image, out_mask = zoom_out(image, mask, solid(100, 100, SCENE), np.random.default_rng(1), (0.5, 0.5))
    assert out_image.shape == image.shape and out_mask.shape == mask.shape
    assert out_image.dtype == out_mask.dtype == np.uint8
    assert out_mask.sum(dtype=np.int64) == pytest.approx(mask.sum(dtype=np.int64) / 4, rel=0.1)


@pytest.mark.parametrize("seed", range(5))
def test_zoom_out_shows_the_background_without_skin_outside_the_example(example, seed):
    image, mask = example
    out_image, out_mask = zoom_out(image, mask, solid(70, 50, SCENE), np.random.default_rng(seed), (0.5, 0.5))
    pasted = ~is_colour(out_image, SCENE)
    top, left, height, width = box_of(pasted)
    assert (height, width) == (30, 40)
    assert pasted[top : top + height, left : left + width].all()
    assert not out_mask[~pasted].any()
    assert out_mask[top + 5 : top + 25, left + 10 : left + 35].min() == 255  # the shrunk skin rectangle


def test_zoom_out_at_scale_one_returns_the_example():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    mask = rng.integers(0, 256, (30, 40), dtype=np.uint8)
    out_image, out_mask = zoom_out(image, mask, solid(50, 50, SCENE), rng, (1.0, 1.0))
    np.testing.assert_array_equal(out_image, image)
    np.testing.assert_array_equal(out_mask, mask)


def test_augmentations_are_deterministic_for_a_seed(example, person):
    image, mask = example
    background = np.random.default_rng(9).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    runs = [
        (
            zoom_out(image, mask, background, np.random.default_rng(seed)),
            paste_people(image, mask, [person, person], np.random.default_rng(seed)),
            scene_crop(background, background[..., 0], np.random.default_rng(seed)),
        )
        for seed in (3, 3, 4)
    ]
    first, again, other = (np.concatenate([a.ravel() for pair in run for a in pair]) for run in runs)
    np.testing.assert_array_equal(first, again)
    assert first.shape != other.shape or not np.array_equal(first, other)


def test_cut_person_crops_to_the_silhouette_box_plus_margin():
    image = np.random.default_rng(5).integers(0, 256, (50, 60, 3), dtype=np.uint8)
    skin = np.zeros((50, 60), np.uint8)
    silhouette = np.zeros((50, 60), np.uint8)
    silhouette[10:30, 20:35] = 255
    silhouette[12, 40] = 100  # below 128: not part of the person
    skin[12:15, 25:30] = 255
    cut = cut_person(image, skin, silhouette)
    np.testing.assert_array_equal(cut.image, image[8:32, 18:37])
    np.testing.assert_array_equal(cut.skin, skin[8:32, 18:37])
    np.testing.assert_array_equal(cut.silhouette, silhouette[8:32, 18:37])
    assert cut_person(image, skin, silhouette, margin=0).image.shape == (20, 15, 3)

    corner = np.zeros_like(silhouette)
    corner[:5, 55:] = 255
    assert cut_person(image, skin, corner, margin=3).silhouette.shape == (8, 8)  # clipped to the photo


def test_cut_person_rejects_an_empty_silhouette():
    with pytest.raises(ValueError, match="silhouette is empty"):
        cut_person(solid(10, 10, GREY), np.zeros((10, 10), np.uint8), np.full((10, 10), 127, np.uint8))


@pytest.mark.parametrize("seed", range(4))
def test_pasted_clothes_hide_the_skin_behind_and_the_person_brings_its_own(person, seed):
    frame, frame_skin = solid(100, 120, GREY), np.full((100, 120), 255, np.uint8)
    image, mask = paste_people(frame, frame_skin, [person], np.random.default_rng(seed), height=(0.5, 0.5))
    top, left, height, width = box_of(~is_colour(image, GREY))
    assert abs(height - 50) <= 2 and abs(width - 25) <= 2

    clothes, skin, background = is_colour(image, CLOTHES), is_colour(image, SKIN), is_colour(image, GREY)
    assert clothes.sum() > 500 and skin.sum() > 50
    assert not mask[clothes].any()
    assert (mask[skin] == 255).all()
    assert (mask[background] == 255).all()
    assert background[top : top + height, left : left + width].any()  # beside the head, inside the box
    assert not is_colour(image, OUTSIDE).any()


@pytest.mark.parametrize("seed", range(20))
def test_people_are_pasted_whole_inside_the_frame(seed):
    image, mask = paste_people(
        solid(200, 200, GREY),
        np.zeros((200, 200), np.uint8),
        [block(40, 20, SKIN)],
        np.random.default_rng(seed),
    )
    assert image.shape == (200, 200, 3) and mask.shape == (200, 200)
    _, _, height, width = box_of(is_colour(image, SKIN))
    assert 0.05 * 200 - 1 <= height <= 0.4 * 200 + 1
    assert abs(width - height / 2) <= 1  # not clipped by an edge: the person's aspect is kept


def test_a_person_wider_than_the_frame_is_scaled_to_fit():
    image, _ = paste_people(
        solid(50, 40, GREY),
        np.zeros((50, 40), np.uint8),
        [block(10, 100, SKIN)],
        np.random.default_rng(0),
        (0.5, 0.5),
    )
    _, left, height, width = box_of(is_colour(image, SKIN))
    assert (left, width, height) == (0, 40, 4)


def test_several_people_appear_and_later_ones_cover_earlier_ones():
    people = [block(40, 20, SKIN), block(40, 20, CLOTHES)]
    for seed in range(3):
        image, _ = paste_people(
            solid(200, 200, GREY), np.zeros((200, 200), np.uint8), people, np.random.default_rng(seed)
        )
        assert is_colour(image, SKIN).any() and is_colour(image, CLOTHES).any()
    # Frame-sized people land on the same pixels: only the last one shows.
    image, _ = paste_people(
        solid(40, 20, GREY), np.zeros((40, 20), np.uint8), people, np.random.default_rng(0), (1, 1)
    )
    assert is_colour(image, CLOTHES).all()


@pytest.mark.parametrize("seed", range(20))
def test_scene_crop_keeps_the_aspect_and_copies_the_source_box(seed):
    rows, cols = np.mgrid[:120, :160]
    # Each pixel names its place: (row, column, 0).
    image = np.stack([rows, cols, np.zeros_like(rows)], axis=-1).astype(np.uint8)
    mask = ((rows * 7 + cols) % 256).astype(np.uint8)
    crop, crop_mask = scene_crop(image, mask, np.random.default_rng(seed), scale=(0.1, 0.6))
    height, width = crop_mask.shape
    assert 0.1 * 0.97 <= height * width / (120 * 160) <= 0.6 * 1.03
    assert abs(width - height * 160 / 120) <= 1
    top, left = crop[0, 0, :2]
    np.testing.assert_array_equal(crop, image[top : top + height, left : left + width])
    np.testing.assert_array_equal(crop_mask, mask[top : top + height, left : left + width])


def test_scene_crops_sometimes_miss_a_small_skin_region():
    mask = np.zeros((120, 160), np.uint8)
    mask[20:24, 30:34] = 255
    image = solid(120, 160, GREY)
    has_skin = [scene_crop(image, mask, np.random.default_rng(seed))[1].any() for seed in range(50)]
    assert 0 < sum(has_skin) < 50


@pytest.mark.parametrize("bad", [(0.0, 0.5), (0.6, 0.5), (0.5, 1.2), (-0.1, 0.2)])
def test_bad_ranges_name_the_argument(example, person, bad):
    image, mask = example
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"scale must be \(min, max\) with 0 < min <= max <= 1"):
        zoom_out(image, mask, image, rng, scale=bad)
    with pytest.raises(ValueError, match=r"height must be \(min, max\) with 0 < min <= max <= 1"):
        paste_people(image, mask, [person], rng, height=bad)
    with pytest.raises(ValueError, match=r"scale must be \(min, max\)"):
        scene_crop(image, mask, rng, scale=bad)


def test_inputs_are_not_modified(example, person):
    image, mask = example
    background = solid(90, 70, SCENE)
    inputs = [image, mask, background, person.image, person.skin, person.silhouette]
    before = [array.copy() for array in inputs]
    rng = np.random.default_rng(6)
    fill_canvas(background, 60, 80, rng)
    zoom_out(image, mask, background, rng, (1.0, 1.0))
    zoom_out(image, mask, background, rng)
    paste_people(image, mask, [person], rng)
    scene_crop(image, mask, rng)
    cut = cut_person(person.image, person.skin, person.silhouette)
    cut.image[:] = 0
    for array, copy in zip(inputs, before, strict=True):
        np.testing.assert_array_equal(array, copy)
