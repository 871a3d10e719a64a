"""`skinseg COMMAND [ARGS]`: one command, a module per subcommand, the same code as the separate entry points."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from PIL import Image

from skinseg.commands import COMMANDS, main
from skinseg.commands.bench import BENCHES

from .conftest import ROOT
from .test_faults import assert_one_error_line, run_cli


def test_every_subcommand_is_a_module_with_a_summary_and_the_help_lists_them(capsys):
    assert main(["--help"]) == 0
    listing = capsys.readouterr().out
    for name in COMMANDS:
        module = importlib.import_module(f"skinseg.commands.{name}")
        assert callable(module.run) and module.SUMMARY in listing and f"  {name} " in listing
    for name in BENCHES:
        assert callable(importlib.import_module(f"skinseg.bench.{name}").main)


@pytest.mark.parametrize("argv", [["nosuch"], ["bench", "nosuch"]])
def test_an_unknown_command_is_one_line_and_exit_code_2(argv, tmp_path):
    assert_one_error_line(run_cli(["-m", "skinseg", *argv], tmp_path), "unknown", "skinseg")


def test_a_subcommand_runs_as_its_own_entry_point_does(tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((24, 32, 3), (200, 140, 110), np.uint8)).save(photo)
    completed = run_cli(["-m", "skinseg", "predict", str(photo), str(tmp_path / "masks"), "--model", "hsv"], tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert (tmp_path / "masks" / "photo.png").is_file()
    completed = run_cli(["-m", "skinseg", "train", "model=nosuch"], tmp_path)
    assert_one_error_line(completed, "model/nosuch")


@pytest.mark.parametrize("name", BENCHES)
def test_every_bench_reads_its_defaults_from_configs(name, monkeypatch, capsys):
    """configs/commands/bench.yaml holds the benches' defaults: each of its values is its option's default."""
    import yaml

    from skinseg import settings

    parsers = []
    apply_defaults = settings.set_command_defaults

    def recording(parser, command, section):
        parsers.append(parser)
        apply_defaults(parser, command, section)

    module = importlib.import_module(f"skinseg.bench.{name}")
    monkeypatch.setattr(module, "set_command_defaults", recording)
    with pytest.raises(SystemExit) as stopped:
        module.main(["--help"])
    assert stopped.value.code == 0 and len(parsers) == 1
    defaults = yaml.safe_load((ROOT / "configs" / "commands" / "bench.yaml").read_text())[name]
    assert {key: parsers[0].get_default(key) for key in defaults} == defaults


def test_export_reads_its_defaults_from_configs(monkeypatch, tmp_path):
    import argparse

    from skinseg import settings
    from skinseg.export.cli import build_parser

    arguments = build_parser().parse_args(["export", "--ckpt", "any.ckpt"])
    assert (arguments.calibration_images, arguments.parity_images, str(arguments.out)) == (64, 8, "exports")
    (tmp_path / "export.yaml").write_text("export:\n  calibration_image: 32\n")
    monkeypatch.setattr(settings, "COMMAND_CONFIGS", tmp_path)
    parser = argparse.ArgumentParser(prog="export")
    parser.add_argument("--calibration-images", type=int)
    with pytest.raises(ValueError, match=r"\['calibration_image'\] are not options of export"):
        settings.set_command_defaults(parser, "export", "export")
