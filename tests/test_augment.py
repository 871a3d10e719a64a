"""The 26 colour/occlusion variants: each does what it says and nothing else."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from skinseg.augment import materialise as offline
from skinseg.augment import ops
from skinseg.augment import transforms as variants
from skinseg.data import FolderIndex
from skinseg.data.transforms import build_transform

from .conftest import write_pair


@pytest.fixture(scope="module")
def colourful() -> np.ndarray:
    """A smooth, saturated image (HSV round trips are exact enough on smooth colours)."""
    yy, xx = np.mgrid[:48, :64]
    hsv = np.stack([(xx * 179 // 63), 120 + yy * 2, 120 + yy * 2], axis=-1).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


@pytest.fixture(scope="module")
def blob_mask() -> np.ndarray:
    mask = np.zeros((48, 64), np.uint8)
    cv2.ellipse(mask, (32, 24), (22, 16), 0, 0, 360, 255, -1)
    return mask


def hsv(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.int16)


def test_there_are_26_named_variants_in_six_families():
    assert len(variants.VARIANTS) == len(set(variants.VARIANTS)) == 26
    prefixes = [name.rstrip("0123456789_") for name in variants.VARIANTS]
    assert [prefixes.count(p) for p in ("hue", "desat", "sat", "sepia")] == [6, 3, 2, 8]
    assert sum(name.startswith("contrast") for name in variants.VARIANTS) == 5
    assert variants.VARIANTS[-2:] == ("lattice_full", "lattice_partial")


def test_hue_rotation_keeps_saturation_and_value(colourful):
    before, after = hsv(colourful), hsv(ops.rotate_hue(colourful, 60))
    assert np.abs(after[..., 1:] - before[..., 1:]).mean() < 1.5
    hue_shift = (after[..., 0] - before[..., 0]) % 180
    assert np.median(hue_shift) == 30  # 60° in OpenCV's 2° units


def test_six_hue_steps_return_the_start(colourful):
    image = colourful
    for _ in range(6):
        image = ops.rotate_hue(image, 60)
    assert np.abs(image.astype(int) - colourful).mean() < 2.0


def test_desaturation_to_zero_is_grey(colourful):
    grey = ops.scale_saturation(colourful, 0.0)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    half = hsv(ops.scale_saturation(colourful, 0.5))[..., 1]
    assert np.abs(half - hsv(colourful)[..., 1] * 0.5).max() <= 2
    boosted = hsv(ops.scale_saturation(colourful, 1.5))[..., 1]
    assert boosted.max() <= 255 and boosted.mean() > hsv(colourful)[..., 1].mean() * 1.3


def test_contrast_brightness_formula(colourful):
    out = ops.contrast_brightness(colourful, 1.5, 5)
    expected = np.clip(np.rint(colourful * 1.5 + 5), 0, 255)
    assert np.abs(out.astype(int) - expected).max() <= 1


def test_sepia_matrices():
    np.testing.assert_allclose(ops.sepia_matrix(0.0), np.eye(3), atol=1e-7)
    np.testing.assert_allclose(ops.sepia_matrix(1.75)[0], [-0.062, 1.346, 0.331], atol=1e-3)
    assert ops.sepia_matrix(0.0, original_bug=True)[2, 0] == pytest.approx(-0.077)
    assert ops.sepia_matrix(1.0, original_bug=True)[2, 0] == pytest.approx(0.272)


def test_sepia_identity_warm_and_bluish(colourful):
    np.testing.assert_array_equal(ops.sepia(colourful, 0.0), colourful)
    grey = np.full((4, 4, 3), 100, np.uint8)
    warm = ops.sepia(grey, 1.0)[0, 0].astype(int)
    bluish = ops.sepia(grey, 1.0, variant="bgr")[0, 0].astype(int)
    assert warm[0] > warm[1] > warm[2]  # red > green > blue
    assert bluish[2] > bluish[1] > bluish[0]  # the original's swapped channels
    with pytest.raises(ValueError, match="sepia variant"):
        ops.sepia(grey, 1.0, variant="lab")


@pytest.mark.parametrize("name", [n for n in variants.VARIANTS if not n.startswith("lattice")])
def test_colour_variants_leave_the_mask_unchanged(name, colourful, blob_mask):
    image, mask = variants.apply_variant(name, colourful, blob_mask, seed=0)
    np.testing.assert_array_equal(mask, blob_mask)
    assert image.shape == colourful.shape and image.dtype == np.uint8


@pytest.mark.parametrize("name", ["lattice_full", "lattice_partial"])
def test_lattice_lies_on_skin_only_and_leaves_the_mask(name, blob_mask):
    image = np.full((48, 64, 3), 200, np.uint8)
    out_image, out_mask = variants.apply_variant(name, image, blob_mask, seed=3)
    changed = (out_image != image).any(axis=-1)
    assert changed.any()
    assert (blob_mask[changed] > 0).all(), "lines only where the mask is skin"
    removed = out_mask < blob_mask
    np.testing.assert_array_equal(changed, removed)  # what is drawn is taken out of the mask
    assert (out_mask <= blob_mask).all()
    if name == "lattice_partial":
        assert not changed[: 48 // 4].any()  # nothing above the first possible start row


def test_variants_are_deterministic_for_a_seed(blob_mask):
    image = np.full((48, 64, 3), 180, np.uint8)
    first = variants.apply_variant("lattice_full", image, blob_mask, seed=7)
    again = variants.apply_variant("lattice_full", image, blob_mask, seed=7)
    other = variants.apply_variant("lattice_full", image, blob_mask, seed=8)
    np.testing.assert_array_equal(first[1], again[1])
    assert (first[1] != other[1]).any()
    with pytest.raises(KeyError, match="valid names"):
        variants.apply_variant("posterize", image, blob_mask, seed=0)


def test_lattice_can_scale_with_the_image():
    def cells(side: int, reference: int | None) -> int:
        """Number of lattice cells on an all-skin image of side x side."""
        transform = variants.LatticeOcclusion(reference_size=reference)
        transform.set_random_seed(0)
        mask = np.full((side, side), 255, np.uint8)
        out = transform(image=np.zeros((side, side, 3), np.uint8), mask=mask)["mask"]
        count, _, stats, _ = cv2.connectedComponentsWithStats((out >= 128).astype(np.uint8), connectivity=4)
        return int((stats[1:, cv2.CC_STAT_AREA] > 10).sum())

    # in pixels (the original): twice the side, about four times the cells
    assert cells(256, None) == pytest.approx(4 * cells(128, None), rel=0.35)
    # scaled with the image: the same lattice at any size
    assert cells(256, 128) == pytest.approx(cells(128, 128), rel=0.35)


def test_seed26_samples_many_variants_online(colourful, blob_mask):
    from skinseg.augment.pipeline import build_steps

    transform = build_transform(48, steps=build_steps({"seed26": {"p": 1.0}}))
    transform.set_random_seed(1)
    outputs = {transform(image=colourful, mask=blob_mask)["image"].tobytes() for _ in range(80)}
    assert len(outputs) > 15
    unchanged = build_transform(48, steps=build_steps({"seed26": {"p": 0.0}}))
    assert len({unchanged(image=colourful, mask=blob_mask)["image"].tobytes() for _ in range(5)}) == 1


def test_geometric_options(colourful, blob_mask):
    from skinseg.augment.pipeline import build_steps

    transform = build_transform(32, steps=build_steps({"rotate90": {"p": 1.0}, "crop": {"p": 1.0, "scale": (0.3, 0.6)}}))
    out = transform(image=colourful, mask=blob_mask)
    assert out["image"].shape == (32, 32, 3) and out["mask"].shape == (32, 32)
    with pytest.raises(ValueError, match="probability"):
        build_steps({"rotate90": {"p": 2.0}})
    with pytest.raises(ValueError, match="0 < min <= max <= 1"):
        build_steps({"crop": {"p": 0.5, "scale": (0.6, 0.3)}})


def test_quarter_turns_are_exact():
    from skinseg.augment.pipeline import QuarterTurn

    image = np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3)
    turn = QuarterTurn(p=1.0)
    turn.set_random_seed(0)
    out = turn(image=image, mask=image[..., 0])["image"]
    assert any(np.array_equal(out, np.rot90(image, k)) for k in (1, 3))


def test_materialise_writes_26_per_pair_and_resumes(tmp_path):
    source = tmp_path / "src"
    for index in range(3):
        write_pair(source, f"p{index}", size=(30, 40), seed=index)
    (source / "splits.json").write_text(json.dumps({"train": ["p0", "p1", "p2"], "val": []}))
    destination = tmp_path / "dst"
    report = offline.materialise(source, destination, workers=2, progress=False)
    assert (report.written, report.skipped, report.failed) == (78, 0, {})
    outputs = sorted(p.name for p in (destination / "images").glob("*.png"))
    assert len(outputs) == 78 and "p0__hue060.png" in outputs and "p2__lattice_partial.png" in outputs
    assert sorted(p.name for p in (destination / "masks").glob("*.png")) == outputs
    assert len(json.loads((destination / "splits.json").read_text())["train"]) == 78
    assert len(FolderIndex(destination).split("train")) == 78  # a folder dataset like any other
    stamps = {p: p.stat().st_mtime_ns for p in destination.rglob("*.png")}
    again = offline.materialise(source, destination, workers=1, progress=False)
    assert (again.written, again.skipped) == (0, 78)
    assert {p: p.stat().st_mtime_ns for p in destination.rglob("*.png")} == stamps
    assert sorted(p.name for p in (source / "images").iterdir()) == ["p0.png", "p1.png", "p2.png"]


def test_materialise_skips_corrupt_pairs_and_val_images(tmp_path):
    source = tmp_path / "src"
    for index in range(3):
        write_pair(source, f"p{index}", seed=index)
    (source / "images" / "p1.png").write_bytes(b"broken")
    (source / "splits.json").write_text(json.dumps({"train": ["p0", "p1"], "val": ["p2"]}))
    report = offline.materialise(source, tmp_path / "dst", workers=1, progress=False)
    assert report.written == 26 and list(report.failed) == ["p1"] and "p1.png" in report.failed["p1"]
    assert not list((tmp_path / "dst" / "images").glob("p2__*"))
    for inside in (source, source / "variants"):
        with pytest.raises(ValueError, match="is inside the source folder"):
            offline.materialise(source, inside, progress=False)
    assert not (source / "variants").exists()


def test_materialise_refuses_a_dataset_without_splits_and_resumes_its_own_output(tmp_path):
    source, destination = tmp_path / "src", tmp_path / "dst"
    write_pair(source, "p0", seed=0)
    write_pair(destination, "own", seed=1)  # a dataset of its own: every image in a hashed split
    before = sorted(path.name for path in destination.rglob("*"))
    with pytest.raises(ValueError, match="holds 1 images of its own .*own.png.* no splits.json"):
        offline.materialise(source, destination, workers=1, progress=False)
    assert sorted(path.name for path in destination.rglob("*")) == before
    (destination / "splits.json").write_text(json.dumps({"train": [], "val": ["own"]}))
    offline.materialise(source, destination, workers=1, progress=False)
    assert json.loads((destination / "splits.json").read_text())["val"] == ["own"]
    resumed = tmp_path / "resumed"  # an interrupted run's variants, before its splits.json
    offline.materialise(source, resumed, workers=1, progress=False)
    (resumed / "splits.json").unlink()
    offline.materialise(source, resumed, workers=1, progress=False)
    assert len(json.loads((resumed / "splits.json").read_text())["train"]) == 26


def test_materialise_never_augments_test_pairs_and_keeps_a_test_split(tmp_path, folder_dataset):
    """Neither --include-val nor a destination with a test split moves test pairs into training."""
    source = tmp_path / "src"
    for index in range(3):
        write_pair(source, f"p{index}", size=(20, 24), seed=index)
    (source / "splits.json").write_text(json.dumps({"train": ["p0"], "val": ["p1"], "test": ["p2"]}))
    stems = [f"img{i:02d}" for i in range(10)]
    before = {"train": stems[:6], "val": stems[6:8], "test": stems[8:]}
    (folder_dataset / "splits.json").write_text(json.dumps(before))
    offline.materialise(source, folder_dataset, workers=1, include_val=True, progress=False)
    after = json.loads((folder_dataset / "splits.json").read_text())
    assert not list((folder_dataset / "images").glob("p2__*"))
    assert after["test"] == before["test"] and after["val"] == before["val"]
    assert len(after["train"]) == 6 + 2 * 26 and not set(after["train"]) & set(before["test"])
    assert [sample.stem for sample in FolderIndex(folder_dataset).split("test")] == stems[8:]


def test_materialise_into_an_existing_dataset_keeps_its_files_and_splits(tmp_path, folder_dataset):
    """Writing the variants into a dataset merges them into its splits; none of its pairs is lost."""
    source = tmp_path / "src"
    write_pair(source, "only", size=(30, 40))
    before = json.loads((folder_dataset / "splits.json").read_text())
    files = {path: path.read_bytes() for path in folder_dataset.rglob("*.png")}
    offline.materialise(source, folder_dataset, workers=1, progress=False)
    after = json.loads((folder_dataset / "splits.json").read_text())
    assert after["val"] == before["val"] and set(before["train"]) <= set(after["train"])
    assert len(after["train"]) == len(before["train"]) + 26
    assert all(path.read_bytes() == content for path, content in files.items())
    index = FolderIndex(folder_dataset)
    assert len(index.split("val")) == 2 and len(index.split("train")) == 8 + 26


def test_cli_and_gallery(tmp_path, capsys):
    source = tmp_path / "src"
    write_pair(source, "only", size=(40, 60))
    assert offline.main([str(source), str(tmp_path / "dst"), "--workers", "1"]) == 0
    assert "26 variants written" in capsys.readouterr().out
    out = tmp_path / "gallery.png"
    assert offline.main(["--gallery", str(source / "images" / "only.png"), str(source / "masks" / "only.png"),
                     str(out)]) == 0
    image = cv2.imread(str(out))
    assert image is not None and image.shape[0] > 300 and image.shape[1] > 600
