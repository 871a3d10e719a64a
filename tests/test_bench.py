"""The benchmark scripts run and their figures are finite and positive (the values themselves are read by people)."""

from __future__ import annotations

import csv
import math

from skinseg.bench import train as bench_train

from .conftest import exit_2_message, tiny_overrides


def table_figures(output: str, label: str) -> list[float]:
    """The numeric cells of the printed (rich) table row that starts with `label`."""
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip("│┃ ").split("│")]
        if cells and cells[0] == label:
            return [float(cell) for cell in cells[1:] if cell]
    raise AssertionError(f"no row {label!r} in:\n{output}")


def test_training_benchmark_smoke(tmp_path, capsys, cache_dir):
    from skinseg.hardware import cpu_info, resolve_precision

    bench_train.main(
        ["--models", "dlmv", "--size", "64", "--batch-size", "2", "--steps", "1", "--warmup", "1",
         "--repeats", "1", "--workers", "0", "--data-batches", "2", "--data", str(tmp_path),
         "--cache", str(cache_dir), "--workers-sweep", "0", "1"]
    )
    output = capsys.readouterr().out
    assert "skinseg / plain" in output and "bf16-mixed" in output and "demo data" in output
    # the header names the CPU, its features and what auto picks here, with why
    header = output.splitlines()[0]
    assert header.startswith(cpu_info().name) and "AVX2 " in header and "AMX-BF16 " in header
    assert f"trainer.precision=auto -> {resolve_precision('auto', 'cpu')}" in header
    rates = [float(word) for line in output.splitlines() if line.startswith("row: ")
             for word in line.split()[4:7:2]]
    assert len(rates) == 4 and all(0 < rate < float("inf") for rate in rates)
    assert "auto picks" in output and "Training fed by the loader" in output and "1 workers" in output


def test_augmentation_benchmark_smoke(capsys):
    from skinseg.bench import augment as bench_augment

    bench_augment.main(["--images", "2", "--workers", "1", "--repeats", "1", "--samples", "5", "--train-steps", "1"])
    output = capsys.readouterr().out
    assert "variants written/s" in output and "seed26 alone" in output
    figures = table_figures(output, "1") + table_figures(output, "resize 256 + flip + seed26")
    assert len(figures) == 5 and all(0 < value < math.inf for value in figures)


def test_classical_benchmark_smoke(capsys):
    from skinseg.bench import classical as bench_classical

    bench_classical.main(["--side", "64", "--repeats", "1"])
    output = capsys.readouterr().out
    assert "JPEG decode" in output and "ycbcr" in output and "icm" in output
    for method in ("ycbcr", "icm"):
        figures = table_figures(output, method)
        assert len(figures) == 4 and all(0 < value < math.inf for value in figures)


def test_inference_benchmark_smoke(capsys, tmp_path):
    """Every runtime at the first size; the second is predicted over the (tiny) budget and left empty."""
    from skinseg.bench import inference as bench_inference

    bench_inference.main(["--models", "dlmv", "--sizes", "64", "128", "--runs", "1", "--no-compile", "--engines",
                          "qnnpack", "--budget", "1e-9", "--sequential-from", "64", "--out", str(tmp_path)])
    output = capsys.readouterr().out
    assert "ONNX Runtime int8 QDQ (qnnpack)" in output and "torch inference_mode" in output
    table = (tmp_path / "inference_time.md").read_text()
    assert "| model | runtime | 64 | 128 |" in table and "over the 1e-09 s budget" in table
    rows = [line for line in table.splitlines() if line.startswith("| dlmv |")]
    assert len(rows) == 4 and all(line.endswith(" |  |") for line in rows)  # 128: over budget
    assert (tmp_path / "inference_time.csv").read_text().count("dlmv") == 8
    measured = [float(row["seconds_per_image"]) for row in csv.DictReader((tmp_path / "inference_time.csv").open())
                if row["size"] == "64"]
    assert len(measured) == 4 and all(0 < seconds < math.inf for seconds in measured)  # not NaN, not zero

    # a rerun is refused without --overwrite; with it, it adds its cells and keeps the earlier ones
    rerun = ["--models", "dlmv", "--sizes", "96", "--runs", "1", "--no-compile", "--engines", "qnnpack",
             "--out", str(tmp_path)]
    before = (tmp_path / "inference_time.md").read_bytes()
    error = exit_2_message(bench_inference.main, rerun, capsys)
    assert str(tmp_path / "inference_time.md") in error and "--overwrite" in error
    assert (tmp_path / "inference_time.md").read_bytes() == before
    bench_inference.main([*rerun, "--overwrite"])
    table = (tmp_path / "inference_time.md").read_text()
    assert "| model | runtime | 64 | 96 | 128 |" in table and "8 cells kept from an earlier run" in table
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| dlmv |")]
    assert len(rows) == 4 and all(row[2] and row[3] and row[4] == " |" for row in rows)


