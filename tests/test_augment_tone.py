"""Skin-tone shift: the skin reaches the target tone, keeps its shading, and nothing else changes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from skinseg.augment.tone import SKIN_TONES, SkinToneShift, shift_skin_tone, tone_lab

LIGHTEST, DARKEST = SKIN_TONES[0], SKIN_TONES[-1]


@pytest.fixture(scope="module")
def skin_mask() -> np.ndarray:
    mask = np.zeros((48, 64), np.uint8)
    cv2.ellipse(mask, (32, 24), (24, 18), 0, 0, 360, 255, -1)
    return mask


@pytest.fixture(scope="module")
def photo(skin_mask: np.ndarray) -> np.ndarray:
    """A light skin patch shaded left to right, with noise, on a blue background."""
    rng = np.random.default_rng(0)
    shade = np.linspace(0.7, 1.0, 64, dtype=np.float32)[None, :, None]
    skin = np.array([232, 190, 165], np.float32) * shade + rng.normal(0, 4, (48, 64, 3))
    image = np.broadcast_to(np.array([40, 70, 200], np.float32), (48, 64, 3)).copy()
    image[skin_mask > 0] = skin[skin_mask > 0]
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def skin_mean_l(image: np.ndarray, mask: np.ndarray) -> float:
    return float(lab(image)[mask == 255, 0].mean())


def test_skin_tones_are_the_ten_monk_swatches_light_to_dark():
    assert len(SKIN_TONES) == 10
    assert SKIN_TONES[0] == (0xF6, 0xED, 0xE4) and SKIN_TONES[-1] == (0x29, 0x24, 0x20)
    assert tone_lab(LIGHTEST)[0] > 90 and tone_lab(DARKEST)[0] < 20


def test_tone_lab_of_white_and_black():
    assert tone_lab((255, 255, 255)) == pytest.approx((100.0, 0.0, 0.0), abs=0.5)
    assert tone_lab((0, 0, 0)) == pytest.approx((0.0, 0.0, 0.0), abs=0.5)


@pytest.mark.parametrize("target", [DARKEST, LIGHTEST, SKIN_TONES[5]], ids=["darkest", "lightest", "mst6"])
def test_skin_mean_reaches_the_target_and_shading_is_kept(photo, skin_mask, target):
    out = shift_skin_tone(photo, skin_mask, target, strength=1.0)
    before, after = lab(photo)[skin_mask == 255], lab(out)[skin_mask == 255]
    delta_e = np.linalg.norm(after.mean(axis=0) - np.array(tone_lab(target)))
    assert delta_e < 6, f"mean skin Lab {after.mean(axis=0)} is {delta_e:.1f} from the target"
    assert np.corrcoef(before[:, 0], after[:, 0])[0, 1] > 0.9
    assert after[:, 0].std() > 0


def test_dark_target_compresses_shading_but_keeps_it(photo, skin_mask):
    out = shift_skin_tone(photo, skin_mask, DARKEST)
    before, after = lab(photo)[skin_mask == 255, 0], lab(out)[skin_mask == 255, 0]
    assert 0.3 * before.std() < after.std() < 0.8 * before.std()


def test_background_and_inputs_are_untouched(photo, skin_mask):
    image, mask = photo.copy(), skin_mask.copy()
    out = shift_skin_tone(image, mask, DARKEST)
    assert out is not image
    np.testing.assert_array_equal(image, photo)
    np.testing.assert_array_equal(mask, skin_mask)
    np.testing.assert_array_equal(out[skin_mask == 0], photo[skin_mask == 0])
    assert np.abs(out[skin_mask == 255].astype(int) - photo[skin_mask == 255]).mean() > 50

    shifted, returned_mask = SkinToneShift()(image, mask, np.random.default_rng(1))
    assert returned_mask is not mask
    np.testing.assert_array_equal(returned_mask, skin_mask)
    np.testing.assert_array_equal(shifted[skin_mask == 0], photo[skin_mask == 0])
    np.testing.assert_array_equal(image, photo)


def test_soft_edge_moves_half_as_far():
    image = np.full((16, 16, 3), (225, 185, 160), np.uint8)
    mask = np.full((16, 16), 255, np.uint8)
    mask[:, :4] = 128
    mask[:, -2:] = 0
    out = shift_skin_tone(image, mask, DARKEST).astype(np.float32)
    moved = np.linalg.norm(out - image, axis=-1)
    half, full = moved[mask == 128].mean(), moved[mask == 255].mean()
    assert full > 100
    assert half / full == pytest.approx(128 / 255, abs=0.03)
    assert not moved[mask == 0].any()


@pytest.mark.parametrize("fill", [0, 127])
def test_mask_without_skin_returns_an_unchanged_copy(photo, fill):
    out = shift_skin_tone(photo, np.full(photo.shape[:2], fill, np.uint8), DARKEST)
    assert out is not photo
    np.testing.assert_array_equal(out, photo)


def test_zero_strength_changes_nothing_beyond_rounding(photo, skin_mask):
    out = shift_skin_tone(photo, skin_mask, DARKEST, strength=0.0)
    assert np.abs(out.astype(int) - photo).max() <= 1


def test_random_shift_covers_light_to_dark_and_is_seeded(photo, skin_mask):
    def draws(seed: int) -> list[np.ndarray]:
        shift, rng = SkinToneShift(), np.random.default_rng(seed)
        return [shift(photo, skin_mask, rng)[0] for _ in range(50)]

    first = draws(7)
    lightness = [skin_mean_l(image, skin_mask) for image in first]
    assert max(lightness) - min(lightness) > 40
    assert len({round(value, 1) for value in lightness}) > 40  # interpolated, not only 10 swatches
    for a, b in zip(first, draws(7), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, draws(8), strict=True))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"tones": ()}, "tones"),
        ({"tones": [(10, 20)]}, "tones"),
        ({"tones": [(10, 20, 300)]}, "tones"),
        ({"strength": (0.5, 1.5)}, "strength"),
        ({"strength": (-0.1, 0.5)}, "strength"),
        ({"strength": (0.9, 0.5)}, "strength"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SkinToneShift(**kwargs)


def test_shift_skin_tone_rejects_bad_inputs(photo, skin_mask):
    with pytest.raises(ValueError, match="strength"):
        shift_skin_tone(photo, skin_mask, DARKEST, strength=1.5)
    with pytest.raises(ValueError, match="target_rgb"):
        shift_skin_tone(photo, skin_mask, (1, 2))
    with pytest.raises(ValueError, match="mask"):
        shift_skin_tone(photo, skin_mask[:10], DARKEST)
