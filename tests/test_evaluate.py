"""evaluate.py end to end on demo data: tables written, caches reused, clear errors."""

from __future__ import annotations

import json
import os
import shutil

import cv2
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict

from skinseg.errors import DataError, UsageError
from skinseg.evaluation import checkpoint_entries, classical_entries, run
from skinseg.training import train

from .conftest import CONFIGS, PUBLIC_DATA, ROOT, tiny_overrides

TINY_DEMO = ["data.demo.num_train=4", "data.demo.num_val=6", "data.demo.min_size=48", "data.demo.max_size=64"]


@pytest.fixture
def eval_cfg(tmp_path, cache_dir):
    def make(overrides):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
            cfg = compose("evaluate", overrides=[*TINY_DEMO, "progress=false", *overrides])
        with open_dict(cfg):
            cfg.paths.root_dir = str(ROOT)
            cfg.paths.cache_dir = str(cache_dir)
            cfg.paths.data_dir = str(PUBLIC_DATA)
            cfg.data_name = "demo"
            cfg.output_dir = str(tmp_path / "results")
        return cfg

    return make


def test_classical_methods_on_demo_data(eval_cfg, tmp_path):
    out = run(eval_cfg(["methods=[hsv,ellipse]"]))
    table = (tmp_path / "results" / "results.md").read_text()
    assert "## demo" in table and "## All datasets pooled" in table
    assert "| hsv |" in table and "| ellipse |" in table and "mIoU@0.5" in table and "HCE" in table
    rows = (tmp_path / "results" / "results.csv").read_text().splitlines()
    assert rows[0].startswith("dataset,method,miou,miou50,mae") and len(rows) == 1 + 2 * 2
    data = json.loads((tmp_path / "results" / "results.json").read_text())
    assert data["tables"]["demo"]["hsv"]["images"] == 6
    assert 0 <= out["tables"]["all"]["ellipse"]["miou"] <= 1


def test_a_rerun_with_one_more_method_reuses_the_others(eval_cfg, cache_dir):
    run(eval_cfg(["methods=[hsv]"]))
    predictions = sorted((cache_dir / "predictions").glob("hsv-*/demo/*.png"))
    stamps = {p: p.stat().st_mtime_ns for p in predictions}
    out = run(eval_cfg(["methods=[hsv,ycbcr]", "overwrite=true"]))
    assert {p: p.stat().st_mtime_ns for p in predictions} == stamps
    assert set(out["tables"]["demo"]) == {"hsv", "ycbcr"}


def test_unknown_method_and_missing_checkpoint_are_clear(tmp_path):
    with pytest.raises(KeyError, match="valid names: .*hsv"):
        classical_entries(["hsv", "skin_gpt"])
    with pytest.raises(FileNotFoundError, match="not found; none under logs/; train one"):
        checkpoint_entries([str(tmp_path / "missing.ckpt")], tmp_path)


def test_mediapipe_is_listed_as_skipped_when_absent(eval_cfg, tmp_path):
    from skinseg.classical.mediapipe import mediapipe_available

    if mediapipe_available():
        pytest.skip("mediapipe is installed here")
    out = run(eval_cfg(["methods=[hsv,mediapipe]"]))
    assert "mediapipe" in out["skipped"] and "pip install" in out["skipped"]["mediapipe"]
    assert "Skipped:" in (tmp_path / "results" / "results.md").read_text()


def test_a_trained_checkpoint_is_evaluated(eval_cfg, cfg_factory, tmp_path):
    summary = train(cfg_factory([
        "model=dlmv", *tiny_overrides("dlmv"),
        "data.demo.num_train=8", "data.demo.num_val=4", "model.input_size=64", "data.batch_size=4",
        "data.num_workers=0", "trainer.max_epochs=1", "callbacks.rich_progress_bar=null", "logger=csv",
    ]))
    checkpoint = summary["best_checkpoint"]
    out = run(eval_cfg(["methods=[hsv]", f"checkpoints=[{checkpoint}]"]))
    labels = set(out["tables"]["demo"])
    assert "hsv" in labels and any(label.endswith(checkpoint.split("/")[-1][:-5]) for label in labels)


