"""Folder datasets: every accepted input format, and a clear error for each bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from skinseg.augment.scenes import paste_skin
from skinseg.data import DataError, FolderIndex, SkinDataModule, read_image, read_mask
from skinseg.data import folder as folder_module
from skinseg.data.datamodule import SkinDataset
from skinseg.data.transforms import build_transform

from .conftest import compose_train, public_dataset, write_dataset, write_pair

# --- reading ---------------------------------------------------------------------------------


def test_reads_rgba_grey_palette_16bit_and_other_formats(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    rgba = np.dstack([rgb, np.full((20, 30), 7, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), rgb)

    Image.fromarray(rgb[..., 0]).save(tmp_path / "grey.png")
    grey = read_image(tmp_path / "grey.png")
    assert grey.shape == (20, 30, 3) and (grey[..., 0] == grey[..., 2]).all()

    deep = (rgb[..., 1].astype(np.uint16) * 257)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    np.testing.assert_array_equal(read_image(tmp_path / "deep.png")[..., 0], rgb[..., 1])

    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    assert read_image(tmp_path / "palette.png").shape == (20, 30, 3)
    for extension in ("bmp", "webp", "jpg", "tif"):
        Image.fromarray(rgb).save(tmp_path / f"image.{extension}")
        image = read_image(tmp_path / f"image.{extension}")
        assert image.shape == (20, 30, 3) and image.dtype == np.uint8


def test_exif_orientation_is_applied(tmp_path):
    image = np.zeros((20, 30, 3), np.uint8)
    image[:, :5] = 255  # a white band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display needs a 90° clockwise turn
    Image.fromarray(image).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    loaded = read_image(tmp_path / "rotated.jpg")
    assert loaded.shape == (30, 20, 3)
    assert loaded[:5].mean() > 200 and loaded[-5:].mean() < 50  # the band is now on top


def test_masks_01_255_soft_and_1bit(tmp_path):
    binary = np.zeros((10, 12), np.uint8)
    binary[2:6, 3:9] = 1
    Image.fromarray(binary).save(tmp_path / "m01.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "m01.png"), binary * 255)
    Image.fromarray(binary * 255).save(tmp_path / "m255.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "m255.png"), binary * 255)
    soft = np.linspace(0, 255, 120).astype(np.uint8).reshape(10, 12)
    Image.fromarray(soft).save(tmp_path / "soft.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "soft.png"), soft)
    Image.fromarray(binary.astype(bool)).save(tmp_path / "bits.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "bits.png"), binary * 255)
    Image.fromarray(binary.astype(np.uint16) * 65535).save(tmp_path / "m16.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "m16.png"), binary * 255)


def test_unreadable_and_missing_files_name_the_file(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="broken.png: cannot decode"):
        read_image(tmp_path / "broken.png")
    with pytest.raises(DataError, match="nothere.png: file not found"):
        read_mask(tmp_path / "nothere.png")


# --- scanning --------------------------------------------------------------------------------


def test_scan_pairs_by_stem_and_uses_splits(folder_dataset):
    index = FolderIndex(folder_dataset)
    assert index.name == "toy"
    assert [s.stem for s in index.split("val")] == ["img08", "img09"]
    assert len(index.split("train")) == 8
    first = index.split("train")[0]
    assert (first.height, first.width) == (40, 56)


def test_split_without_splits_json_is_stable(tmp_path):
    root = tmp_path / "nosplit"
    for i in range(40):
        write_pair(root, f"p{i:02d}", seed=i)
    val = {s.stem for s in FolderIndex(root, val_fraction=0.25).split("val")}
    assert 3 <= len(val) <= 20
    for i in range(40, 60):
        write_pair(root, f"p{i:02d}", seed=i)
    val_after = {s.stem for s in FolderIndex(root, val_fraction=0.25).split("val")}
    assert val <= val_after, "adding images never moves old ones between splits"


def test_wrong_path_and_layout(tmp_path):
    with pytest.raises(DataError, match="does not exist; set data.root"):
        FolderIndex(tmp_path / "nope")
    (tmp_path / "flat").mkdir()
    with pytest.raises(DataError, match="missing .*images"):
        FolderIndex(tmp_path / "flat")


def test_empty_folder(tmp_path):
    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "masks").mkdir()
    with pytest.raises(DataError, match="no images found"):
        FolderIndex(tmp_path / "empty")


def test_missing_mask_is_named(folder_dataset):
    (folder_dataset / "masks" / "img03.png").unlink()
    with pytest.raises(DataError, match="1 images have no mask.*img03.png"):
        FolderIndex(folder_dataset)


def test_corrupt_files_are_all_listed_before_training(folder_dataset):
    (folder_dataset / "images" / "img01.png").write_bytes(b"\x89PNG broken")
    (folder_dataset / "masks" / "img05.png").write_bytes(b"")
    with pytest.raises(DataError, match="2 unusable") as error:
        FolderIndex(folder_dataset)
    assert "img01.png" in str(error.value) and "img05.png" in str(error.value)


def test_mask_of_another_size(folder_dataset):
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(folder_dataset / "masks" / "img02.png")
    with pytest.raises(DataError, match=r"img02.png: mask is 10x10 .* 56x42 .*data.resize_masks=true"):
        FolderIndex(folder_dataset)
    index = FolderIndex(folder_dataset, resize_masks=True)
    sample = next(s for s in index.samples if s.stem == "img02")
    image, mask = folder_module.load_pair(sample)
    assert mask.shape == image.shape[:2]


def test_bad_splits_json(folder_dataset):
    (folder_dataset / "splits.json").write_text(json.dumps({"train": ["img00", "ghost"]}))
    with pytest.raises(DataError, match="ghost"):
        FolderIndex(folder_dataset)
    (folder_dataset / "splits.json").write_text("{not json")
    with pytest.raises(DataError, match="invalid JSON"):
        FolderIndex(folder_dataset)
    for listed, message in (({"train": "img00"}, '"train" must be a list of stems'),  # not read as "i", "m", ...
                            ({"train": [1, 2]}, r'got \[1, 2\]'), (["img00"], "got a list")):
        (folder_dataset / "splits.json").write_text(json.dumps(listed))
        with pytest.raises(DataError, match=message):
            FolderIndex(folder_dataset)


def write_three_splits(folder, train: list[str], val: list[str], test: list[str]) -> None:
    (folder / "splits.json").write_text(json.dumps({"train": train, "val": val, "test": test}))


def test_a_test_split_is_read_only_by_name(folder_dataset, tmp_path, monkeypatch):
    stems = [f"img{i:02d}" for i in range(10)]
    write_three_splits(folder_dataset, stems[:6], stems[6:8], stems[8:])
    cache = tmp_path / "cache"
    index = FolderIndex(folder_dataset, cache_dir=cache)
    assert [s.stem for s in index.split("test")] == ["img08", "img09"]
    assert {s.split for s in index.split("test")} == {"test"}
    assert [s.stem for s in index.split("all")] == stems[:8]  # train + val: never the test pairs
    assert (len(index.split("train")), len(index.split("val"))) == (6, 2)

    def refuse(*args, **kwargs):
        raise AssertionError("an unchanged pair was decoded again")

    # the cached index records no split: moving a stem into the test split decodes nothing again
    monkeypatch.setattr(folder_module, "_verify_pair", refuse)
    write_three_splits(folder_dataset, stems[:6], stems[6:7], stems[7:])
    assert [s.stem for s in FolderIndex(folder_dataset, cache_dir=cache).split("test")] == stems[7:]


def test_splits_json_errors_name_the_test_split(folder_dataset):
    write_three_splits(folder_dataset, ["img00", "img01", "img02"], ["img01"], ["img02", "img03"])
    with pytest.raises(DataError, match=r"two splits \('img01' in train and val, 'img02' in train and test"):
        FolderIndex(folder_dataset)
    (folder_dataset / "splits.json").write_text(json.dumps({"train": ["img00"], "holdout": ["img01"]}))
    with pytest.raises(DataError, match=r'splits.json: expected .*"test": \[stems\].*got keys'):
        FolderIndex(folder_dataset)


def test_index_cache_skips_decoding_unchanged_files(folder_dataset, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = FolderIndex(folder_dataset, cache_dir=cache)
    assert list((cache / "index").glob("toy-*.json"))

    def refuse(*args, **kwargs):
        raise AssertionError("an unchanged pair was decoded again")

    monkeypatch.setattr(folder_module, "_verify_pair", refuse)
    assert FolderIndex(folder_dataset, cache_dir=cache).samples == first.samples
    monkeypatch.undo()
    (folder_dataset / "images" / "img04.png").write_bytes(b"changed and broken")
    with pytest.raises(DataError, match="img04.png"):
        FolderIndex(folder_dataset, cache_dir=cache)


# --- transforms and the datamodule -----------------------------------------------------------


def test_squash_and_letterbox():
    image = np.full((50, 100, 3), 200, np.uint8)
    mask = np.full((50, 100), 255, np.uint8)
    squashed = build_transform(32, "squash")(image=image, mask=mask)
    assert squashed["image"].shape == (32, 32, 3) and squashed["mask"].min() == 255
    boxed = build_transform(32, "letterbox")(image=image, mask=mask)
    assert boxed["image"].shape == (32, 32, 3)
    assert boxed["mask"][:16].min() == 255 and boxed["mask"][16:].max() == 0  # padded below
    with pytest.raises(ValueError, match="resize_mode must be one of"):
        build_transform(32, "crop")


def test_datamodule_batches(folder_dataset, tmp_path):
    second = tmp_path / "other"
    for i in range(6):
        write_pair(second, f"o{i}", size=(30, 30), seed=100 + i)
    (second / "splits.json").write_text(json.dumps({"train": ["o0", "o1", "o2", "o3"], "val": ["o4", "o5"]}))
    module = SkinDataModule(tmp_path, datasets=["toy", "other"], input_size=32, batch_size=4, num_workers=0)
    module.setup("fit")
    assert module.dataset_names == ["toy", "other"]
    batch = next(iter(module.train_dataloader()))
    assert batch["image"].dtype == torch.uint8 and batch["image"].shape == (4, 3, 32, 32)
    assert batch["mask"].dtype == torch.uint8 and batch["mask"].shape == (4, 1, 32, 32)
    val = [b for b in module.val_dataloader()]
    ids = torch.cat([b["dataset"] for b in val]).tolist()
    assert sorted(ids) == [0, 0, 1, 1]


def test_datamodule_test_loader_reads_only_test_pairs(folder_dataset, tmp_path):
    """lfw-like data (train, val and test lists) beside a dataset without a test split: training
    and validation never see a test pair; the test loader yields only those, resized as in validation."""
    faces_stems = [f"face{i}" for i in range(9)]
    faces = write_dataset(tmp_path / "faces", faces_stems, val=2, size=(50, 30), seed=300)
    write_three_splits(faces, faces_stems[:4], faces_stems[4:6], faces_stems[6:])
    module = SkinDataModule(tmp_path, datasets=["toy", "faces"], input_size=32, batch_size=2, num_workers=0)
    module.setup("fit")
    seen = {item["stem"] for part in (module.train_set, module.val_set) for item in part}
    assert seen == {f"img{i:02d}" for i in range(10)} | {f"face{i}" for i in range(6)}
    module.setup("test")
    batches = list(module.test_dataloader())
    assert [len(batch["stem"]) for batch in batches] == [2, 1]
    assert sorted(stem for batch in batches for stem in batch["stem"]) == ["face6", "face7", "face8"]
    assert torch.cat([batch["dataset"] for batch in batches]).tolist() == [1, 1, 1]  # dataset_names[1]
    assert batches[0]["image"].shape == (2, 3, 32, 32) and batches[0]["mask"].shape == (2, 1, 32, 32)
    expected = SkinDataset([module.test_set.samples[0]], module.val_transform, module.dataset_names)[0]
    assert torch.equal(module.test_set[0]["image"], expected["image"])

    only_test = SkinDataModule(faces, input_size=32, num_workers=0)  # the test split needs no other split
    write_three_splits(faces, [], [], ["face6"])
    only_test.setup("test")
    assert [item["stem"] for item in only_test.test_set] == ["face6"]
    with pytest.raises(DataError, match=r'no test images: none of .*toy/splits.json lists a "test" split'):
        SkinDataModule(folder_dataset, input_size=32, num_workers=0).setup("test")


def test_datamodule_rejects_invalid_values(tmp_path):
    with pytest.raises(ValueError, match="batch_size"):
        SkinDataModule(tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="resize_mode"):
        SkinDataModule(tmp_path, resize_mode="stretch")
    with pytest.raises(DataError, match="val_fraction"):
        FolderIndex(tmp_path, val_fraction=1.5)


def test_public_dataset_scans(cache_dir):
    root = public_dataset("fasseg_frontal02")
    index = FolderIndex(root, cache_dir=cache_dir)
    assert len(index.split("train")) == 20 and len(index.split("val")) == 50
    assert len(index.split("all")) == 70 and index.split("test") == []
    with pytest.raises(DataError, match="'test' or 'all'"):
        index.split("holdout")


def test_paste_skin_blends_the_skin_over_another_photo():
    rng = np.random.default_rng(0)
    image = np.full((40, 60, 3), 200, np.uint8)
    mask = np.zeros((40, 60), np.uint8)
    mask[10:20, 20:30] = 255
    background = np.full((40, 60, 3), 10, np.uint8)
    background_mask = np.zeros((40, 60), np.uint8)
    background_mask[:, :5] = 255
    pasted, labels = paste_skin(image, mask, background, background_mask, rng, max_shift=0.0, scale=(1.0, 1.0))
    np.testing.assert_array_equal(labels[10:20, 20:30], 255)
    np.testing.assert_array_equal(pasted[10:20, 20:30], 200)
    np.testing.assert_array_equal(pasted[30:, 30:], 10)  # background elsewhere
    np.testing.assert_array_equal(labels[:, :5], 255)  # the background's own skin is kept
    assert labels[30:, 30:].max() == 0
    moved, moved_labels = paste_skin(image, mask, background, background_mask, rng, max_shift=0.3)
    assert moved.shape == (40, 60, 3) and moved_labels.dtype == np.uint8
    # pixels showing the pasted skin are labelled skin; the rest of the background is not
    shows_skin = moved[..., 0] > 150
    assert shows_skin.sum() > 20 and (moved_labels[shows_skin] > 127).all()
    assert (moved_labels[(moved[..., 0] < 20) & (background_mask == 0)] == 0).all()


def test_datamodule_composite_pastes_training_examples(folder_dataset, tmp_path):
    kwargs = dict(datasets=["toy"], input_size=32, batch_size=8, num_workers=0)
    plain = SkinDataModule(tmp_path, augment={}, **kwargs)
    pasted = SkinDataModule(tmp_path, augment={"composite": {"p": 1.0}}, **kwargs)
    for module in (plain, pasted):
        module.setup("fit")
    torch.manual_seed(0)
    np.random.seed(0)
    item, base = pasted.train_set[0], plain.train_set[0]
    assert item["stem"] == base["stem"] and item["image"].shape == base["image"].shape
    assert not torch.equal(item["image"], base["image"])  # another photo shows around the skin
    assert pasted.val_set[0]["image"].equal(plain.val_set[0]["image"])  # never in validation
    with pytest.raises(ValueError, match="composite"):
        SkinDataModule(tmp_path, augment={"composite": {"p": 1.5}})


def test_scenes_without_skin_are_valid_data(folder_dataset, scenes_dataset, tmp_path):
    """All-empty masks scan, load and train: a scene without people is a valid example."""
    from skinseg.losses import BceDiceLoss

    index = FolderIndex(scenes_dataset)
    assert len(index.split("all")) == 6
    module = SkinDataModule(tmp_path, datasets=["toy", "scenes"], input_size=32, batch_size=4, num_workers=0,
                            augment={})
    module.setup("fit")
    scenes = [module.train_set[i] for i in range(len(module.train_set)) if module.train_set[i]["dataset"] == 1]
    assert len(scenes) == 4 and all(int(item["mask"].max()) == 0 for item in scenes)
    target = torch.zeros(2, 1, 32, 32)
    loss = BceDiceLoss(1 / 3, 2 / 3)
    confident_skin = torch.full((2, 1, 32, 32), 3.0, requires_grad=True)
    confident_none = torch.full((2, 1, 32, 32), -3.0)
    high = loss(confident_skin, target)
    assert torch.isfinite(high) and high > loss(confident_none, target)
    high.backward()
    assert (confident_skin.grad > 0).all()  # every pixel is pushed towards "not skin"


def test_sampling_weights_per_dataset(folder_dataset, scenes_dataset, tmp_path, caplog):
    kwargs = dict(datasets=["toy", "scenes"], input_size=32, batch_size=4, num_workers=0, augment={})
    torch.manual_seed(0)

    def drawn(weights):
        module = SkinDataModule(tmp_path, weights=weights, **kwargs)
        module.setup("fit")
        ids = torch.cat([batch["dataset"] for batch in module.train_dataloader()]).tolist()
        return module, ids

    with caplog.at_level("INFO", logger="skinseg.data.datamodule"):
        module, ids = drawn({"toy": 0.0})
    assert set(ids) == {1} and len(ids) == 12  # an epoch still draws 8 + 4 images
    assert "scenes 100.0%" in caplog.text
    _, ids = drawn({"scenes": 0})
    assert set(ids) == {0}
    _, ids = drawn({"scenes": 20.0})  # 4 scenes x 20 against 8 toys x 1: about 91 % scenes
    assert ids.count(1) >= 8
    plain = SkinDataModule(tmp_path, **kwargs)
    plain.setup("fit")
    assert plain.sample_weights is None and sorted(
        torch.cat([b["dataset"] for b in plain.train_dataloader()]).tolist()) == [0] * 8 + [1] * 4
    with pytest.raises(ValueError, match="not among the datasets"):
        drawn({"negatives": 2.0})
    with pytest.raises(ValueError, match="numbers >= 0"):
        SkinDataModule(tmp_path, weights={"toy": -1.0}, **kwargs)
    with pytest.raises(ValueError, match="leave no training image"):
        drawn({"toy": 0, "scenes": 0})


def test_train_on_val_trains_on_a_datasets_val_split_and_never_its_test(folder_dataset, scenes_dataset, tmp_path):
    splits = json.loads((folder_dataset / "splits.json").read_text())
    splits["test"] = [splits["train"].pop()]
    (folder_dataset / "splits.json").write_text(json.dumps(splits))
    module = SkinDataModule(tmp_path, datasets=["toy", "scenes"], train_on_val=["toy"], input_size=32,
                            num_workers=0, augment={})
    module.setup("fit")
    assert sorted(s.stem for s in module.train_set.samples if s.dataset == "toy") == sorted(
        splits["train"] + splits["val"])
    assert {s.dataset for s in module.val_set.samples} == {"scenes"}
    with pytest.raises(ValueError, match=r"train_on_val: \['ccp'\] are not among the datasets"):
        SkinDataModule(tmp_path, datasets=["toy"], train_on_val=["ccp"], num_workers=0).setup("fit")


@pytest.mark.public_data
def test_public_scenes_datasets_scan(cache_dir):
    """`negatives` (every mask empty) and `ccp` are valid folder datasets."""
    negatives = FolderIndex(public_dataset("negatives"), cache_dir=cache_dir)
    assert (len(negatives.split("train")), len(negatives.split("val"))) == (135, 15)
    assert all(read_mask(sample.mask).max() == 0 for sample in negatives.split("val"))
    ccp = public_dataset("ccp")
    assert len(json.loads((ccp / "splits.json").read_text())["val"]) == 100


def test_two_loader_workers_augment_differently_and_reproducibly(folder_dataset, tmp_path):
    """num_workers=2 (worker seeding, albumentations and compositing in forked workers): a run
    with the same seed repeats its batches, another seed draws others."""

    def first_batches(seed: int) -> list[dict]:
        module = SkinDataModule(tmp_path, datasets=["toy"], input_size=32, batch_size=2, num_workers=2,
                                augment={"seed26": {"p": 1.0}, "composite": {"p": 0.5}, "hflip": {"p": 0.5}})
        module.setup("fit")
        torch.manual_seed(seed)
        loader = module.train_dataloader()
        batches = [batch for batch, _ in zip(loader, range(4), strict=False)]
        del loader
        return batches

    first, again, other = first_batches(0), first_batches(0), first_batches(1)
    assert len(first) == 4 and all(batch["image"].shape == (2, 3, 32, 32) for batch in first)
    assert all(torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
               for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a["image"], b["image"]) for a, b in zip(first, other, strict=True))


@pytest.mark.public_data
def test_public_lfw_faces_has_a_test_split(tmp_path, cache_dir):
    """The official three-way split of lfw_faces, through `data=public 'data.datasets=[lfw_faces]'`."""
    index = FolderIndex(public_dataset("lfw_faces"), cache_dir=cache_dir)
    counts = {split: len(index.split(split)) for split in ("train", "val", "test", "all")}
    assert counts == {"train": 1500, "val": 500, "test": 927, "all": 2000}
    overrides = ["data=public", "data.datasets=[lfw_faces]", "model.input_size=32", "data.num_workers=0"]
    cfg = compose_train(overrides, tmp_path, cache_dir)
    module = instantiate(cfg.data, _convert_="all")
    module.setup("test")
    module.setup("fit")
    test_stems = {sample.stem for sample in index.split("test")}
    assert len(module.test_set) == 927 and {s.stem for s in module.test_set.samples} == test_stems
    validation = module.val_set.datasets[0]  # the plain val pairs, then data=public's views
    assert not test_stems & {s.stem for s in [*module.train_set.samples, *validation.samples]}
    assert len(module.train_set) == 1500 and module.dataset_names[0] == "lfw_faces"
