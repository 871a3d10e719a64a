"""End to end: `train()` on the demo data and the public data, resume, DDP, bad config."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra.errors import InstantiationException

from skinseg.errors import DataError
from skinseg.training import train

from .conftest import (
    FP32,
    PUBLIC_DATA,
    ROOT,
    TINY_BIREFNET_SPLIT,
    compose_train,
    public_dataset,
    tiny_overrides,
)

SMALL_DEMO = [
    "data.demo.num_train=16",
    "data.demo.num_val=8",
    "model.input_size=64",
    "data.batch_size=4",
    "data.num_workers=0",
]


@pytest.mark.parametrize("model", ["u2netp", "u2net", "dlmv"])
def test_fast_dev_run_on_demo_data(cfg_factory, model):
    summary = train(cfg_factory([f"model={model}", "debug=fdr", *SMALL_DEMO]))
    assert summary["model"] == model
    assert 0.0 <= summary["val/miou50"] <= 1.0 and 0.0 <= summary["val/demo/mae"] <= 255.0


def test_fast_dev_run_of_a_split_birefnet(cfg_factory, monkeypatch):
    """Lightning moves the module onto one device; the module puts the parts back before
    training and validation."""
    from skinseg.models.birefnet_lite import BiRefNetLite

    placed = []
    place = BiRefNetLite.place
    monkeypatch.setattr(BiRefNetLite, "place", lambda self: placed.append(self.device_map) or place(self))
    summary = train(cfg_factory(["model=birefnet_lite", "debug=fdr", *SMALL_DEMO, *TINY_BIREFNET_SPLIT]))
    assert summary["model"] == "birefnet_lite" and 0.0 <= summary["val/miou50"] <= 1.0
    cpu = torch.device("cpu")
    assert len(placed) >= 3 and all(device_map == {"backbone": cpu, "decoder": cpu} for device_map in placed)


def test_overfitting_a_few_batches_learns(cfg_factory):
    cfg = cfg_factory(["debug=overfit", "trainer.max_epochs=30", *SMALL_DEMO, "model.optimizer.lr=3e-3"])
    summary = train(cfg)
    assert summary["train/miou50 (last epoch)"] > 0.6, summary


def read_metrics(run: Path) -> list[dict]:
    rows = []
    for path in run.rglob("metrics.csv"):
        with open(path) as file:
            rows += list(csv.DictReader(file))
    return rows


def test_a_few_steps_on_one_public_dataset(cfg_factory, tmp_path):
    public_dataset("abd")
    cfg = cfg_factory(
        [
            "data=public",
            "data.datasets=[abd]",
            "model.input_size=64",
            "data.batch_size=4",
            "data.num_workers=0",
            "trainer.max_epochs=1",
            "+trainer.limit_train_batches=4",
            "+trainer.limit_val_batches=3",
            "trainer.log_every_n_steps=1",
            "callbacks.rich_progress_bar=null",
        ]
    )
    summary = train(cfg)
    rows = read_metrics(tmp_path)
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) == 4 and all(loss == loss for loss in losses)
    assert any(r.get("val/abd/miou50") for r in rows) and any(r.get("val/abd/mae") for r in rows)
    assert Path(summary["best_checkpoint"]).is_file() and Path(summary["last_checkpoint"]).is_file()
    checkpoint = torch.load(summary["best_checkpoint"], map_location="cpu", weights_only=True)
    assert checkpoint["hyper_parameters"]["input_size"] == 64
    views = ["view_dark_tone", "view_zoom_out", "view_small_people", "view_skin_wall"]  # data=public's views
    assert checkpoint["skinseg"]["dataset_names"] == ["abd", *views]


def test_invalid_config_values_fail_before_training(cfg_factory):
    with pytest.raises(InstantiationException, match="valid names: birefnet_lite, deeplabv3, dlmv, u2net, u2netp, unet"):
        train(cfg_factory(["model.net.name=u3net", "debug=fdr", *SMALL_DEMO]))
    with pytest.raises(InstantiationException, match="resize_mode"):
        train(cfg_factory(["model.resize_mode=stretch", "debug=fdr", *SMALL_DEMO]))


def test_output_folder_of_an_earlier_run_is_not_overwritten(cfg_factory, tmp_path):
    (tmp_path / "checkpoints").mkdir()
    earlier = tmp_path / "checkpoints" / "last.ckpt"
    earlier.write_bytes(b"earlier run")
    with pytest.raises(FileExistsError, match="earlier run"):
        train(cfg_factory(["debug=fdr", *SMALL_DEMO]))
    assert earlier.read_bytes() == b"earlier run"


def run_train(args: list[str], cache_dir: Path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "SKINSEG_CACHE": str(cache_dir), "SKINSEG_DATA": str(PUBLIC_DATA), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def test_resume_after_sigkill_mid_epoch(tmp_path, cache_dir):
    common = [
        "data.demo.num_train=48",
        "data.demo.num_val=8",
        "model.input_size=64",
        "data.batch_size=4",
        "data.num_workers=0",
        "trainer.max_epochs=3",
        "callbacks.last_checkpoint.every_n_train_steps=5",
        "callbacks.rich_progress_bar=null",
        FP32,
    ]
    steps_per_epoch = 12
    first_run, second_run = tmp_path / "first", tmp_path / "second"
    process = run_train([*common, f"hydra.run.dir={first_run}"], cache_dir)
    last = first_run / "checkpoints" / "last.ckpt"
    killed_at = None
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        if last.exists():
            state = torch.load(last, map_location="cpu", weights_only=True)
            if state["global_step"] > steps_per_epoch and state["global_step"] % steps_per_epoch:
                process.send_signal(signal.SIGKILL)
                killed_at = state["global_step"]
                break
        time.sleep(0.05)
    output = process.communicate()[0]
    assert killed_at is not None, f"never saw a mid-epoch checkpoint:\n{output[-3000:]}"
    assert process.returncode == -signal.SIGKILL

    state = torch.load(last, map_location="cpu", weights_only=True)  # not torn
    assert state["global_step"] >= killed_at and state["optimizer_states"]

    resumed = run_train([*common, f"hydra.run.dir={second_run}", f"ckpt_path={last}"], cache_dir)
    output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, output[-3000:]
    final = torch.load(second_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert final["epoch"] == 2 and final["global_step"] == 3 * steps_per_epoch
    logged_steps = [int(r["step"]) for r in read_metrics(second_run) if r.get("train/loss")]
    assert logged_steps and min(logged_steps) >= state["global_step"] - 1
    assert "skinseg training summary" in output


def test_ddp_sim_two_cpu_processes(tmp_path, cache_dir):
    process = run_train(["trainer=ddp_sim", "debug=fdr", *SMALL_DEMO, FP32, f"hydra.run.dir={tmp_path}"], cache_dir)
    output = process.communicate(timeout=600)[0]
    assert process.returncode == 0, output[-3000:]
    assert "Starting with 2 processes" in output
    assert "skinseg training summary" in output


def test_scenes_without_skin_train_and_report_their_fpr(cfg_factory, folder_dataset, scenes_dataset):
    """A dataset of empty masks trains (weighted) and validates as the share called skin, not an IoU."""
    summary = train(cfg_factory([
        "data=folder", f"data.root={folder_dataset.parent}", "data.datasets=[toy,scenes]", "model.input_size=32",
        "data.batch_size=4", "data.num_workers=0", "data.augment.seed26.p=0", "data.weights={scenes: 2.0}",
        "trainer.max_epochs=1", "callbacks.rich_progress_bar=null", *tiny_overrides("u2net"),
    ]))
    assert 0.0 <= summary["val/scenes/fpr"] <= 1.0 and "val/scenes/miou50" not in summary
    assert 0.0 <= summary["val/toy/miou50"] <= 1.0 and 0.0 <= summary["val/fpr"] <= 1.0
    assert summary["val/miou50"] == summary["val/toy/miou50"]  # the pooled IoU leaves the scenes out


def test_the_test_loop_after_fit_reports_the_test_splits(folder_dataset, scenes_dataset, tmp_path, cache_dir):
    """test=true: after fit, Lightning's test loop scores the best checkpoint (after a fast_dev_run, which
    keeps none, the final weights) on every test split (toy's; scenes has none); the summary lists test/..."""
    stems = [f"img{i:02d}" for i in range(10)]
    (folder_dataset / "splits.json").write_text(json.dumps({"train": stems[:6], "val": stems[6:8],
                                                            "test": stems[8:]}))
    common = ["data=folder", f"data.root={folder_dataset.parent}", "data.datasets=[toy,scenes]",
              "model.input_size=64", "data.batch_size=4", "data.num_workers=0",
              "callbacks.rich_progress_bar=null", "model=dlmv", *tiny_overrides("dlmv"), "test=true"]
    summary = train(compose_train([*common, "trainer.max_epochs=1"], tmp_path / "fit", cache_dir))
    assert summary["tested"] == summary["best_checkpoint"] and Path(summary["tested"]).is_file()
    assert 0.0 <= summary["test/miou50"] <= 1.0 and summary["test/miou50"] == summary["test/toy/miou50"]
    assert "test/loss" in summary and not any(key.startswith("test/scenes/") for key in summary)
    assert any(row.get("test/toy/miou50") for row in read_metrics(tmp_path / "fit"))
    quick = train(compose_train([*common, "debug=fdr"], tmp_path / "fdr", cache_dir))
    assert quick["tested"] == "final weights" and 0.0 <= quick["test/miou50"] <= 1.0


def test_the_test_loop_without_a_test_split_fails_before_training(cfg_factory, scenes_dataset, tmp_path):
    overrides = ["data=folder", f"data.root={scenes_dataset}", "model.input_size=64", "data.num_workers=0",
                 "test=true", "debug=fdr"]
    with pytest.raises(DataError, match=r'no test images: none of .*scenes/splits.json lists a "test"'):
        train(cfg_factory(overrides))
    assert not (tmp_path / "checkpoints").exists()