def test_split_all_and_test_write_beside_the_val_results(tmp_path, cache_dir):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        val, every, test = (compose("evaluate", overrides=["data_name=public", "paths.root_dir=/r", *split])
                            for split in ([], ["split=all"], ["split=test"]))
    assert val.output_dir == "/r/results/public" and every.output_dir == "/r/results/public-all"
    assert test.output_dir == "/r/results/public-test"


def test_split_test_scores_only_the_test_pairs(eval_cfg, tmp_path, folder_dataset, scenes_dataset):
    stems = [f"img{i:02d}" for i in range(10)]
    splits = {"train": stems[:5], "val": stems[5:7], "test": stems[7:]}
    (folder_dataset / "splits.json").write_text(json.dumps(splits))
    cfg = eval_cfg(["methods=[hsv]", "split=test"])
    with open_dict(cfg):
        cfg.data.demo, cfg.data.root = None, str(folder_dataset)
    out = run(cfg)
    assert out["tables"]["toy"]["hsv"]["images"] == 3
    written = json.loads((tmp_path / "results" / "results.json").read_text())
    assert written["meta"]["split"] == "test" and written["tables"]["toy"]["hsv"]["images"] == 3
    assert "# Evaluation on demo (test split)" in (tmp_path / "results" / "results.md").read_text()
    with open_dict(cfg):
        cfg.data.root, cfg.overwrite = str(scenes_dataset), True  # no test split
    with pytest.raises(DataError, match=r"no 'test' images in .*scenes.*under \"test\" in their splits.json"):
        run(cfg)


def test_scenes_without_skin_are_scored_by_their_fpr(eval_cfg, tmp_path, folder_dataset, scenes_dataset):
    """A dataset of empty masks gets an FPR and "–" for the IoU family; pooled IoU leaves it out."""
    cfg = eval_cfg(["methods=[ycbcr]", "+method_args.ycbcr.postprocess=false"])  # noise: some pixels pass
    with open_dict(cfg):  # two folder datasets instead of the demo
        cfg.data.demo, cfg.data.root, cfg.data.datasets = None, str(folder_dataset.parent), ["toy", "scenes"]
    out = run(cfg)
    scenes, toy, pooled = (out["tables"][name]["ycbcr"] for name in ("scenes", "toy", "all"))
    assert scenes["miou50"] is None and scenes["hce"] is None and scenes["images_with_skin"] == 0
    assert 0.0 < scenes["fpr"] < 1.0  # random colours: some fall in the ycbcr box
    assert pooled["miou50"] == toy["miou50"] and pooled["images"] == 4 and pooled["images_with_skin"] == 2
    table = (tmp_path / "results" / "results.md").read_text()
    row = next(line for line in table.split("## scenes")[1].splitlines() if line.startswith("| ycbcr |"))
    assert row.split(" | ").count("–") == 4 and f"| {scenes['fpr']:.4f} |" in row


def test_a_corrupt_cached_prediction_is_recomputed(eval_cfg, cache_dir):
    first = run(eval_cfg(["methods=[hsv]"]))
    torn = sorted((cache_dir / "predictions").glob("hsv-*/demo/*.png"))[0]
    torn.write_bytes(b"\x89PNG\r\n\x1a\n torn")
    (torn.parent / "scores.json").unlink()
    again = run(eval_cfg(["methods=[hsv]", "overwrite=true"]))
    assert again["tables"]["demo"]["hsv"]["miou"] == pytest.approx(first["tables"]["demo"]["hsv"]["miou"])
    assert torn.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and len(torn.read_bytes()) > 50


def test_checkpoint_predictions_are_keyed_by_content_not_size_and_time(tmp_path):
    first, second = tmp_path / "a" / "best.ckpt", tmp_path / "b" / "best.ckpt"
    for path, content in ((first, b"weights A"), (second, b"weights B")):
        path.parent.mkdir()
        path.write_bytes(content)
    stamp = first.stat().st_mtime_ns
    os.utime(second, ns=(stamp, stamp))  # same size, same time: a stamp could not tell them apart
    key_a, key_b = (entry.settings for entry in checkpoint_entries([str(first), str(second)]))
    assert key_a != key_b
    second.write_bytes(b"weights A")
    assert checkpoint_entries([str(second)])[0].settings == key_a


