"""Command line of export.py: ONNX export of a checkpoint, or the FLOP table."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from skinseg.errors import (
    ArgumentParser,
    MissingFileError,
    OutputExistsError,
    add_debug_option,
    at_least,
    user_command,
)
from skinseg.files import refuse_existing
from skinseg.settings import set_command_defaults


def add_flops_arguments(parser: argparse.ArgumentParser) -> None:
    from skinseg.models import MODELS

    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), help="default: the original's rows")
    parser.add_argument("--sizes", nargs="+", type=at_least(32),
                        help="input sizes for --models (default 320 512 1024)")
    parser.add_argument("--mode", choices=("train", "eval"),
                        help="fvcore mode for --models rows (the original's rows use the original's modes)")
    parser.add_argument("--deformable-uncounted", action="store_true",
                        help="leave BiRefNet_lite's deformable convs uncounted, as the original's figures did")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def run_flops(args: argparse.Namespace) -> int:
    from skinseg.export.flops import REFERENCE_ROWS, flops_table, markdown, write_flops

    if args.out.is_dir():
        raise OutputExistsError(f"--out {args.out} is a folder; give the path of the Markdown file to write")
    if not args.overwrite:
        refuse_existing([args.out], "pass --overwrite to replace it, or another --out")
    rows = REFERENCE_ROWS
    if args.models:
        rows = [(model, size, args.mode) for model in args.models for size in (args.sizes or (320, 512, 1024))]
    table = flops_table(rows, count_deformable=not args.deformable_uncounted)
    Console(soft_wrap=True).print(markdown(table), markup=False)
    Console().print(f"wrote {write_flops(table, args.out)}")
    return 0


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    from skinseg.quant import ENGINES

    parser.add_argument("--ckpt", type=Path,
                        help="a skinseg .ckpt (default: the newest best-*.ckpt under logs/)")
    parser.add_argument("--out", type=Path, help="output folder (default %(default)s)")
    parser.add_argument("--name", help="file name stem (default: the model's registry name)")
    parser.add_argument("--size", type=int, help="example input size (default: the checkpoint's)")
    parser.add_argument("--data", nargs="+", help="folder datasets for the checks (default: the run's data)")
    parser.add_argument("--quantize", nargs="+", choices=ENGINES, metavar="ENGINE",
                        help=f"also write int8 models for these engines ({', '.join(ENGINES)})")
    parser.add_argument("--calibration-images", type=at_least(1),
                        help="training images for PTQ (default %(default)s)")
    parser.add_argument("--eval-images", type=at_least(1),
                        help="validation images scored with --quantize (default all)")
    parser.add_argument("--parity-images", type=int)
    add_small_skin_arguments(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")


def add_small_skin_arguments(parser: argparse.ArgumentParser) -> None:
    from skinseg.inference.processing import DEFAULT_ZOOM_BELOW

    parser.add_argument("--zoom", type=float,
                        help="small-skin pass written into the files: a second pass at this many times --size when "
                             "the largest skin region is under --zoom-below of the frame (default %(default)s)")
    parser.add_argument("--zoom-below", type=float, default=DEFAULT_ZOOM_BELOW,
                        help=f"largest skin region share that triggers --zoom (default {DEFAULT_ZOOM_BELOW})")


def run_export(args: argparse.Namespace) -> int:
    from skinseg.checkpoints import newest_checkpoint
    from skinseg.export.checkpoint import dataset_table, export_checkpoint, figure

    console = Console(soft_wrap=True)
    if args.ckpt is None:
        args.ckpt = newest_checkpoint("logs")
        console.print(f"--ckpt not given: using the newest checkpoint, {escape(str(args.ckpt))}", highlight=False)
    with console.status("exporting") as status:
        card = export_checkpoint(args.ckpt, args.out, args.name, args.size, args.data, args.parity_images,
                                 args.quantize, args.calibration_images, args.eval_images, args.overwrite,
                                 progress=status.update, zoom=args.zoom, zoom_below=args.zoom_below)
    for file_name, info in card["files"].items():
        console.print(f"wrote {escape(str(args.out / file_name))} ({info['bytes'] / 1e6:.2f} MB)", highlight=False)
    if "parity_max_abs_probability" in card["onnx"]:
        console.print(f"fp32 ONNX Runtime vs PyTorch: max |Δp| = {card['onnx']['parity_max_abs_probability']:.2e} "
                      f"on {card['onnx']['parity_images']} validation images")
    for engine, info in card["int8"].items():
        torch_diff, float_diff = info["onnx_vs_torch_int8"], info["vs_float_at_model_size"]
        console.print(f"int8 {engine} ({info['method']}): ONNX Runtime vs PyTorch int8 mean |Δp| "
                      f"{torch_diff['mean_abs']:.4f}; vs float mean |Δp| {float_diff['mean_abs']:.4f} "
                      f"(max {float_diff['max_abs']:.3f})")
    evaluation = card["validation_at_full_resolution"]
    if evaluation:
        table = Table(title=f"validation, {evaluation['images']} images at full resolution")
        for column in ("model", "mIoU", "mIoU@0.5", f"mean |Δ| vs {evaluation['reference']}", "same decision"):
            table.add_column(column)
        for label, scores in evaluation["scores"].items():
            table.add_row(label, figure(scores["miou"]), figure(scores["miou50"]),
                          f"{scores['mean_abs_diff']:.4f}", f"{scores['same_decision']:.2%}")
        console.print(table)
        header, rows = dataset_table(evaluation)
        per_dataset = Table(title="per dataset (mIoU@0.5 and F1 over images with skin; FPR: share of non-skin "
                                  "pixels called skin)")
        for column in header:
            per_dataset.add_column(column)
        for row in rows:
            per_dataset.add_row(*row)
        console.print(per_dataset)
    console.print(f"model card: {escape(str(args.out / (card['name'] + '.json')))}", highlight=False)
    return 0


def add_ship_arguments(parser: argparse.ArgumentParser) -> None:
    from skinseg.inference.session import DEFAULT_MODEL_DIR
    from skinseg.quant import ENGINES

    parser.add_argument("--ckpt", type=Path,
                        help="a skinseg .ckpt (default: the newest best-*.ckpt under logs/)")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_DIR, help=f"default {DEFAULT_MODEL_DIR}")
    parser.add_argument("--engine", choices=ENGINES, help="int8 engine (default %(default)s)")
    parser.add_argument("--data", nargs="+", help="folder datasets for the checks (default: the run's data)")
    parser.add_argument("--calibration-images", type=at_least(1))
    parser.add_argument("--eval-images", type=at_least(1),
                        help="validation images for the int8 check (default all)")
    parser.add_argument("--notes", type=Path,
                        help="a Markdown file added to MODEL_CARD.md (limitations, status)")
    parser.add_argument("--size", type=int,
                        help="the input side Session runs it at (default: the checkpoint's)")
    add_small_skin_arguments(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace the shipped model")


def run_ship(args: argparse.Namespace) -> int:
    from skinseg.checkpoints import newest_checkpoint
    from skinseg.export.ship import ship_checkpoint

    console = Console(soft_wrap=True)
    checkpoint = args.ckpt or newest_checkpoint("logs")
    if args.notes and not args.notes.is_file():
        raise MissingFileError(f"--notes {args.notes}: no such file")
    notes = args.notes.read_text() if args.notes else ""
    with console.status("shipping") as status:
        card = ship_checkpoint(checkpoint, args.out, args.engine, args.data, args.calibration_images,
                               args.eval_images, notes, args.overwrite, progress=status.update, size=args.size,
                               zoom=args.zoom, zoom_below=args.zoom_below)
    for file_name, info in card["files"].items():
        console.print(f"wrote {escape(str(args.out / file_name))} ({info['bytes'] / 1e6:.2f} MB)", highlight=False)
    console.print(f"model card: {escape(str(args.out / 'MODEL_CARD.md'))}", highlight=False)
    return 0


COMMANDS = {
    "export": ("export a checkpoint to ONNX, fp32 and optionally int8 (the default command)",
               add_export_arguments, run_export),
    "ship": ("make a checkpoint the package's default skin segmenter", add_ship_arguments, run_ship),
    "flops": ("fvcore FLOP and parameter table", add_flops_arguments, run_flops),
}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python export.py",
        description="Export trained models and count FLOPs. Without a command, `export` runs: "
                    "`python export.py --ckpt X` is `python export.py export --ckpt X`.",
    )
    commands = parser.add_subparsers(dest="command", metavar="{export,ship,flops}")
    for name, (summary, add_arguments, _) in COMMANDS.items():
        command = commands.add_parser(name, help=summary, description=summary[0].upper() + summary[1:])
        add_arguments(command)
        add_debug_option(command)
        set_command_defaults(command, "export", name)
    return parser


@user_command
def main(argv: Sequence[str]) -> int:
    """Runs `python export.py [export|ship|flops] ...`; returns the exit code (2 for a user error)."""
    argv = list(argv)
    if not argv or argv[0] not in (*COMMANDS, "-h", "--help"):
        argv.insert(0, "export")
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command][2](args)