def test_birefnet_benchmark_smoke(capsys, tmp_path):
    from skinseg.bench import birefnet as bench_birefnet

    bench_birefnet.main(["--sizes", "64", "--train-size", "64", "--precisions", "fp32", "--no-onnx", "--runs", "1",
                         "--out", str(tmp_path)])
    output = capsys.readouterr().out
    assert "train step PyTorch fp32 cpu + checkpointing" in output and "peak RSS GiB" in output
    rows = list(csv.DictReader((tmp_path / "birefnet_memory.csv").open()))
    assert len(rows) == 3
    assert all(0 < float(row[key]) < math.inf for row in rows for key in ("seconds", "peak_rss_bytes"))


def test_generalisation_study_trains_without_the_holdout_and_scores_it(tmp_path, capsys, cache_dir, monkeypatch):
    """Two recipes on two tiny datasets: trained once, reused on the second call, scored on the held-out set."""
    import json

    from skinseg.bench import generalisation

    from .conftest import write_dataset

    for name, seed in (("seen", 0), ("unseen", 50)):
        write_dataset(tmp_path / "data" / name, [f"{name}{i}" for i in range(6)], val=2, size=(40, 48), seed=seed)
    monkeypatch.setenv("SKINSEG_CACHE", str(cache_dir))
    argv = ["--holdout", "unseen", "--datasets", "seen", "unseen", "--data", str(tmp_path / "data"),
            "--model", "dlmv", "--size", "64", "--epochs", "1",
            "--set", "data.batch_size=2", "data.num_workers=0", "callbacks.rich_progress_bar=null",
            *tiny_overrides("dlmv"), "trainer.precision=32-true",
            "--recipe", "plain", "data.augment.seed26.p=0", "--recipe", "composite", "data.augment.composite.p=1.0",
            "--methods", "ycbcr", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out"),
            "--workers", "1"]
    generalisation.main(argv)
    table = (tmp_path / "out" / "holdout-unseen.md").read_text()
    assert "all 6 pairs" in table and "seen (2 pairs" in table
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| ")][1:]
    assert [row[0] for row in rows] == ["| plain", "| composite", "| ycbcr"]
    assert [row[7] for row in rows] == ["32-true", "32-true", ""]  # the precision each run trained in
    finished = json.loads((tmp_path / "runs" / "unseen" / "plain" / "finished.json").read_text())
    assert "data.datasets=[seen]" in finished["overrides"]

    stamp = (tmp_path / "runs" / "unseen" / "plain" / "finished.json").stat().st_mtime_ns
    generalisation.main([*argv, "--overwrite"])  # reused, not retrained
    assert (tmp_path / "runs" / "unseen" / "plain" / "finished.json").stat().st_mtime_ns == stamp
    error = exit_2_message(generalisation.main, [*argv[:argv.index("--recipe")], "--recipe", "plain",
                                                 "data.augment.seed26.p=1", *argv[argv.index("--methods"):],
                                                 "--overwrite"], capsys)
    assert "other overrides" in error


