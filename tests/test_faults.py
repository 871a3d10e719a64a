"""Faults a user meets, run as a user runs them: exit code 2, one `error:` line, nothing written lost."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT


def snapshot(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under `folder`, by relative path (hidden files included)."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def run_cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "ignore", **env})


def assert_one_error_line(completed: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit code 2, no traceback, exactly one non-empty stderr line, starting `error:` and naming `fragments`."""
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert completed.returncode == 2, completed.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), completed.stderr[-2000:]
    assert "Traceback" not in completed.stdout + completed.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_a_refused_training_run_leaves_the_earlier_runs_record_untouched(tmp_path):
    run = tmp_path / "earlier"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"the earlier run's weights")
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text("model: the earlier run's\n")
    (run / ".hydra" / "overrides.yaml").write_text("- model=u2netp\n")
    (run / "train.log").write_text("the earlier run's log\n")
    before = snapshot(run)
    completed = run_cli([str(ROOT / "train.py"), f"hydra.run.dir={run}", "trainer.max_epochs=1"], tmp_path)
    assert_one_error_line(completed, "already holds checkpoints", str(run / "checkpoints"))
    assert snapshot(run) == before
    assert "Seed set" not in completed.stdout + completed.stderr


def test_flops_never_replaces_a_file_it_did_not_write(tmp_path):
    table = tmp_path / "flops.md"
    table.write_text("a table someone wrote by hand\n")
    completed = run_cli([str(ROOT / "export.py"), "flops", "--models", "dlmv", "--sizes", "64", "--out", str(table)],
                        tmp_path)
    assert_one_error_line(completed, str(table), "--overwrite")
    assert table.read_text() == "a table someone wrote by hand\n"
    completed = run_cli([str(ROOT / "export.py"), "flops", "--models", "dlmv", "--sizes", "64", "--out", str(table),
                         "--overwrite"], tmp_path)
    assert completed.returncode == 0 and "| dlmv" in table.read_text()


def test_tables_of_an_earlier_run_are_kept_unless_overwrite_says_so(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "results.md").write_text("the table of an earlier evaluation\n")
    before = snapshot(results)
    completed = run_cli([str(ROOT / "evaluate.py"), "methods=[hsv]", f"output_dir={results}"], tmp_path)
    assert_one_error_line(completed, str(results / "results.md"), "overwrite=true")
    assert snapshot(results) == before
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "session_time.csv").write_text("model,input_size\n")
    completed = run_cli(["-m", "skinseg.bench.session", "--out", str(bench)], tmp_path)
    assert_one_error_line(completed, str(bench / "session_time.csv"), "--overwrite")
    assert (bench / "session_time.csv").read_text() == "model,input_size\n"


