"""Skin masks for an image or a folder of images: `python -m skinseg.predict INPUT OUTPUT_DIR [--model M]`.

`--model` is an exported `.onnx` (run with `skinseg.inference.Session`), a `.ckpt`
checkpoint (`TorchSession`) or a classical method name (`skinseg.classical.METHODS`);
without it, the skin segmenter shipped in the package (`skinseg/inference/default_model/`,
see its MODEL_CARD.md), fp32 or int8, whichever runs faster on this machine where the
int8 file agrees with fp32 (`--precision fp32|int8` chooses); the summary names it.
Writes `OUTPUT_DIR/STEM.png` (uint8 0-255 mask) and, with `--cutout`,
`OUTPUT_DIR/STEM_cutout.png` (RGBA, alpha = mask) for every image (a folder: its
images one level deep). Outputs already there are kept (a rerun resumes) unless
`--overwrite`. Unreadable files are reported and skipped; the exit code is 1 if any
image failed, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from PIL import Image
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from skinseg.errors import (
    ArgumentParser,
    UsageError,
    add_debug_option,
    at_least,
    checked,
    thread_count,
    user_command,
)
from skinseg.inference.factory import create_predictor
from skinseg.inference.processing import SETTING_RULES, cutout
from skinseg.io import DataError, list_images, read_image, save_png

MIN_TILE = 32  # the networks downsample by up to 32; a smaller tile is mostly padding


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m skinseg.predict", description=__doc__.splitlines()[0])
    parser.add_argument("input", type=Path, help="an image file, or a folder of images (not recursive)")
    parser.add_argument("output_dir", type=Path, help="folder for STEM.png masks (not the input folder)")
    parser.add_argument("--model", help="a .onnx, a .ckpt or a classical method name; default: the shipped skin segmenter")
    parser.add_argument("--precision", choices=("auto", "fp32", "int8"), default="auto",
                        help="the shipped model's file: auto (the faster here, where int8 agrees with fp32), "
                             "fp32 or int8")
    parser.add_argument("--cutout", action="store_true", help="also write STEM_cutout.png (RGBA)")
    parser.add_argument("--tile", type=at_least(MIN_TILE), help="tiled inference at native resolution with this tile side")
    parser.add_argument("--overlap", type=at_least(0), help="tile overlap in pixels (default: 64, at most tile/4)")
    parser.add_argument("--size", type=checked(*SETTING_RULES["size"]), help="network input side (default: the model's)")
    parser.add_argument("--letterbox", action="store_true", help="keep the aspect ratio (default: model's)")
    parser.add_argument("--normalize", choices=("minmax", "none"),
                        help="min-max rescale each mask (default: minmax for .onnx, none for .ckpt)")
    parser.add_argument("--upsample", choices=("guided", "lanczos"),
                        help="resize back to the image: guided (edges follow the image's; skinseg's exports) "
                             "or lanczos (the original's); default: the model's")
    parser.add_argument("--zoom", type=checked(*SETTING_RULES["zoom"]),
                        help="small-skin pass: when the largest skin region is under --zoom-below of the frame, "
                             "run again at this many times the input side (0: off; default: the model's)")
    parser.add_argument("--zoom-below", type=checked(*SETTING_RULES["zoom_below"]), help="largest skin region share that triggers --zoom")
    parser.add_argument("--postprocess", action="store_true", help="open (3x3 ellipse), Gaussian 9x9 σ 2")
    parser.add_argument("--threads", type=thread_count,
                        help="CPU threads for the model (default: the physical cores this process may use)")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo images whose outputs exist (default: keep them, so a rerun resumes)")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    if args.overlap is not None and args.tile is None:
        parser.error("--overlap is the overlap of --tile's tiles; give --tile too")
    if args.overlap is None:
        args.overlap = min(64, (args.tile or 0) // 4)
    if args.tile is not None and args.overlap >= args.tile:
        parser.error(f"--tile {args.tile} --overlap {args.overlap}: the overlap must be smaller than the tile")
    return args


def check_output_dir(input_path: Path, output_dir: Path) -> None:
    """Refuses an output path that is a file, or the input's folder (STEM.png could overwrite an input)."""
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"output folder {output_dir} is a file; choose a folder for the masks")
    input_dir = input_path if input_path.is_dir() else input_path.parent
    if output_dir.resolve() == input_dir.resolve():
        raise UsageError(
            f"output folder {output_dir} is the input folder: masks named STEM.png could overwrite "
            "input images; choose another output folder"
        )


@user_command
def main(argv: Sequence[str]) -> int:
    """Runs the command line; returns the exit code (0 ok, 1 some images failed, 2 bad arguments)."""
    args = parse_args(argv)
    console = Console(soft_wrap=True)
    images = list_images(args.input)
    check_output_dir(args.input, args.output_dir)
    model = create_predictor(args.model, args.size, args.letterbox, args.normalize, args.postprocess,
                           args.threads, args.tile, args.overlap, args.precision, args.upsample,
                           args.zoom, args.zoom_below)
    console.print(f"model: {escape(model.description)}", highlight=False)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    written = failed = kept = 0
    owners: dict[Path, Path] = {}  # output file -> the input it is written for, in this run
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        for path in progress.track(images, description="predicting"):
            try:
                outputs = [args.output_dir / f"{path.stem}.png"]
                outputs += [args.output_dir / f"{path.stem}_cutout.png"] if args.cutout else []
                taken = [output for output in outputs if output in owners]
                if taken:
                    raise DataError(f"{path}: its output {taken[0].name} is also {owners[taken[0]].name}'s; "
                                    "rename one of them")
                owners.update(dict.fromkeys(outputs, path))
                if not args.overwrite and all(output.exists() for output in outputs):
                    kept += 1
                    continue
                rgb = read_image(path)
            except DataError as error:
                progress.console.print(f"[yellow]skipped:[/] {escape(str(error))}", highlight=False)
                failed += 1
                continue
            mask = model.predict(rgb)
            save_png(Image.fromarray(mask), outputs[0])
            if args.cutout:
                save_png(cutout(rgb, mask), outputs[1])
            written += 1
    summary = f"{written} written to {escape(str(args.output_dir))} by {escape(model.description)}, {failed} skipped"
    if kept:
        summary += f", {kept} already there kept (--overwrite redoes them)"
    console.print(summary, highlight=False)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
