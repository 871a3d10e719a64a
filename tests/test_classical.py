"""Colour-rule and face-adaptive methods on tiny images of known colours."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from skinseg.classical import METHODS, create_method, postprocess
from skinseg.classical.colour import ellipse_intervals, interval_mask
from skinseg.classical.face import FaceAdaptiveHSV

from .conftest import public_dataset


def from_ycrcb(y: int, cr: int, cb: int, size=(8, 8)) -> np.ndarray:
    patch = np.zeros(size + (3,), np.uint8)
    patch[:] = (y, cr, cb)
    return cv2.cvtColor(patch, cv2.COLOR_YCrCb2RGB)


def from_hsv(h: int, s: int, v: int, size=(8, 8)) -> np.ndarray:
    patch = np.zeros(size + (3,), np.uint8)
    patch[:] = (h, s, v)
    return cv2.cvtColor(patch, cv2.COLOR_HSV2RGB)


def raw(name: str, image: np.ndarray, **kwargs) -> np.ndarray:
    return create_method(name, postprocess=False, **kwargs).predict(image)


def test_registry_and_unknown_names():
    assert {"hsv", "ycbcr", "hsv_ycbcr", "face_hsv", "ellipse", "diag_ellipse", "mediapipe"} <= set(METHODS)
    with pytest.raises(KeyError, match="valid names: .*ellipse"):
        create_method("rgb_rule")


def test_hsv_box():
    assert raw("hsv", from_hsv(10, 120, 200)).min() == 255
    assert raw("hsv", from_hsv(60, 120, 200)).max() == 0  # green
    assert raw("hsv", from_hsv(10, 20, 200)).max() == 0  # too grey
    assert raw("hsv", from_hsv(10, 120, 50)).max() == 0  # too dark
    assert raw("hsv", from_hsv(60, 120, 200), hue=(50, 70)).min() == 255
    with pytest.raises(ValueError, match="hue bounds"):
        create_method("hsv", hue=(30, 10))


def test_ycbcr_box_ignores_luma():
    for luma in (20, 128, 240):
        assert raw("ycbcr", from_ycrcb(luma, 150, 110)).min() == 255
    assert raw("ycbcr", from_ycrcb(128, 130, 110)).max() == 0  # Cr below 137
    assert raw("ycbcr", from_ycrcb(128, 150, 140)).max() == 0  # Cb above 135


def test_hsv_and_ycbcr_is_the_intersection():
    image = np.concatenate([from_hsv(10, 120, 200), from_ycrcb(128, 150, 110), from_hsv(60, 120, 200)], axis=1)
    both = raw("hsv_ycbcr", image)
    np.testing.assert_array_equal(both, np.minimum(raw("hsv", image), raw("ycbcr", image)))


def test_axis_aligned_ellipse():
    assert raw("ellipse", from_ycrcb(128, 152, 109)).min() == 255  # the centre
    assert raw("ellipse", from_ycrcb(128, 152, 109 + 16)).max() == 0  # beyond the Cb semi-axis
    assert raw("ellipse", from_ycrcb(128, 152 + 14, 109)).min() == 255  # inside the Cr semi-axis


def test_interval_tables_match_the_per_pixel_ellipse():
    cb0, cr0, a, b, theta = 119.3, 155.6, 37.1, 14.8, 148.6
    lows, highs = ellipse_intervals(cb0, cr0, a, b, theta)
    cb, cr = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8))
    fast = interval_mask(cr, cb, lows, highs) > 0
    t = np.radians(theta)
    x, y = cb.astype(float) - cb0, cr.astype(float) - cr0
    direct = ((np.cos(t) * x + np.sin(t) * y) / a) ** 2 + ((-np.sin(t) * x + np.cos(t) * y) / b) ** 2 <= 1
    np.testing.assert_array_equal(fast, direct)


def test_diagonal_ellipse_is_rotated():
    method = create_method("diag_ellipse", postprocess=False)
    plane = method.plane()
    rows, columns = np.nonzero(plane)
    assert plane.max() == 192 and abs(np.corrcoef(rows, columns)[0, 1]) > 0.3  # tilted, not axis-aligned
    assert raw("diag_ellipse", from_ycrcb(128, 156, 119)).min() == 255


def test_postprocess_removes_specks_and_blurs():
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 10:30] = 255
    mask[2, 2] = 255  # a speck
    out = postprocess(mask)
    assert out[2, 2] == 0 and out[20, 20] == 255
    assert 0 < out[10, 20] < 255 or 0 < out[9, 20] < 255  # soft edge
    np.testing.assert_array_equal(postprocess(mask, kernel_size=1, blur_size=1), mask)


def test_methods_return_probabilities_of_the_input_size():
    image = np.random.default_rng(0).integers(0, 256, (33, 47, 3), dtype=np.uint8)
    for name in ("hsv", "ycbcr", "hsv_ycbcr", "ellipse", "diag_ellipse", "face_hsv"):
        probability = create_method(name)(image)
        assert probability.shape == (33, 47) and probability.dtype == np.float32
        assert 0.0 <= probability.min() and probability.max() <= 1.0
    with pytest.raises(ValueError, match="RGB uint8"):
        create_method("hsv")(image.astype(np.float32))


def test_face_range_uses_the_face_box_and_the_clamps():
    hsv = np.zeros((100, 100, 3), np.uint8)
    hsv[:, :50] = (120, 10, 10)  # left half: not the face
    hsv[20:60, 50:90] = (8, 100, 150)  # the face box (x=50, y=20, w=40, h=40), uniform
    lower, upper = FaceAdaptiveHSV().face_range(hsv, (50, 20, 40, 40))
    np.testing.assert_array_equal(lower, [8, 100, 150])  # std 0: the mean itself
    np.testing.assert_array_equal(upper, [8, 100, 150])
    hsv[20:60, 50:90] = (30, 10, 20)
    lower, upper = FaceAdaptiveHSV().face_range(hsv, (50, 20, 40, 40))
    np.testing.assert_array_equal(lower, [0, 20, 60])  # H 30 not in [0, 10): 0; S >= 20; V >= 60
    np.testing.assert_array_equal(upper, [30, 10, 20])


def test_face_method_without_a_face_falls_back_to_hsv():
    image = np.concatenate([from_hsv(10, 120, 200, (40, 40)), from_hsv(60, 120, 200, (40, 40))], axis=1)
    method = FaceAdaptiveHSV(postprocess=False)
    assert method.detect_face(image) is None
    np.testing.assert_array_equal(method.predict(image), raw("hsv", image))


def test_face_method_on_a_real_face():
    from skinseg.data import read_image, read_mask

    root = public_dataset("sfa")
    stem = sorted(p.stem for p in (root / "images").iterdir())[0]
    image = read_image(next((root / "images").glob(f"{stem}.*")))
    truth = read_mask(root / "masks" / f"{stem}.png") > 127
    method = FaceAdaptiveHSV()
    assert method.detect_face(image) is not None
    predicted = method.predict(image) > 127
    assert (predicted & truth).sum() / max(1, (predicted | truth).sum()) > 0.3


def test_mediapipe_on_a_real_face_when_installed():
    from skinseg.classical.mediapipe import MethodUnavailable, mediapipe_available
    from skinseg.data import read_image

    root = public_dataset("sfa")
    image = read_image(sorted((root / "images").iterdir())[0])
    method = create_method("mediapipe")
    if not mediapipe_available():
        with pytest.raises(MethodUnavailable, match="pip install"):
            method.predict(image)
        return
    mask = method.predict(image)
    assert mask.shape == image.shape[:2] and 0.05 < (mask > 127).mean() < 0.95
