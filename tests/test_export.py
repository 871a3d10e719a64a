"""export.py: ONNX export of trained checkpoints with parity and a model card; FLOP tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from skinseg.data.folder import FolderIndex, load_pair
from skinseg.errors import UsageError
from skinseg.export.checkpoint import dataset_table, export_checkpoint, validation_scores
from skinseg.export.cli import main as export_main
from skinseg.export.flops import REFERENCE_ROWS, count_gflops, flops_table, markdown
from skinseg.export.onnx import onnx_probabilities
from skinseg.models import create_model
from skinseg.models.birefnet_lite import DeformableConv2d
from skinseg.training import train

from .conftest import TINY_BIREFNET_SPLIT, TINY_PRETRAINED_MEAN, exit_2_message, tiny_overrides, write_dataset

# deeplabv3 starts from a weights file (`tiny_pretrained`), whose input normalisation it carries
TINY = {name: tiny_overrides(name) for name in ("u2netp", "dlmv", "deeplabv3")} | {"birefnet_lite": TINY_BIREFNET_SPLIT}
# dlmv is trained letterboxed here; birefnet_lite's config letterboxes by default
RESIZE = {"u2netp": "squash", "dlmv": "letterbox", "birefnet_lite": "letterbox", "deeplabv3": "squash"}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, cache_dir, tiny_pretrained):
    """A tiny trained checkpoint per model (1 epoch on demo data; birefnet_lite split over devices)."""
    from .conftest import compose_train

    paths = {}
    for name, extra in TINY.items():
        folder = tmp_path_factory.mktemp(f"train_{name}")
        resize = [] if name == "birefnet_lite" else [f"model.resize_mode={RESIZE[name]}"]
        if name == "deeplabv3":
            extra = [*extra, f"model.encoder_weights={tiny_pretrained}"]
        cfg = compose_train([f"model={name}", *extra, "data.demo.num_train=8", "data.demo.num_val=4",
                             "model.input_size=64", "data.batch_size=4", "data.num_workers=0", *resize,
                             "trainer.max_epochs=1", "callbacks.rich_progress_bar=null"], folder, cache_dir)
        paths[name] = train(cfg)["best_checkpoint"]
    return paths


@pytest.mark.parametrize("name", sorted(TINY))
def test_export_writes_a_checked_onnx_and_a_model_card(checkpoints, tmp_path, name):
    card = export_checkpoint(checkpoints[name], tmp_path)
    onnx_path = tmp_path / f"{name}.onnx"
    assert onnx_path.is_file() and card["onnx"]["parity_max_abs_probability"] <= 1e-4
    assert card["onnx"]["parity_images"] == 8  # of the demo set export finds here (configs/data/demo.yaml)
    saved = json.loads((tmp_path / f"{name}.json").read_text())
    assert saved["input"]["size"] == 64 and saved["architecture"]["net"]["name"] == name
    assert saved["input"]["resize"] == RESIZE[name]
    assert saved["files"][f"{name}.onnx"]["sha256"] and "val/miou50" in saved["val_metrics_at_training_resolution"]
    metadata = {prop.key: prop.value for prop in onnx.load(str(onnx_path)).metadata_props}
    assert metadata["skinseg.input_size"] == "64" and metadata["skinseg.model"] == name
    assert metadata["skinseg.upsample"] == "guided"
    normalisation = json.loads(metadata["skinseg.normalisation"])
    assert normalisation == saved["input"]["normalisation"]
    expected_mean = [value / 255 for value in TINY_PRETRAINED_MEAN] if name == "deeplabv3" else None
    assert normalisation["mean"] == expected_mean
    # BiRefNet_lite: opset 19 for DeformConv, and a graph of the export size only
    assert saved["onnx"]["opset"] == (19 if name == "birefnet_lite" else 17)
    assert saved["onnx"]["dynamic_size"] is (name != "birefnet_lite")
    size = (64, 64) if name == "birefnet_lite" else (45, 77)
    probabilities = onnx_probabilities(onnx_path, np.random.rand(2, 3, *size).astype(np.float32))
    assert probabilities.shape == (2, 1, *size) and 0 <= probabilities.min() and probabilities.max() <= 1


def test_birefnet_export_refuses_int8_before_writing_anything(checkpoints, tmp_path):
    with pytest.raises(ValueError, match="cannot be quantized.*export it in fp32"):
        export_checkpoint(checkpoints["birefnet_lite"], tmp_path, engines=["x86"])
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("tolerance", ["PARITY_TOLERANCE", "INT8_PARITY_TOLERANCE"])
def test_a_failed_check_leaves_the_output_folder_as_it_was(checkpoints, tmp_path, monkeypatch, tolerance):
    """Staged export: files are checked in a temporary folder and moved into place only when all pass."""
    from skinseg.errors import CheckFailedError
    from skinseg.export import checkpoint as export_module

    (tmp_path / "notes.txt").write_text("mine")
    monkeypatch.setattr(export_module, tolerance, -1.0)
    with pytest.raises(CheckFailedError, match="not written"):
        export_checkpoint(checkpoints["u2netp"], tmp_path, engines=["qnnpack"], eval_images=0)
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]  # no file, no temporary folder
    monkeypatch.undo()
    card = export_checkpoint(checkpoints["u2netp"], tmp_path, engines=["qnnpack"], eval_images=0)  # a rerun works
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(["notes.txt", "u2netp.json", *card["files"]])


def test_birefnet_sessions_letterbox_at_the_export_size(checkpoints, tmp_path):
    """ONNX Runtime and PyTorch sessions of a split-trained BiRefNet_lite agree on a non-square
    photo: letterboxed to the fixed 64x64 graph, mask back at the photo's size."""
    from skinseg.inference import Session, TorchSession

    export_checkpoint(checkpoints["birefnet_lite"], tmp_path)
    onnx_session = Session(tmp_path / "birefnet_lite.onnx", normalize="none")
    torch_session = TorchSession(checkpoints["birefnet_lite"], normalize="none")
    assert onnx_session.resize == torch_session.resize == "letterbox" and onnx_session.size == 64
    photo = (np.random.default_rng(0).random((90, 50, 3)) * 255).astype(np.uint8)
    onnx_mask, torch_mask = onnx_session.predict(photo), torch_session.predict(photo)
    assert onnx_mask.shape == torch_mask.shape == (90, 50)
    assert np.abs(onnx_mask.astype(int) - torch_mask).max() <= 1


