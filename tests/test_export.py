"""export.py: ONNX export of trained checkpoints with parity and a model card; FLOP tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from skinseg.export.checkpoint import export_checkpoint
from skinseg.export.cli import main as export_main
from skinseg.export.flops import REFERENCE_ROWS, flops_table
from skinseg.export.onnx import onnx_probabilities
from skinseg.training import train

TINY = {
    "u2netp": ["+model.net.encoder_channels=[[4,8],[4,8],[4,8],[4,8]]",
               "+model.net.decoder_channels=[[4,8],[4,8],[4,8]]", "+model.net.rsu_heights=[5,4]"],
    "dlmv": ["+model.net.width_mult=0.25", "+model.net.aspp_channels=8"],
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, cache_dir):
    """A tiny trained checkpoint per model (1 epoch on demo data), letterboxed for dlmv."""
    from .conftest import compose_train

    paths = {}
    for name, extra in TINY.items():
        folder = tmp_path_factory.mktemp(f"train_{name}")
        resize = "letterbox" if name == "dlmv" else "squash"
        cfg = compose_train([f"model={name}", *extra, "data.demo.num_train=8", "data.demo.num_val=4",
                             "data.image_size=64", "data.batch_size=4", "data.num_workers=0",
                             f"data.resize_mode={resize}", "trainer.max_epochs=1",
                             "callbacks.rich_progress_bar=null"], folder, cache_dir)
        paths[name] = train(cfg)["best_checkpoint"]
    return paths


@pytest.mark.parametrize("name", sorted(TINY))
def test_export_writes_a_checked_onnx_and_a_model_card(checkpoints, tmp_path, name):
    card = export_checkpoint(checkpoints[name], tmp_path)
    onnx_path = tmp_path / f"{name}.onnx"
    assert onnx_path.is_file() and card["onnx"]["parity_max_abs_probability"] <= 1e-4
    assert card["onnx"]["parity_images"] == 4
    saved = json.loads((tmp_path / f"{name}.json").read_text())
    assert saved["input"]["size"] == 64 and saved["architecture"]["net"]["name"] == name
    assert saved["input"]["resize"] == ("letterbox" if name == "dlmv" else "squash")
    assert saved["files"][f"{name}.onnx"]["sha256"] and "val/iou" in saved["val_metrics_at_training_resolution"]
    metadata = {prop.key: prop.value for prop in onnx.load(str(onnx_path)).metadata_props}
    assert metadata["skinseg.input_size"] == "64" and metadata["skinseg.model"] == name
    probabilities = onnx_probabilities(onnx_path, np.random.rand(2, 3, 45, 77).astype(np.float32))
    assert probabilities.shape == (2, 1, 45, 77) and 0 <= probabilities.min() and probabilities.max() <= 1


def test_cli_and_missing_checkpoint(checkpoints, tmp_path, capsys):
    assert export_main(["--ckpt", checkpoints["u2netp"], "--out", str(tmp_path), "--name", "small"]) == 0
    assert "max |Δp|" in capsys.readouterr().out and (tmp_path / "small.onnx").is_file()
    assert export_main(["--ckpt", str(tmp_path / "nope.ckpt")]) == 2
    assert "nope.ckpt: no such file" in capsys.readouterr().out


def test_cli_defaults_to_the_newest_best_checkpoint_under_logs(checkpoints, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert export_main([]) == 2
    assert "no best-*.ckpt under logs/" in capsys.readouterr().out
    run = tmp_path / "logs" / "train" / "runs" / "r1" / "checkpoints"
    run.mkdir(parents=True)
    (run / "best-epoch000-iou0.5.ckpt").write_bytes(Path(checkpoints["u2netp"]).read_bytes())
    assert export_main(["--out", "exports"]) == 0
    assert "using the newest checkpoint" in capsys.readouterr().out and (tmp_path / "exports" / "u2netp.onnx").is_file()


def test_flops_match_the_original_rows():
    table = flops_table(REFERENCE_ROWS)
    figures = {(row["model"], row["size"]): round(row["gflops"], 3) for row in table}
    assert figures == {("u2net", 1024): 604.007, ("u2netp", 512): 51.271, ("u2netp", 1024): 205.082,
                       ("dlmv", 256): 2.473}
    assert table[0]["params"] == 44_009_869
