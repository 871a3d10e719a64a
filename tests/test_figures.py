"""skinseg.figures: dataset colour statistics and the model comparison grid."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from skinseg.figures.__main__ import main as figures_main
from skinseg.figures.compare import compare_figure, error_map, magenta_overlay
from skinseg.figures.stats import FIGURES, gaussian_ellipse, method_regions, plane_picture, sample_pixels

from .conftest import exit_2_message


def test_pixels_are_sampled_with_their_mask_labels(folder_dataset):
    sample = sample_pixels([folder_dataset], pixels_per_image=500, workers=2)
    assert sample.images == 10 and len(sample.rgb) == len(sample.skin) == 5000
    # the blob masks cover pi/9 of each image (the ellipse with semi-axes of a third of each side)
    assert abs(sample.skin.mean() - np.pi / 9) < 0.04
    few = sample_pixels([folder_dataset], max_images=3, pixels_per_image=10, workers=1)
    assert few.images == 3 and len(few.rgb) == 30


def test_stats_cli_writes_the_four_figures_and_keeps_them(folder_dataset, tmp_path, capsys):
    out = tmp_path / "figures"
    assert figures_main(["stats", str(folder_dataset), "--out", str(out), "--pixels-per-image", "200"]) == 0
    assert "10 images, 2,000 pixels" in capsys.readouterr().out
    stamps = {name: (out / name).stat().st_mtime_ns for name in FIGURES}
    assert all(Image.open(out / name).size[0] > 500 for name in FIGURES)
    error = exit_2_message(figures_main, ["stats", str(folder_dataset), "--out", str(out)], capsys)
    assert "already exist" in error
    assert stamps == {name: (out / name).stat().st_mtime_ns for name in FIGURES}
    error = exit_2_message(figures_main, ["stats", str(tmp_path / "nowhere"), "--out", str(tmp_path / "other")], capsys)
    assert "expected a dataset folder with images/ and masks/" in error


def test_cbcr_plane_pictures_have_the_stated_luma_inside_and_black_outside():
    regions = method_regions()
    assert set(regions) == {"ycbcr", "ellipse", "diag_ellipse"}
    box = regions["ycbcr"]
    assert box[137, 85] and box[180, 135] and not box[136, 85] and not box[137, 136]  # rows Cr, columns Cb
    picture = plane_picture(box)
    ycrcb = cv2.cvtColor(picture, cv2.COLOR_RGB2YCrCb).astype(int)
    inside = box > 0
    # RGB clipping of the few colours outside the gamut moves them slightly
    luma_error = np.abs(ycrcb[inside][:, 0] - 192)
    cb_error = np.abs(ycrcb[inside][:, 2] - np.tile(np.arange(256), (256, 1))[inside])  # Cb = column
    assert luma_error.max() <= 4 and luma_error.mean() < 1 and cb_error.max() <= 4 and cb_error.mean() < 1
    assert picture[~inside].max() == 0


def test_gaussian_ellipse_holds_the_expected_share_of_points():
    rng = np.random.default_rng(0)
    points = rng.multivariate_normal([110, 150], [[60, -30], [-30, 40]], size=20000)
    outline = gaussian_ellipse(points)
    path = outline.astype(np.float32).reshape(-1, 1, 2)
    inside = np.mean([cv2.pointPolygonTest(path, (float(x), float(y)), False) >= 0 for x, y in points[:4000]])
    assert abs(inside - (1 - np.exp(-2))) < 0.03  # 2σ in two dimensions: 86.5 %


def test_overlay_and_error_map():
    rgb = np.full((4, 4, 3), 200, np.uint8)
    mask = np.zeros((4, 4), np.uint8)
    mask[:2] = 255
    overlay = magenta_overlay(rgb, mask)
    assert (overlay[2:] == rgb[2:]).all() and (overlay[0, 0] == [200, 0, 200]).all()
    truth = np.zeros((4, 4), np.uint8)
    truth[1:3] = 255
    picture, iou = error_map(rgb, mask, truth)
    assert iou == pytest.approx(4 / 12)
    assert (picture[0, 0] == [230, 40, 40]).all() and (picture[2, 0] == [40, 90, 240]).all()
    assert picture[1, 0, 0] == picture[1, 0, 1] == picture[1, 0, 2]  # agreement: dimmed grey


def test_compare_grid_scores_every_model_and_draws_failures(folder_dataset, tmp_path):
    images = sorted((folder_dataset / "images").iterdir())[:2]

    def failing(rgb):
        raise RuntimeError("model crashed")

    out = tmp_path / "plot.png"
    scores = compare_figure(images, {"everything": lambda rgb: np.full(rgb.shape[:2], 255, np.uint8),
                                     "broken": failing}, out, side=64, dpi=50)
    assert Image.open(out).size[0] > 100
    for stem in (path.stem for path in images):
        assert scores[stem]["everything"] == pytest.approx(np.pi / 9, abs=0.05)  # the blob's share of the image
        assert scores[stem]["broken"] == "error: model crashed"


def test_compare_cli_with_classical_methods(folder_dataset, tmp_path, capsys):
    out = tmp_path / "grid.jpg"
    image = folder_dataset / "images" / "img00.png"
    assert figures_main(["compare", str(image), "--models", "ycbcr", "hsv", "--out", str(out), "--side", "64"]) == 0
    assert "img00: ycbcr 0." in capsys.readouterr().out and out.is_file()
    error = exit_2_message(figures_main, ["compare", str(image), "--models", "ycbcr", "--out", str(out)], capsys)
    assert "already exists" in error
    error = exit_2_message(figures_main, ["compare", str(image), "--models", "u3net", "--out", str(tmp_path / "x.jpg")], capsys)
    assert "not a classical method" in error
