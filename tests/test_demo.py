"""Tests of the procedurally generated demo dataset."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from skinseg.data import demo
from skinseg.data.demo import DEMO_VERSION, generate_demo_dataset, render_demo_sample

SMALL = {"num_train": 5, "num_val": 3, "seed": 3, "min_size": 40, "max_size": 72}


def _render(seed: int, index: int, height: int = 48, width: int = 64) -> tuple[np.ndarray, np.ndarray]:
    return render_demo_sample(np.random.default_rng([seed, index]), height, width)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def samples() -> list[tuple[np.ndarray, np.ndarray]]:
    """60 samples of random sizes, as the generator draws them."""
    out = []
    for index in range(60):
        rng = np.random.default_rng([7, index])
        height, width = int(rng.integers(48, 97)), int(rng.integers(48, 97))
        out.append(render_demo_sample(rng, height, width))
    return out


def test_render_is_deterministic() -> None:
    for index in range(4):
        image, mask = _render(0, index)
        again_image, again_mask = _render(0, index)
        assert np.array_equal(image, again_image)
        assert np.array_equal(mask, again_mask)
    assert not np.array_equal(_render(0, 0)[0], _render(1, 0)[0])


@pytest.mark.parametrize(("height", "width"), [(48, 64), (97, 31), (8, 8), (192, 128)])
def test_render_format(height: int, width: int) -> None:
    image, mask = _render(0, 5, height, width)
    assert image.dtype == np.uint8 and image.shape == (height, width, 3)
    assert mask.dtype == np.uint8 and mask.shape == (height, width)
    assert set(np.unique(mask).tolist()) <= {0, 255}


def test_render_rejects_empty_size() -> None:
    with pytest.raises(ValueError):
        _render(0, 0, 0, 10)


def test_mask_statistics(samples: list[tuple[np.ndarray, np.ndarray]]) -> None:
    masks = [mask for _, mask in samples]
    assert all(set(np.unique(mask).tolist()) <= {0, 255} for mask in masks)
    empty = sum(not mask.any() for mask in masks)
    assert 0 < empty < 0.3 * len(masks)
    fractions = [float((mask > 0).mean()) for mask in masks if mask.any()]
    assert 0.05 < np.mean(fractions) < 0.6


def test_skin_colours_differ_from_background(samples: list[tuple[np.ndarray, np.ndarray]]) -> None:
    skin = np.concatenate([image[mask > 0] for image, mask in samples]).astype(np.float64)
    background = np.concatenate([image[mask == 0] for image, mask in samples]).astype(np.float64)
    skin_mean, background_mean = skin.mean(axis=0), background.mean(axis=0)
    assert skin_mean[0] > skin_mean[2] + 20  # skin is red-ish over blue
    red_minus_blue = skin_mean[0] - skin_mean[2], background_mean[0] - background_mean[2]
    assert red_minus_blue[0] > red_minus_blue[1] + 20


def test_generate_layout(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    assert generate_demo_dataset(root, **SMALL) == root
    stems = sorted(p.stem for p in (root / "images").glob("*.png"))
    assert stems == sorted(p.stem for p in (root / "masks").glob("*.png"))
    splits = json.loads((root / "splits.json").read_text())
    assert len(splits["train"]) == SMALL["num_train"] and len(splits["val"]) == SMALL["num_val"]
    assert sorted(splits["train"] + splits["val"]) == stems
    assert splits["train"] == stems[: SMALL["num_train"]]
    marker = json.loads((root / ".complete").read_text())
    assert marker == {**SMALL, "demo_version": DEMO_VERSION}
    assert f"version: {DEMO_VERSION}" in (root / "README.md").read_text()

    sizes = set()
    for stem in stems:
        image = cv2.imread(str(root / "images" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        mask = cv2.imread(str(root / "masks" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert mask.dtype == np.uint8 and mask.shape == image.shape[:2]
        assert set(np.unique(mask).tolist()) <= {0, 255}
        assert all(SMALL["min_size"] <= side <= SMALL["max_size"] for side in mask.shape)
        sizes.add(mask.shape)
    assert len(sizes) > 1
    assert not any(p.name.startswith(".demo.tmp") for p in tmp_path.iterdir())


def test_generated_files_match_renderer(tmp_path: Path) -> None:
    root = generate_demo_dataset(tmp_path / "demo", **SMALL)
    rng = np.random.default_rng([SMALL["seed"], 2])
    height = int(rng.integers(SMALL["min_size"], SMALL["max_size"] + 1))
    width = int(rng.integers(SMALL["min_size"], SMALL["max_size"] + 1))
    image, mask = render_demo_sample(rng, height, width)
    saved = cv2.cvtColor(cv2.imread(str(root / "images" / "demo_00002.png")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(saved, image)
    assert np.array_equal(cv2.imread(str(root / "masks" / "demo_00002.png"), cv2.IMREAD_UNCHANGED), mask)


def test_generate_is_deterministic(tmp_path: Path) -> None:
    first = _files(generate_demo_dataset(tmp_path / "a", **SMALL))
    assert first == _files(generate_demo_dataset(tmp_path / "b", **SMALL))
    other = _files(generate_demo_dataset(tmp_path / "c", **{**SMALL, "seed": SMALL["seed"] + 1}))
    assert first["images/demo_00000.png"] != other["images/demo_00000.png"]


def test_samples_do_not_depend_on_count(tmp_path: Path) -> None:
    few = _files(generate_demo_dataset(tmp_path / "few", **{**SMALL, "num_train": 2, "num_val": 0}))
    many = _files(generate_demo_dataset(tmp_path / "many", **SMALL))
    assert few["images/demo_00001.png"] == many["images/demo_00001.png"]


def test_second_call_keeps_files(tmp_path: Path) -> None:
    root = generate_demo_dataset(tmp_path / "demo", **SMALL)
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    assert generate_demo_dataset(root, **SMALL) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


def test_empty_folder_is_filled(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    root.mkdir()
    generate_demo_dataset(root, **SMALL)
    assert (root / ".complete").is_file()


def test_incomplete_folder_raises(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    (root / "images").mkdir(parents=True)
    (root / "images" / "mine.png").write_bytes(b"user data")
    with pytest.raises(FileExistsError) as error:
        generate_demo_dataset(root, **SMALL)
    assert str(root) in str(error.value)
    assert (root / "images" / "mine.png").read_bytes() == b"user data"


def test_other_parameters_raise(tmp_path: Path) -> None:
    root = generate_demo_dataset(tmp_path / "demo", **SMALL)
    with pytest.raises(FileExistsError) as error:
        generate_demo_dataset(root, **{**SMALL, "seed": SMALL["seed"] + 1})
    assert str(root) in str(error.value)


def test_race_accepts_dataset_published_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "demo"
    write = demo._write_dataset

    def write_then_lose_race(folder: Path, params: dict[str, int]) -> None:
        write(folder, params)
        shutil.copytree(folder, root)  # another process finishes first

    monkeypatch.setattr(demo, "_write_dataset", write_then_lose_race)
    assert generate_demo_dataset(root, **SMALL) == root
    assert (root / ".complete").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]


@pytest.mark.parametrize(
    "overrides", [{"num_train": -1}, {"num_val": -1}, {"min_size": 0}, {"min_size": 80, "max_size": 70}]
)
def test_invalid_arguments(tmp_path: Path, overrides: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        generate_demo_dataset(tmp_path / "demo", **{**SMALL, **overrides})
    assert not (tmp_path / "demo").exists()