def test_cli_and_missing_checkpoint(checkpoints, tmp_path, capsys):
    assert export_main(["--ckpt", checkpoints["u2netp"], "--out", str(tmp_path), "--name", "small"]) == 0
    assert "max |Δp|" in capsys.readouterr().out and (tmp_path / "small.onnx").is_file()
    error = exit_2_message(export_main, ["--ckpt", str(tmp_path / "nope.ckpt")], capsys)
    assert "nope.ckpt: no such file" in error


def test_cli_defaults_to_the_newest_best_checkpoint_under_logs(checkpoints, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    error = exit_2_message(export_main, [], capsys)
    assert "no best-*.ckpt under logs/" in error
    run = tmp_path / "logs" / "train" / "runs" / "r1" / "checkpoints"
    run.mkdir(parents=True)
    (run / "best-epoch000-iou0.5.ckpt").write_bytes(Path(checkpoints["u2netp"]).read_bytes())
    assert export_main(["--out", "exports"]) == 0
    assert "using the newest checkpoint" in capsys.readouterr().out and (tmp_path / "exports" / "u2netp.onnx").is_file()


def test_ship_writes_the_package_model_and_refuses_a_stray_int8(checkpoints, tmp_path, monkeypatch, capsys):
    from skinseg.export import ship
    from skinseg.inference.session import Session

    notes = tmp_path / "notes.md"
    notes.write_text("Interim model: tiny test network.")
    out = tmp_path / "default_model"
    # the real int8 gate (INT8_FLOAT_TOLERANCE, INT8_SAME_DECISION): a 1-epoch tiny network sits
    # near p = 0.5, where int8 flips decisions; its final 1x1 conv scaled x30 is as sure of its
    # decisions as a trained one, and passes
    state = torch.load(checkpoints["u2netp"], weights_only=True)
    for key in ("net.fuse.weight", "net.fuse.bias"):
        state["state_dict"][key] = state["state_dict"][key] * 30
    confident = tmp_path / "confident.ckpt"
    torch.save(state, confident)
    argv = ["ship", "--ckpt", str(confident), "--out", str(out), "--engine", "qnnpack", "--eval-images", "2",
            "--calibration-images", "4", "--notes", str(notes), "--size", "96", "--zoom", "1.5"]
    assert export_main(argv) == 0
    assert sorted(path.name for path in out.iterdir()) == [
        "MODEL_CARD.md", "unet_skin.int8.onnx", "unet_skin.json", "unet_skin.onnx"]
    card = json.loads((out / "unet_skin.json").read_text())
    assert set(card["files"]) == {"unet_skin.onnx", "unet_skin.int8.onnx"}
    assert card["shipped"]["recipe"]["data"]["input_size"] == 64 and "/" not in card["checkpoint"]
    assert card["shipped"]["recipe"]["started_from"] is None and "started from" not in (out / "MODEL_CARD.md").read_text()
    assert ship.recipe({"model": {"pretrained": "/runs/stage1/best.ckpt"}})["started_from"] == "best.ckpt"
    text = (out / "MODEL_CARD.md").read_text()
    assert "Interim model" in text and "research" in text and "| demo |" in text and "int8 qnnpack" in text
    assert Session(out / "unet_skin.int8.onnx").predict(np.zeros((30, 40, 3), np.uint8)).shape == (30, 40)
    assert card["small_skin_pass"] == {"zoom": 1.5, "zoom_below": 0.05} and "again at 1.5 times" in text
    shipped = Session(out / "unet_skin.onnx")
    assert (shipped.size, shipped.zoom, shipped.zoom_below) == (96, 1.5, 0.05)

    before = {path.name: path.read_bytes() for path in out.iterdir()}
    assert "--overwrite" in exit_2_message(export_main, argv, capsys)
    monkeypatch.setattr(ship, "INT8_FLOAT_TOLERANCE", -1.0)
    assert "not shipped" in exit_2_message(export_main, [*argv, "--overwrite"], capsys)
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before  # nothing lost


def test_flops_match_the_original_rows():
    """The original's rows (u2net at 1024, u2netp at 512 and 1024, dlmv at 256), counted at a quarter
    or an eighth of the side: every layer of these fully convolutional nets scales with the area."""
    scales = (4, 4, 8, 1)
    table = flops_table([(name, size // scale, mode) for (name, size, mode), scale in zip(REFERENCE_ROWS, scales)])
    figures = {(name, size): round(row["gflops"] * scale**2, 3)
               for row, (name, size, _), scale in zip(table, REFERENCE_ROWS, scales)}
    assert figures == {("u2net", 1024): 604.007, ("u2netp", 512): 51.271, ("u2netp", 1024): 205.082,
                       ("dlmv", 256): 2.473}
    assert table[0]["params"] == 44_009_869


def test_flops_leave_birefnet_deformable_convs_uncounted_on_request():
    size = 64
    model = create_model("birefnet_lite").eval()
    macs = []

    def record(module, inputs, output):
        out_channels, in_channels, kh, kw = module.regular_conv.weight.shape
        macs.append(out_channels * in_channels * kh * kw * output.shape[-2] * output.shape[-1])

    for module in model.modules():
        if isinstance(module, DeformableConv2d):
            module.register_forward_hook(record)
    with torch.no_grad():
        model(torch.rand(1, 3, size, size))
    counted, params = count_gflops("birefnet_lite", size, "eval")
    uncounted, _ = count_gflops("birefnet_lite", size, "eval", count_deformable=False)
    assert params == 44_313_720  # the original's BiRefNet_lite
    # the difference is the deformable products (plus fvcore's small charge for the sampling)
    assert sum(macs) / 1e9 <= counted - uncounted <= 1.1 * sum(macs) / 1e9
    rows = flops_table([("birefnet_lite", size, "eval")], count_deformable=False)
    assert "deformable convs uncounted" in markdown(rows)


class ConstantPredictor:
    def __init__(self, value: int):
        self.value = value

    def predict(self, image: np.ndarray) -> np.ndarray:
        return np.full(image.shape[:2], self.value, np.uint8)


def test_validation_scores_per_dataset_treat_empty_masks_as_scenes(tmp_path):
    """Everything called skin: F1 = 2P/(P+1) with P the skin share, FPR 1 and no IoU on the scenes."""
    skin = write_dataset(tmp_path / "skin", ["a", "b", "c"], val=2, seed=3)
    scenes = write_dataset(tmp_path / "scenes", ["s0", "s1", "s2"], val=2, size=(30, 20), empty=True)
    samples = [*FolderIndex(skin, name="skin").split("val"), *FolderIndex(scenes, name="scenes").split("val")]
    result = validation_scores({"none": ConstantPredictor(0), "all": ConstantPredictor(255)}, samples, "none")
    shares = [np.mean(load_pair(sample)[1] >= 128) for sample in samples[:2]]
    assert result["datasets"]["skin"]["all"]["f1"] == pytest.approx(np.mean([2 * p / (p + 1) for p in shares]))
    assert result["datasets"]["skin"]["all"]["miou50"] == pytest.approx(np.mean(shares))
    assert result["datasets"]["scenes"]["all"] == {"images": 2, "images_with_skin": 0, "miou50": None,
                                                   "f1": None, "fpr": 1.0}
    assert result["datasets"]["scenes"]["none"]["fpr"] == 0.0
    assert result["scores"]["all"]["same_decision"] == 0.0 and result["scores"]["none"]["miou50"] < 1e-6
    header, rows = dataset_table({"images": 4, **result})
    assert header[:5] == ["dataset", "images", "none mIoU@0.5", "none F1", "none FPR"]
    assert rows[1] == ["scenes", "2", "-", "-", "0.0000", "-", "-", "1.0000"]


def test_a_checkpoint_never_chooses_where_export_reads_or_how_much_it_generates(checkpoints, tmp_path):
    """Only names are read from a checkpoint's data config: the demo set export checks with is this
    package's own, in this machine's cache, whatever root and generator sizes the file holds."""
    state = torch.load(checkpoints["u2netp"], weights_only=True)
    data = state["skinseg"]["config"]["data"]
    data["root"] = str(tmp_path / "elsewhere")
    data["demo"] = {**data["demo"], "num_train": 10**7, "num_val": 10**7, "max_size": 10**5}
    crafted = tmp_path / "crafted.ckpt"
    torch.save(state, crafted)
    card = export_checkpoint(crafted, tmp_path / "out", parity_images=2)
    assert not (tmp_path / "elsewhere").exists() and card["onnx"]["parity_images"] == 2
    data.pop("demo")
    data["datasets"] = ["../../etc"]
    torch.save(state, crafted)
    with pytest.raises(UsageError, match="is not a dataset name"):
        export_checkpoint(crafted, tmp_path / "out2")