def test_scenes_study_trains_with_and_without_ccp_and_scores_scenes_and_views(tmp_path, capsys, cache_dir):
    """Two recipes, each trained with ccp and with ccp held out, scored on scenes, close-ups and views."""
    import json

    import numpy as np
    from PIL import Image

    from skinseg.bench import generalisation

    from .conftest import write_dataset

    data = tmp_path / "data"
    for name in (*generalisation.PUBLIC, "negatives"):
        write_dataset(data / name, [f"{name}{i}" for i in range(4)], val=2, size=(40, 48), seed=10 * len(name),
                      empty=name == "negatives")
    ccp = data / "ccp"
    for folder in ("images", "masks", "persons"):
        (ccp / folder).mkdir(parents=True)
    for i in range(4):
        silhouette = np.zeros((60, 40), np.uint8)
        silhouette[5:55, 10:30] = 255
        skin = np.zeros_like(silhouette)
        skin[5:20, 14:26] = 255
        image = np.full((60, 40, 3), (40, 60, 180), np.uint8)
        image[skin > 0] = (200, 150, 120)
        for folder, array in (("images", image), ("masks", skin), ("persons", silhouette)):
            Image.fromarray(array).save(ccp / folder / f"c{i}.png")
    (ccp / "splits.json").write_text(json.dumps({"train": ["c0", "c1"], "val": ["c2", "c3"]}))

    argv = ["--scenes", "--data", str(data), "--model", "dlmv", "--size", "64", "--epochs", "1",
            "--set", "data.batch_size=2", "data.num_workers=0", "callbacks.rich_progress_bar=null",
            *tiny_overrides("dlmv"), "trainer.precision=32-true", "data.val_view_images=2",
            "--recipe", "plain", "data.augment.seed26.p=0",
            "--recipe", "context", "data.augment.seed26.p=0", "data.augment.zoom_out.p=1.0", "data.augment.person_paste.p=1.0",
            "--methods", "ycbcr", "--view-images", "2", "--runs-dir", str(tmp_path / "runs"),
            "--out", str(tmp_path / "out"), "--workers", "1"]
    generalisation.main(argv)
    table = (tmp_path / "out" / "scenes.md").read_text()
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| ")][1:]
    assert [(row[0], row[1]) for row in rows] == [
        ("| plain", "yes"), ("| plain", "held out"), ("| context", "yes"), ("| context", "held out"), ("| ycbcr", "")]
    assert len(rows[0]) == 2 + 3 + 4 + 5 + 2  # recipe, ccp; scenes; close-ups; views + wall FPR; minutes, precision
    for row in rows:
        assert all(0.0 <= float(cell) <= 1.0 for cell in row[2:14])
    held_out = json.loads((tmp_path / "runs" / "scenes" / "context_ccp_held_out" / "finished.json").read_text())
    assert "data.people=null" in held_out["overrides"] and "data.augment.person_paste.p=0" in held_out["overrides"]
    assert any(item.startswith("data.datasets=[") and "ccp" not in item for item in held_out["overrides"])
    views = sorted(path.name for path in (cache_dir / "views").iterdir())
    assert views == ["dark_tone-2", "skin_wall-2", "small_people-2", "zoom_out-2"]