def test_an_exported_onnx_model_is_a_row_like_a_checkpoint(eval_cfg, tmp_path):
    """evaluate.py scores .onnx files through the same predictor factory as predict."""
    from skinseg.inference.session import DEFAULT_MODEL_DIR

    shipped = DEFAULT_MODEL_DIR / "unet_skin.int8.onnx"
    out = run(eval_cfg(["methods=[hsv]", f"checkpoints=[{shipped}]"]))
    label = "unet_skin.int8"  # a file outside a run's checkpoints/: its stem
    assert set(out["tables"]["demo"]) == {"hsv", label}
    assert 0 <= out["tables"]["demo"][label]["miou50"] <= 1
    with pytest.raises(UsageError, match="give .ckpt or .onnx files"):
        checkpoint_entries([str(DEFAULT_MODEL_DIR / "MODEL_CARD.md")])


def test_the_cache_is_keyed_by_image_content_not_folder_name_and_stem(eval_cfg, tmp_path, cache_dir):
    """Two datasets of one folder name, an image replaced in place, a wrong-size or corrupt cache: never stale."""
    from .conftest import write_dataset

    first, second = tmp_path / "one" / "toy", tmp_path / "two" / "toy"
    write_dataset(first, ["a", "b", "c"], val=3, seed=1)
    write_dataset(second, ["a", "b", "c"], val=3, seed=2)

    def score(root):
        cfg = eval_cfg(["methods=[ycbcr]", "overwrite=true"])
        with open_dict(cfg):
            cfg.data.demo, cfg.data.root, cfg.data.datasets = None, str(root), ["toy"]
        return run(cfg)["tables"]["toy"]["ycbcr"]["miou"]

    def fresh(root):  # the same figure from an empty cache
        cfg = eval_cfg(["methods=[ycbcr]", "overwrite=true"])
        with open_dict(cfg):
            cfg.data.demo, cfg.data.root, cfg.data.datasets = None, str(root), ["toy"]
            cfg.paths.cache_dir = str(tmp_path / f"fresh{len(list(tmp_path.glob('fresh*')))}")
        return run(cfg)["tables"]["toy"]["ycbcr"]["miou"]

    assert score(tmp_path / "one") == pytest.approx(fresh(tmp_path / "one"))
    assert score(tmp_path / "two") == pytest.approx(fresh(tmp_path / "two"))
    shutil.copy(second / "images" / "a.png", first / "images" / "a.png")  # replaced in place
    shutil.copy(second / "masks" / "a.png", first / "masks" / "a.png")
    assert score(tmp_path / "one") == pytest.approx(fresh(tmp_path / "one"))
    cached = sorted((cache_dir / "predictions").glob("ycbcr-*/toy/b-*.png"))
    for path in cached:  # a valid PNG of the wrong size
        cv2.imwrite(str(path), np.zeros((5, 5), np.uint8))
    for scores in (cache_dir / "predictions").glob("ycbcr-*/toy/scores.json"):
        scores.write_text('["not", "a", "scores", "file"]')
    assert score(tmp_path / "one") == pytest.approx(fresh(tmp_path / "one"))


def test_tone_thirds_split_a_datasets_images_by_the_tone_of_their_skin(eval_cfg, tmp_path):
    from .conftest import write_dataset

    root = write_dataset(tmp_path / "data" / "faces", [f"f{i}" for i in range(9)], val=9, seed=3)
    cfg = eval_cfg(["methods=[ycbcr]", "tones=[faces]"])
    with open_dict(cfg):
        cfg.data.demo, cfg.data.root, cfg.data.datasets = None, str(root.parent), ["faces"]
    tables = run(cfg)["tables"]
    thirds = [tables[f"faces, {third} skin-tone third"]["ycbcr"] for third in ("darkest", "middle", "lightest")]
    assert [figures["images"] for figures in thirds] == [3, 3, 3]
    assert sum(f["miou50"] * f["images"] for f in thirds) / 9 == pytest.approx(tables["faces"]["ycbcr"]["miou50"])
    assert "## faces, darkest skin-tone third" in (tmp_path / "results" / "results.md").read_text()
