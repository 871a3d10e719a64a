"""Bad input at the entry points: one line on stderr naming the file and the fix, exit code 2, nothing lost."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from skinseg.checkpoints import load_network
from skinseg.errors import (
    DataError,
    NotAModelError,
    OutputExistsError,
    SkinsegError,
    UsageError,
    exit_on_user_error,
    user_error,
)
from skinseg.predict import main as predict_main

from .conftest import FP32, ROOT, exit_2_message


def run_entry_point(script: str, args: list[str], cache_dir, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "SKINSEG_CACHE": str(cache_dir), **env}
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=300)


def test_a_user_error_is_one_line_and_exit_code_2(capsys):
    def body():
        try:
            raise UsageError("data.batch_size must be >= 1, got 0")
        except UsageError as error:
            raise RuntimeError("a library wrapped it") from error  # as Hydra's instantiate does

    with pytest.raises(SystemExit) as stopped:
        exit_on_user_error(body)
    assert stopped.value.code == 2
    assert capsys.readouterr().err == "error: data.batch_size must be >= 1, got 0\n"
    with pytest.raises(RuntimeError):  # --debug / HYDRA_FULL_ERROR=1: the traceback
        exit_on_user_error(body, debug=True)
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        exit_on_user_error(lambda: 1 / 0)
    assert user_error(KeyError("x")) is None


def test_train_with_a_missing_data_folder(tmp_path, cache_dir):
    args = ["data=folder", f"data.root={tmp_path / 'nowhere'}", FP32, f"hydra.run.dir={tmp_path / 'run'}"]
    result = run_entry_point("train.py", args, cache_dir)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "nowhere does not exist" in errors[0] and "set data.root" in errors[0]
    assert "Traceback" not in result.stderr + result.stdout
    debug = run_entry_point("train.py", args, cache_dir, HYDRA_FULL_ERROR="1")
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_train_into_a_run_folder_with_checkpoints_keeps_them(tmp_path, cache_dir):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"earlier run")
    result = run_entry_point("train.py", ["debug=fdr", FP32, f"hydra.run.dir={run}"], cache_dir)
    assert result.returncode == 2 and "already holds checkpoints" in result.stderr
    assert "Traceback" not in result.stderr
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == b"earlier run"
    assert issubclass(OutputExistsError, FileExistsError)


def test_evaluate_with_an_unknown_method(tmp_path, cache_dir):
    result = run_entry_point("evaluate.py", ["methods=[skin_gpt]", f"output_dir={tmp_path}"], cache_dir)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: unknown classical methods ['skin_gpt']")
    assert "Traceback" not in result.stderr and not any(tmp_path.iterdir())


class PickledObject:
    """Not plain data: what a checkpoint from elsewhere may hold."""


def bad_checkpoints(folder) -> dict:
    """Files that are not skinseg checkpoints, by kind."""
    folder.mkdir(exist_ok=True)
    state = {"hyper_parameters": {"net": {"name": "u2netp"}}, "state_dict": {"net.w": torch.zeros(1000)}}
    torch.save(state, folder / "whole.ckpt")
    data = (folder / "whole.ckpt").read_bytes()
    files = {
        "text": b"this is a text file, not a checkpoint\n",
        "empty": b"",
        "truncated": data[: len(data) // 2],
        "random": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "pickled object": pickle.dumps(PickledObject()),  # weights_only loading refuses it
    }
    paths = {}
    for kind, content in files.items():
        paths[kind] = folder / f"{kind.replace(' ', '_')}.ckpt"
        paths[kind].write_bytes(content)
    torch.save({"weights": torch.zeros(3)}, folder / "other.ckpt")
    paths["another format"] = folder / "other.ckpt"
    return paths


def test_unreadable_checkpoints_are_named(tmp_path):
    for kind, path in bad_checkpoints(tmp_path / "ckpts").items():
        with pytest.raises(NotAModelError, match=f"not a skinseg checkpoint: {path}") as raised:
            load_network(path)
        assert "weights_only=False" not in str(raised.value), kind


def test_predict_with_bad_model_files(tmp_path, capsys):
    Image.fromarray(np.full((20, 30, 3), 120, np.uint8)).save(tmp_path / "photo.png")
    paths = bad_checkpoints(tmp_path / "ckpts")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf at all")
    for model, message in ((paths["text"], "not a skinseg checkpoint"), (paths["truncated"], "not a skinseg checkpoint"),
                           (broken, "not an ONNX model ONNX Runtime can load: " + str(broken))):
        argv = [str(tmp_path / "photo.png"), str(tmp_path / "out"), "--model", str(model)]
        assert message in exit_2_message(predict_main, argv, capsys)
    assert not (tmp_path / "out").exists()  # nothing written


def test_every_user_error_type_is_a_skinseg_error():
    from skinseg.io import DataError

    assert issubclass(DataError, SkinsegError) and issubclass(DataError, ValueError)


def test_an_image_over_the_pixel_limit_is_a_named_per_file_error(tmp_path, monkeypatch, capsys):
    """Too many pixels: named before decoding; predict skips that file and does the others."""
    from skinseg.io import MAX_PIXELS_VARIABLE, read_image

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.full((60, 80, 3), 120, np.uint8)).save(photos / "big.png")
    Image.fromarray(np.full((20, 30, 3), 120, np.uint8)).save(photos / "small.png")
    monkeypatch.setenv(MAX_PIXELS_VARIABLE, "1000")
    with pytest.raises(DataError, match=r"big.png: 80x60 = 4,800 pixels, over the limit of 1,000; .*SKINSEG_MAX_PIXELS"):
        read_image(photos / "big.png")
    assert predict_main([str(photos), str(tmp_path / "out"), "--model", "ycbcr"]) == 1
    output = capsys.readouterr().out
    assert "skipped:" in output and "big.png" in output and "1 written" in output
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["small.png"]
    monkeypatch.setenv(MAX_PIXELS_VARIABLE, str(300_000_000))  # raised above PIL's own limit
    assert read_image(photos / "big.png").shape == (60, 80, 3)


def test_predict_output_that_is_a_file_and_a_folder_named_like_an_image(tmp_path, capsys):
    from skinseg.io import read_image

    Image.fromarray(np.full((20, 30, 3), 120, np.uint8)).save(tmp_path / "photo.png")
    taken = tmp_path / "masks"
    taken.write_text("keep me")
    error = exit_2_message(predict_main, [str(tmp_path / "photo.png"), str(taken), "--model", "ycbcr"], capsys)
    assert "output folder" in error and taken.read_text() == "keep me"
    (tmp_path / "x.jpg").mkdir()
    with pytest.raises(DataError, match="x.jpg: is a folder, not an image file"):
        read_image(tmp_path / "x.jpg")


def test_export_help_lists_its_commands(capsys):
    from skinseg.export.cli import main as export_main

    with pytest.raises(SystemExit) as stopped:
        export_main(["--help"])
    text = capsys.readouterr().out
    assert stopped.value.code == 0 and all(command in text for command in ("export", "ship", "flops"))


@pytest.mark.parametrize("command", [[], ["export"], ["ship"]])
def test_export_commands_name_a_file_that_is_not_a_checkpoint(command, tmp_path, capsys):
    from skinseg.export.cli import main as export_main

    text_file = bad_checkpoints(tmp_path / "ckpts")["text"]
    out = tmp_path / "out"
    error = exit_2_message(export_main, [*command, "--ckpt", str(text_file), "--out", str(out)], capsys)
    assert error.startswith(f"error: not a skinseg checkpoint: {text_file}") and error.count("\n") == 1
    assert not out.exists() or not any(out.iterdir())
    with pytest.raises(NotAModelError):  # --debug: the traceback
        export_main([*command, "--ckpt", str(text_file), "--out", str(out), "--debug"])


def test_augment_into_its_source_and_a_missing_source(folder_dataset, tmp_path, capsys):
    from skinseg.augment.materialise import main as augment_main

    before = sorted(path.name for path in (folder_dataset / "images").iterdir())
    error = exit_2_message(augment_main, [str(folder_dataset), str(folder_dataset)], capsys)
    assert "is inside the source folder" in error
    assert sorted(path.name for path in (folder_dataset / "images").iterdir()) == before
    error = exit_2_message(augment_main, [str(tmp_path / "nowhere"), str(tmp_path / "out")], capsys)
    assert "nowhere: expected images/ and masks/ folders" in error and not (tmp_path / "out").exists()


def test_figures_and_benches_end_user_errors_in_one_line(tmp_path, capsys):
    from skinseg.bench.generalisation import main as generalisation_main
    from skinseg.figures.__main__ import main as figures_main

    error = exit_2_message(figures_main, ["compare", str(tmp_path / "none.png"), "--models", "hsv",
                                          "--out", str(tmp_path / "grid.gif")], capsys)
    assert "use a .jpg or .png file name" in error
    unfinished = tmp_path / "runs" / "scenes" / "flips_only"
    unfinished.mkdir(parents=True)
    error = exit_2_message(generalisation_main, ["--scenes", "--data", str(tmp_path), "--runs-dir",
                                                 str(tmp_path / "runs"), "--out", str(tmp_path / "tables"),
                                                 "--recipe", "flips only", "data.augment.seed26.p=0"], capsys)
    assert f"{unfinished} holds an unfinished run" in error


def test_train_with_a_mandatory_value_unset(tmp_path, cache_dir):
    result = run_entry_point("train.py", ["experiment=u2netp_scenes_refine", FP32, f"hydra.run.dir={tmp_path / 'run'}"],
                             cache_dir)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: the config leaves stage1_checkpoint unset (???): give them on the command line, "
                      "e.g. python train.py ... stage1_checkpoint=VALUE"]
    assert "Traceback" not in result.stderr + result.stdout and not (tmp_path / "run" / "checkpoints").exists()
