"""Shared fixtures: config composition, small folder datasets, the public data path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
PUBLIC_DATA = Path(os.environ.get("SKINSEG_PUBLIC_DATA", ROOT.parent / "shared" / "datasets"))
SHARED_WEIGHTS = ROOT.parent / "shared" / "weights"  # the pretrained files users would download (its README)


# Tests train in fp32 on every CPU: the same numbers everywhere, and no emulated bf16 (8x
# slower) on CPUs without it. Tests of `trainer.precision=auto` set it themselves.
FP32 = "trainer.precision=32-true"

# The smallest constructor settings of each model that still run every layer: the model tests
# build these, the training, export and quantization tests train them (`tiny_overrides`).
TINY_NETS = {
    "u2net": {"encoder_channels": [(4, 8)] * 6, "decoder_channels": [(4, 8)] * 5},
    "u2netp": {"encoder_channels": [(4, 8)] * 4, "decoder_channels": [(4, 8)] * 3, "rsu_heights": [5, 4]},
    "dlmv": {"width_mult": 0.25, "aspp_channels": 16},
    "unet": {"width_mult": 0.1, "decoder_channels": [16, 8, 8, 8]},
    "deeplabv3": {"width_mult": 0.1, "head_channels": 16, "skip_channels": 8, "decoder_channels": 8},
    # block_channels stays at 16: on the CPU, torch 2.14's bfloat16 weight gradient of a 3x3 conv
    # from thousands of channels (the tile embeddings) to 4 or 8 corrupts memory.
    "birefnet_lite": {
        "embed_dim": 16,
        "depths": (2, 2, 2, 2),
        "num_heads": (1, 1, 2, 2),
        "decoder_channels": (32, 16, 16, 8),
        "block_channels": 16,
        "aspp_channels": 8,
        "gradient_channels": 4,
    },
}


# networks on a pretrained encoder: no weights of the tiny widths exist, so tiny ones start from
# scratch (or from `tiny_pretrained`)
PRETRAINED_ENCODER = ("unet", "deeplabv3")


def tiny_overrides(name: str) -> list[str]:
    """Hydra overrides (`+model.net.KEY=VALUE`) that build TINY_NETS[name] (random encoder weights)."""
    overrides = [f"+model.net.{key}={json.dumps(value, separators=(',', ':'))}"
                 for key, value in TINY_NETS[name].items()]
    return overrides + (["model.encoder_weights=null"] if name in PRETRAINED_ENCODER else [])


# what the tiny weights file says its inputs were scaled with (0-255 units, as the PASCAL file)
TINY_PRETRAINED_MEAN, TINY_PRETRAINED_STD = [100.0, 110.0, 120.0], [60.0, 64.0, 68.0]


@pytest.fixture(scope="session")
def tiny_pretrained(tmp_path_factory) -> Path:
    """A weights file in the offline layout (`../shared/weights`) for the tiny deeplabv3 and unet:
    a random encoder, a 21-class head, `meta` with the person class and the input normalisation."""
    import torch

    from skinseg.models import create_model

    torch.manual_seed(0)
    source = create_model("deeplabv3", num_classes=21, **TINY_NETS["deeplabv3"])
    path = tmp_path_factory.mktemp("weights") / "tiny_pascal.pt"
    torch.save({"backbone": source.encoder.features.state_dict(), "head": source.head.state_dict(),
                "meta": {"person_class": 15, "input_mean": TINY_PRETRAINED_MEAN,
                         "input_std": TINY_PRETRAINED_STD}}, path)
    return path


# a tiny BiRefNet_lite split over two devices (both the CPU here: the code path is the same)
TINY_BIREFNET_SPLIT = [*tiny_overrides("birefnet_lite"), "model.device_map={backbone:cpu,decoder:cpu}"]


def compose_train(overrides: list[str], tmp_path: Path, cache_dir: Path) -> DictConfig:
    """The train config for `overrides` (fp32 unless they set a precision or QAT), outputs under tmp_path."""
    if not any(override.startswith(("trainer.precision=", "qat=")) for override in overrides):
        overrides = [*overrides, FP32]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.root_dir = str(ROOT)
        cfg.paths.output_dir = str(tmp_path)
        cfg.paths.log_dir = str(tmp_path / "logs")
        cfg.paths.work_dir = str(ROOT)
        cfg.paths.cache_dir = str(cache_dir)
        cfg.paths.data_dir = str(PUBLIC_DATA)
    return cfg


@pytest.fixture(scope="session", autouse=True)
def cache_dir(tmp_path_factory) -> Path:
    """One cache (demo data, dataset indexes, measured runtimes) for the whole test session.

    $SKINSEG_CACHE points there too, so that nothing a test does lands in the user's cache.
    """
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SKINSEG_CACHE", str(path))
        yield path


@pytest.fixture
def cfg_factory(tmp_path, cache_dir):
    """compose_train bound to this test's temporary folder."""
    return lambda overrides=(): compose_train(list(overrides), tmp_path, cache_dir)