def test_protocol_trains_without_the_held_out_sets_for_equal_time_and_scores_them(tmp_path, capsys, cache_dir,
                                                                                    tiny_pretrained):
    """Two recipes on tiny stand-ins of the seven public sets: probed, trained for the same wall
    time, never on ccp/hgr_subset/lfw_faces, scored on them with lfw's skin-tone thirds; reused."""
    import csv
    import json

    from skinseg.bench import generalisation
    from skinseg.bench.protocol import HELD_OUT, TRAINED_ON

    from .conftest import write_dataset

    data = tmp_path / "data"
    for index, name in enumerate([*TRAINED_ON, *HELD_OUT]):
        write_dataset(data / name, [f"{name}{i}" for i in range(6)], val=3, size=(40, 48), seed=10 * index,
                      empty=name == "negatives")
    splits = json.loads((data / "lfw_faces" / "splits.json").read_text())
    splits["test"] = [splits["train"].pop()]  # the final report's: never trained on or scored here
    (data / "lfw_faces" / "splits.json").write_text(json.dumps(splits))
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "deeplabv3_mobilenet_v2_pascal.pt").write_bytes(tiny_pretrained.read_bytes())
    common = ["model.input_size=64", "data.batch_size=2", "data.num_workers=0", "callbacks.rich_progress_bar=null",
              "trainer.precision=32-true"]
    argv = ["--data", str(data), "--weights", str(weights), "--minutes", "0.02", "--probe-steps", "2",
            "--recipe", "scratch", "model=deeplabv3", *tiny_overrides("deeplabv3"), *common,
            "--recipe", "pascal", "model=deeplabv3", *tiny_overrides("deeplabv3"), *common,
            "model.encoder_weights=${paths.weights_dir}/deeplabv3_mobilenet_v2_pascal.pt",
            "--methods", "ycbcr", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out"),
            "--workers", "1", "--infer-sizes", "96", "--zoom", "2"]
    generalisation.main(argv)
    rows = list(csv.DictReader((tmp_path / "out" / "protocol.csv").open()))
    variants = ["", " zoom 2", " @96", " @96 zoom 2"]
    assert [row["recipe"] for row in rows] == [*(f"scratch{v}" for v in variants), *(f"pascal{v}" for v in variants),
                                               "ycbcr"]
    predicted = {path.name.rsplit("-", 1)[0] for path in (cache_dir / "predictions").iterdir()}
    assert {"scratch", "pascal", "pascal @96", "pascal @96 zoom 2"} <= predicted  # each scored under its own name
    for row in rows:
        for title in ("ccp val mIoU@0.5", "hgr_subset all", "lfw_faces val", "lfw darkest third", "sfa",
                      "negatives FPR"):
            assert 0.0 <= float(row[title]) <= 1.0, (row["recipe"], title)
    probe = json.loads((tmp_path / "runs" / "protocol" / "pascal" / "probe.json").read_text())
    assert probe["step_seconds"] > 0 and probe["steps"] == max(1, int(0.02 * 60 / probe["step_seconds"]))
    assert rows[4]["steps"] == str(probe["steps"]) and rows[4]["images_seen"] == str(2 * probe["steps"])
    finished = json.loads((tmp_path / "runs" / "protocol" / "pascal" / "run" / "finished.json").read_text())
    assert f"data.datasets=[{','.join(TRAINED_ON)}]" in finished["overrides"]
    assert f"trainer.max_steps={probe['steps']}" in finished["overrides"]
    stamp = (tmp_path / "runs" / "protocol" / "pascal" / "run" / "finished.json").stat().st_mtime_ns
    generalisation.main([*argv, "--overwrite"])  # probes and runs reused, not retrained
    assert (tmp_path / "runs" / "protocol" / "pascal" / "run" / "finished.json").stat().st_mtime_ns == stamp
    assert "Held-out protocol" in capsys.readouterr().out


def test_resize_benchmark_scores_the_interpolations_and_the_guided_upsampling(folder_dataset, tmp_path, capsys):
    import csv
    import math

    from skinseg.bench import resize as bench_resize

    bench_resize.main(["--data", str(folder_dataset.parent), "--datasets", folder_dataset.name, "--images", "2",
                       "--out", str(tmp_path)])
    assert "resizing in and out" in capsys.readouterr().out
    rows = list(csv.reader((tmp_path / "resize.csv").open()))
    assert rows[0][:5] == ["dataset", "images", "mIoU@0.5 lanczos", "mIoU@0.5 area in", "mIoU@0.5 guided out"]
    assert rows[0][-3:] == ["ms lanczos", "ms area in", "ms guided out"] and len(rows) == 2
    figures = [float(value) for value in rows[1][2:]]
    assert all(math.isfinite(value) for value in figures) and all(0 <= value <= 1 for value in figures[:6])
    assert all(value > 0 for value in figures[-3:])
    error = exit_2_message(bench_resize.main, ["--data", str(tmp_path / "nowhere")], capsys)
    assert "no such folder" in error


def test_session_benchmark_times_models_beside_the_shipped_one(tmp_path, capsys):
    import csv

    from skinseg.bench import session as session_bench
    from skinseg.export.onnx import export_onnx
    from skinseg.models import create_model
    from skinseg.models.head import ProbabilityHead

    from .conftest import TINY_NETS

    path = export_onnx(ProbabilityHead(create_model("u2netp", **TINY_NETS["u2netp"])), tmp_path / "tiny.onnx", 64,
                       metadata={"skinseg.input_size": 64, "skinseg.zoom": "2"})
    session_bench.main([str(path), "--runs", "1", "--megapixels", "0.05", "--out", str(tmp_path)])
    rows = list(csv.DictReader((tmp_path / "session_time.csv").open()))
    assert [row["model"] for row in rows] == ["shipped fp32", "shipped int8", "tiny.onnx"]
    assert rows[2]["zoom"] == "2" and all(float(row["large_skin_s"]) > 0 for row in rows)
    assert "ratio to the shipped fp32 model" in capsys.readouterr().out
    image = session_bench.photo(0.05, small_skin=True)
    assert image.shape == (183, 274, 3) and (image == session_bench.SKIN_RGB).all(axis=2).mean() < 0.05
