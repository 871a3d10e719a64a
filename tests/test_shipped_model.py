"""The skin segmenter shipped in the package: loads with no path, segments, and its int8 twin agrees."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from skinseg.export.ship import INT8_FLOAT_TOLERANCE
from skinseg.inference.session import DEFAULT_MODEL_DIR, Session, default_model_path
from skinseg.metrics import score_image
from skinseg.predict import main as predict_main

from .conftest import PUBLIC_DATA

TONES = {"light": (232, 190, 160), "medium": (198, 134, 100), "brown": (141, 85, 54), "dark": (90, 56, 37)}
BACKGROUNDS = {"blue": (60, 90, 140), "grey": (200, 200, 200), "green": (40, 110, 60)}


def portrait(tone: tuple[int, int, int], background: tuple[int, int, int], seed: int = 0,
             ) -> tuple[np.ndarray, np.ndarray]:
    """A generated passport-style picture: a shaded skin-coloured head and neck on a plain, noisy background.

    Returns:
        (256, 256, 3) uint8 RGB image and its (256, 256) uint8 mask (255 = skin).
    """
    side = 256
    mask = np.zeros((side, side), np.uint8)
    cv2.ellipse(mask, (128, 120), (55, 75), 0, 0, 360, 255, -1)
    cv2.rectangle(mask, (105, 180), (151, side), 255, -1)
    columns = np.arange(side, dtype=np.float32)
    shade = 1 - 0.25 * ((columns - 128) / 128) ** 2  # darker towards the sides, as a lit face
    skin = np.asarray(tone, np.float32) * shade[None, :, None]
    image = np.where(mask[..., None] > 0, skin, np.asarray(background, np.float32))
    image += np.random.default_rng(seed).normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def test_shipped_files_match_their_card():
    from skinseg.files import sha256

    card = json.loads((DEFAULT_MODEL_DIR / "unet_skin.json").read_text())
    for name, info in card["files"].items():
        assert sha256(DEFAULT_MODEL_DIR / name) == info["sha256"], f"{name} is not the file its card describes"
    assert "Licence" in (DEFAULT_MODEL_DIR / "MODEL_CARD.md").read_text()


@pytest.mark.parametrize("background", BACKGROUNDS)
def test_session_without_a_path_segments_skin(background):
    """fp32 on drawn heads; int8 agrees with it on photos (below), not on such flat drawings (model card)."""
    session = Session(normalize="none", precision="fp32")
    assert session.size == json.loads((DEFAULT_MODEL_DIR / "unet_skin.json").read_text())["input"]["size"]
    for tone_name, tone in TONES.items():
        image, truth = portrait(tone, BACKGROUNDS[background])
        mask = session.predict(image)
        assert mask.shape == truth.shape and mask.dtype == np.uint8
        assert score_image(mask, truth)["iou50"] > 0.8, f"{tone_name} skin on {background}"


@pytest.mark.skipif(not (PUBLIC_DATA / "ccp").is_dir(), reason="needs the public datasets (../shared/datasets)")
def test_int8_agrees_with_fp32_within_the_shipping_tolerance_on_photos():
    """The first val photos of a close-up set and of the scenes, as `python export.py ship` checks all of them."""
    from skinseg.data.folder import FolderIndex

    fp32, int8 = (Session(default_model_path(precision)) for precision in ("fp32", "int8"))
    differences = []
    for dataset in ("sfa", "ccp"):
        for sample in FolderIndex(PUBLIC_DATA / dataset, name=dataset).split("val")[:4]:
            image = np.asarray(Image.open(sample.image).convert("RGB"))
            differences.append(np.abs(fp32.predict(image).astype(np.float32) - int8.predict(image)) / 255)
    assert np.mean([difference.mean() for difference in differences]) <= INT8_FLOAT_TOLERANCE


def test_predict_cli_needs_only_the_paths(tmp_path):
    image, _ = portrait(TONES["medium"], BACKGROUNDS["grey"])
    Image.fromarray(image).save(tmp_path / "photo.jpg")
    assert predict_main([str(tmp_path / "photo.jpg"), str(tmp_path / "out")]) == 0
    assert predict_main([str(tmp_path / "photo.jpg"), str(tmp_path / "int8"), "--precision", "int8"]) == 0
    for folder in ("out", "int8"):
        mask = np.asarray(Image.open(tmp_path / folder / "photo.png"))
        assert mask.shape == image.shape[:2] and mask.max() > 128


def test_model_card_lists_the_training_sets_not_the_val_views():
    from skinseg.export.ship import model_card_markdown

    card = json.loads((DEFAULT_MODEL_DIR / "unet_skin.json").read_text())
    training = model_card_markdown(card).split("## Training data")[1].split("## Recipe")[0]
    assert "`ccp`" in training and "`negatives`" in training and "view_" not in training