def write_pair(root: Path, stem: str, size=(40, 56), seed: int = 0, image_ext=".png", empty: bool = False) -> None:
    """Writes a random RGB image and a blob mask of size (H, W) under root (`empty`: no skin at all)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    height, width = size
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:height, :width]
    mask = (((yy - height / 2) / (height / 3)) ** 2 + ((xx - width / 2) / (width / 3)) ** 2 <= 1) & (not empty)
    Image.fromarray(image).save(root / "images" / f"{stem}{image_ext}")
    Image.fromarray(mask.astype(np.uint8) * 255).save(root / "masks" / f"{stem}.png")


def write_dataset(root: Path, stems: list[str], val: int, size=(40, 56), seed: int = 0, grow: int = 0,
                  empty: bool = False) -> Path:
    """Writes a folder dataset of `write_pair`s (the i-th `grow`·i rows taller) and a splits.json
    whose last `val` stems are the val split; returns root."""
    for index, stem in enumerate(stems):
        write_pair(root, stem, size=(size[0] + grow * index, size[1]), seed=seed + index, empty=empty)
    (root / "splits.json").write_text(json.dumps({"train": stems[:-val], "val": stems[-val:]}))
    return root


@pytest.fixture
def folder_dataset(tmp_path) -> Path:
    """A valid 10-pair folder dataset with a splits.json (8 train, 2 val)."""
    return write_dataset(tmp_path / "toy", [f"img{i:02d}" for i in range(10)], val=2, grow=1)


@pytest.fixture
def scenes_dataset(tmp_path) -> Path:
    """A 6-pair folder dataset beside `folder_dataset` whose masks are all empty (4 train, 2 val)."""
    return write_dataset(tmp_path / "scenes", [f"scene{i}" for i in range(6)], val=2, size=(44, 50), seed=200,
                         empty=True)


@pytest.fixture
def people_dataset(tmp_path) -> Path:
    """A 6-pair folder dataset with persons/STEM.png silhouettes (a skin head on a clothed body), 4 train, 2 val."""
    root = tmp_path / "people"
    stems = [f"person{i}" for i in range(6)]
    for folder in ("images", "masks", "persons"):
        (root / folder).mkdir(parents=True)
    for index, stem in enumerate(stems):
        image = np.full((60, 40, 3), (30, 60, 200), np.uint8)  # blue clothes
        silhouette = np.zeros((60, 40), np.uint8)
        silhouette[5:55, 10:30] = 255
        skin = np.zeros((60, 40), np.uint8)
        skin[5:20, 14:26] = 255  # the head
        image[skin > 0] = (200, 150, 120 - 10 * index)
        Image.fromarray(image).save(root / "images" / f"{stem}.png")
        Image.fromarray(skin).save(root / "masks" / f"{stem}.png")
        Image.fromarray(silhouette).save(root / "persons" / f"{stem}.png")
    (root / "splits.json").write_text(json.dumps({"train": stems[:4], "val": stems[4:]}))
    return root


def public_dataset(name: str) -> Path:
    """A public dataset's folder, or skips the test when the data is absent."""
    path = PUBLIC_DATA / name
    if not (path / "images").is_dir():
        pytest.skip(f"public dataset {name} not found under {PUBLIC_DATA}")
    return path


def exit_2_message(main, argv: list[str], capsys) -> str:
    """Runs a command's `main(argv)`, checks that it stops with exit code 2 and no traceback; returns stderr."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return captured.err