def test_dataset_names_are_names_not_paths(tmp_path, cfg_factory):
    import pytest
    from hydra.utils import instantiate

    from skinseg.errors import UsageError, user_error

    outside = tmp_path / "outside"
    for setting, name in (("datasets", f"[{outside}]"), ("datasets", "[../outside]"), ("datasets", "[a/b]"),
                          ("backgrounds", "../outside"), ("train_on_val", "[..]")):
        cfg = cfg_factory(["data=public", f"data.root={tmp_path / 'data'}", f"data.{setting}={name}"])
        with pytest.raises(Exception, match="is not a dataset name") as raised:  # wrapped by instantiate
            instantiate(cfg.data, _convert_="all")
        assert isinstance(user_error(raised.value), UsageError) and f"data.{setting}:" in str(user_error(raised.value))
    completed = run_cli([str(ROOT / "train.py"), "data=public", f"data.root={tmp_path / 'data'}",
                         "data.datasets=[../outside]", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert_one_error_line(completed, "data.datasets", "is not a dataset name")
    assert not outside.exists()


def test_resuming_from_a_bad_checkpoint_is_one_line(tmp_path):
    import pytest
    import torch

    from skinseg.checkpoints import check_resume_checkpoint
    from skinseg.errors import MissingFileError, NotAModelError
    from skinseg.models import create_model

    class Payload:
        def __reduce__(self):
            return (print, ("unpickled",))

    torch.save({"state_dict": Payload()}, tmp_path / "pickled.ckpt")
    completed = run_cli([str(ROOT / "train.py"), f"ckpt_path={tmp_path / 'pickled.ckpt'}",
                         f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    line = assert_one_error_line(completed, "not a skinseg checkpoint", "UnpicklingError")
    assert "weights_only" not in line and "unpickled" not in completed.stdout
    with pytest.raises(MissingFileError, match="no such file"):
        check_resume_checkpoint(tmp_path / "missing.ckpt")
    other = {"hyper_parameters": {"net": {"name": "u2netp"}},
             "state_dict": {f"net.stage{i}.conv.weight": torch.zeros(1) for i in range(2000)}}
    torch.save(other, tmp_path / "other.ckpt")
    with pytest.raises(NotAModelError, match="another network \\(u2netp") as raised:
        check_resume_checkpoint(tmp_path / "other.ckpt", create_model("dlmv"))
    assert len(str(raised.value)) < 600


def test_config_mistakes_are_one_line(tmp_path, capsys):
    import pytest

    from skinseg.cli import check_composition

    cases = {
        "model=nosuch": ["model/nosuch", "u2netp, unet"],
        "trainer.max_epoch=3": ["trainer.max_epoch"],
        "data.batch_size=[": ["no viable alternative"],
    }
    for override, fragments in cases.items():
        with pytest.raises(SystemExit) as stopped:
            check_composition("train", [override])
        error = capsys.readouterr().err.strip()
        assert stopped.value.code == 2 and error.count("\n") == 0 and error.startswith("error: "), error
        assert all(fragment in error for fragment in fragments), error
    check_composition("train", ["model=unet"])  # a valid one passes
    for override, fragments in {"model.optimizer.lr=fast": ["'fast'"], "model.optimizer.lr=-1": ["> 0"]}.items():
        completed = run_cli([str(ROOT / "train.py"), override, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
        assert_one_error_line(completed, "model.optimizer.lr", *fragments)
    assert not (tmp_path / "run" / "checkpoints").exists()
    completed = run_cli([str(ROOT / "evaluate.py"), "methods=[hsv]", "data=nosuch"], tmp_path)
    assert_one_error_line(completed, "data/nosuch")
    completed = run_cli([str(ROOT / "evaluate.py"), "methods=[hsv]", "workers=-1", f"output_dir={tmp_path}"], tmp_path)
    assert_one_error_line(completed, "workers must be an integer >= 1")


def test_values_of_the_wrong_type_or_range_are_refused_before_anything_runs(tmp_path, cfg_factory):
    """Types from the constructors' hints, ranges Lightning would fail on mid-run or ignore (one line:
    every UsageError is, as the CLI cases above show)."""
    import pytest
    import torch

    from skinseg.errors import user_error
    from skinseg.training import train

    cases = {"trainer.max_epochs=abc": "trainer.max_epochs must be an integer or null, got 'abc'",
             "data.batch_size=2.5": "data.batch_size must be an integer, got 2.5",
             "trainer.check_val_every_n_epoch=0": "trainer.check_val_every_n_epoch must be >= 1 or null, got 0",
             "trainer.gradient_clip_val=-1": "trainer.gradient_clip_val must be >= 0 or null, got -1",
             "data.val_fraction=1.5": "data.val_fraction must be in [0, 1), got 1.5",
             "seed=abc": "seed must be a whole number from 0 to 2**32 - 1, or null, got 'abc'",
             "seed=-1": "got -1",  # Lightning would train with a random seed instead
             "test=maybe": "test must be true or false, got 'maybe'",
             "threads=100000": "threads must be 'auto' or 1 to"}
    if not torch.cuda.is_available():
        cases["trainer=gpu"] = "trainer: No supported gpu backend found!"
    for override, message in cases.items():
        cfg = cfg_factory([override])
        with pytest.raises(Exception) as raised:  # noqa: PT011 - Hydra may wrap it; the CLI unwraps it as here
            train(cfg)
        assert message in str(user_error(raised.value)), raised.value
        assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()


def test_an_image_too_large_to_decode_is_skipped_by_name(tmp_path, monkeypatch, capsys):
    import numpy as np
    from PIL import Image

    from skinseg.predict import main as predict_main

    photos = tmp_path / "in"
    photos.mkdir()
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(photos / "huge.png")  # over twice PIL's limit below
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(photos / "small.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    monkeypatch.setenv("SKINSEG_MAX_PIXELS", "100")
    assert predict_main([str(photos), str(tmp_path / "out"), "--model", "hsv"]) == 1
    text = capsys.readouterr().out
    assert "huge.png: too large to decode" in text and (tmp_path / "out" / "small.png").is_file()
    monkeypatch.setenv("SKINSEG_MAX_PIXELS", "abc")
    completed = run_cli(["-m", "skinseg.predict", str(photos), str(tmp_path / "out2"), "--model", "hsv"], tmp_path,
                        SKINSEG_MAX_PIXELS="abc")
    assert_one_error_line(completed, "SKINSEG_MAX_PIXELS='abc'")


def test_export_refuses_bad_values_and_unwritable_places_in_one_line(tmp_path, capsys):
    from skinseg.export.cli import main as export_main

    from .conftest import exit_2_message

    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    checkpoint = tmp_path / "any.ckpt"
    cases = {
        ("--size", "0"): "--size must be >= 32",
        ("--parity-images", "0"): "--parity-images must be >= 1",
        ("--name", "a/b"): "without folders",
        ("--out", str(a_file)): "is a file",
        ("--zoom", "0.5"): "--zoom must be 0 (no small-skin pass) or a factor in (1, 4], got 0.5",
    }
    for extra, fragment in cases.items():
        error = exit_2_message(export_main, ["export", "--ckpt", str(checkpoint), *extra], capsys)
        lines = error.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], error
    assert a_file.read_text() == "not a folder"


def test_an_unwritable_output_is_one_line_naming_it():
    import errno

    from skinseg.errors import user_error

    for code in (errno.EACCES, errno.EROFS, errno.ENOSPC):
        found = user_error(OSError(code, os.strerror(code), "/out/mask.png"))
        assert found is not None and str(found).startswith("/out/mask.png: ")
    assert user_error(OSError(errno.ECONNRESET, "reset")) is None  # not the user's to fix: a traceback


def test_augment_refuses_a_negative_worker_count(folder_dataset, tmp_path, capsys):
    from skinseg.augment.materialise import main as augment_main

    from .conftest import exit_2_message

    error = exit_2_message(augment_main, [str(folder_dataset), str(tmp_path / "out"), "--workers", "-1"], capsys)
    assert error.count("\n") == 1 and "--workers: '-1': must be a whole number >= 1" in error
    assert not (tmp_path / "out").exists()


def test_the_gallery_never_replaces_a_file_and_wants_the_images_own_mask(folder_dataset, capsys):
    from skinseg.augment.materialise import main as augment_main

    from .conftest import exit_2_message

    image, mask = folder_dataset / "images" / "img00.png", folder_dataset / "masks" / "img00.png"
    before = snapshot(folder_dataset)
    error = exit_2_message(augment_main, ["--gallery", str(image), str(mask), str(image)], capsys)
    assert error.count("\n") == 1 and f"{image} already exists" in error and "--overwrite" in error
    other_mask = folder_dataset / "masks" / "img09.png"  # 9 rows taller (grow=1)
    error = exit_2_message(augment_main, ["--gallery", str(image), str(other_mask), str(folder_dataset / "g.png")],
                           capsys)
    assert error.count("\n") == 1 and "give the mask drawn for that image" in error
    assert snapshot(folder_dataset) == before


def test_numeric_arguments_are_refused_outside_their_rules(tmp_path, capsys):
    """Each would have run out of memory (--size 99999), ended in a traceback (--zoom nan), started a
    thousand threads, or been ignored (--overlap without --tile)."""
    from skinseg.bench.session import main as bench_session_main
    from skinseg.predict import main as predict_main

    from .conftest import exit_2_message

    photo = tmp_path / "photo.png"
    photo.write_bytes(b"never read: the arguments are refused first")
    cases = {
        ("--size", "99999"): "--size: '99999': must be an input side of 1 to 4096 px",
        ("--zoom", "nan"): "--zoom: 'nan': must be 0 (no small-skin pass) or a factor in (1, 4]",
        ("--zoom", "0.5"): "(1, 4]",
        ("--zoom-below", "2"): "--zoom-below: '2': must be a share of the frame in (0, 1]",
        ("--threads", "100000"): "--threads: '100000': must be a thread count from 1 to",
        ("--tile", "10"): "--tile: '10': must be a whole number >= 32",
        ("--overlap", "8"): "--overlap is the overlap of --tile's tiles; give --tile too",
        ("--tile", "64", "--overlap", "64"): "the overlap must be smaller than the tile",
    }
    for extra, fragment in cases.items():
        error = exit_2_message(predict_main, [str(photo), str(tmp_path / "out"), *extra], capsys)
        assert error.count("\n") == 1 and fragment in error and "python -m skinseg.predict --help" in error, error
    error = exit_2_message(bench_session_main, ["--runs", "0"], capsys)
    assert "--runs: '0': must be a whole number >= 1" in error
    assert not (tmp_path / "out").exists()


def test_data_folders_are_checked_before_anything_runs(tmp_path, folder_dataset, cfg_factory):
    import pytest

    from skinseg.data.folder import dataset_folders
    from skinseg.errors import DataError, UsageError

    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    with pytest.raises(UsageError, match="data.root .*notes.txt is a file"):
        dataset_folders(a_file, ["sfa"])
    with pytest.raises(UsageError, match=r"no nosuch under .*; the datasets there: toy \("):
        dataset_folders(tmp_path, ["toy", "nosuch"])
    with pytest.raises(DataError, match="nosuch does not exist"):
        dataset_folders(tmp_path / "nosuch")
    with pytest.raises(UsageError, match="is a dataset, but data=demo generates synthetic images there; train on "
                                         "it with data=folder"):
        dataset_folders(folder_dataset, None, {"seed": 0})
    assert not any(path.name.startswith("demo") for path in folder_dataset.iterdir())


def test_caches_of_the_wrong_shape_are_rebuilt_with_a_warning(tmp_path, monkeypatch, caplog, folder_dataset):
    import json
    import logging
    import warnings

    from skinseg.data.folder import FolderIndex
    from skinseg.inference import session as session_module

    cache = tmp_path / "cache"
    first = FolderIndex(folder_dataset, name="toy", cache_dir=cache).samples
    for index_file in (cache / "index").glob("*.json"):
        index_file.write_text(json.dumps({"version": 1, "pairs": {"a": 3}}))  # valid JSON, not an index
    with caplog.at_level(logging.WARNING):
        again = FolderIndex(folder_dataset, name="toy", cache_dir=cache).samples
    assert again == first and "not a dataset index; rebuilding it" in caplog.text

    monkeypatch.setenv("SKINSEG_CACHE", str(tmp_path))
    monkeypatch.setattr(session_module, "time_models", lambda paths, size, threads: [0.3, 0.2])
    timings = tmp_path / "runtime_choice.json"
    session_module.choose_shipped_precision(threads=2)
    keys = list(json.loads(timings.read_text()))
    for wrong in (["a list"], dict.fromkeys(keys, "not timings")):  # valid JSON, not a timing cache
        timings.write_text(json.dumps(wrong))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            choice = session_module.choose_shipped_precision(threads=2)
        assert choice.precision == "int8" and any("not a timing cache" in str(w.message) for w in caught)
        assert json.loads(timings.read_text())[keys[0]] == [0.3, 0.2]


def test_an_onnx_files_metadata_chooses_settings_only_within_their_rules(tmp_path):
    """A crafted file cannot make Session run at 100 000 px or with an unknown mode; one line names it."""
    import numpy as np
    import onnx
    from PIL import Image

    from skinseg.inference.session import DEFAULT_MODEL_DIR

    model = onnx.load(str(DEFAULT_MODEL_DIR / "unet_skin.int8.onnx"))
    Image.fromarray(np.full((40, 48, 3), 180, np.uint8)).save(tmp_path / "photo.png")
    for key, value in {"skinseg.input_size": "100000", "skinseg.zoom": "0.5", "skinseg.resize": "stretch",
                       "skinseg.zoom_below": "nan"}.items():
        crafted = onnx.ModelProto()
        crafted.CopyFrom(model)
        entry = next((prop for prop in crafted.metadata_props if prop.key == key), None)
        if entry is None:
            entry = crafted.metadata_props.add()
            entry.key = key
        entry.value = value
        path = tmp_path / "crafted.onnx"
        onnx.save(crafted, str(path))
        completed = run_cli(["-m", "skinseg.predict", str(tmp_path / "photo.png"), str(tmp_path / "masks"),
                             "--model", str(path)], tmp_path)
        assert_one_error_line(completed, str(path), f"{key}={value!r}", "re-export")
    assert not (tmp_path / "masks").exists() or not any((tmp_path / "masks").iterdir())
