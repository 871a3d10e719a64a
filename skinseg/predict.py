"""Skin masks for an image or a folder of images: `python -m skinseg.predict INPUT OUTPUT_DIR [--model M]`.

`--model` is an exported `.onnx` (run with `skinseg.inference.Session`), a `.ckpt`
checkpoint (`TorchSession`) or a classical method name (`skinseg.classical.METHODS`);
without it, the U²NetP shipped in the package (`skinseg/inference/default_model/`,
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
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from skinseg.data.io import IMAGE_EXTENSIONS, DataError, read_image, save_png
from skinseg.errors import SkinsegError, UsageError
from skinseg.inference.processing import cutout, post_process


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m skinseg.predict", description=__doc__.splitlines()[0])
    parser.add_argument("input", type=Path, help="an image file, or a folder of images (not recursive)")
    parser.add_argument("output_dir", type=Path, help="folder for STEM.png masks (not the input folder)")
    parser.add_argument("--model", help="a .onnx, a .ckpt or a classical method name; default: the shipped U²NetP")
    parser.add_argument("--precision", choices=("auto", "fp32", "int8"), default="auto",
                        help="the shipped model's file: auto (the faster here, where int8 agrees with fp32), "
                             "fp32 or int8")
    parser.add_argument("--cutout", action="store_true", help="also write STEM_cutout.png (RGBA)")
    parser.add_argument("--tile", type=int, help="tiled inference at native resolution with this tile side")
    parser.add_argument("--overlap", type=int, help="tile overlap in pixels (default: 64, at most tile/4)")
    parser.add_argument("--size", type=int, help="network input side (default: the model's)")
    parser.add_argument("--letterbox", action="store_true", help="keep the aspect ratio (default: model's)")
    parser.add_argument("--normalize", choices=("minmax", "none"),
                        help="min-max rescale each mask (default: minmax for .onnx, none for .ckpt)")
    parser.add_argument("--postprocess", action="store_true", help="open (3x3 ellipse), Gaussian 9x9 σ 2")
    parser.add_argument("--threads", type=int,
                        help="CPU threads for the model (default: the physical cores this process may use)")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo images whose outputs exist (default: keep them, so a rerun resumes)")
    args = parser.parse_args(argv)
    if args.overlap is None:
        args.overlap = min(64, (args.tile or 0) // 4)
    if args.tile is not None and not 0 <= args.overlap < args.tile:
        parser.error(f"--tile {args.tile} --overlap {args.overlap}: need 0 <= overlap < tile")
    return args


def list_images(path: Path) -> list[Path]:
    """The image itself, or a folder's image files one level deep (`IMAGE_EXTENSIONS`), sorted.

    Raises:
        UsageError: no such file or folder, or a folder without images.
    """
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UsageError(f"input {path}: no such file or folder")
    images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise UsageError(f"input {path}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    return images


def check_output_dir(input_path: Path, output_dir: Path) -> None:
    """Refuses to write into the input's folder, where STEM.png could overwrite an input image."""
    input_dir = input_path if input_path.is_dir() else input_path.parent
    if output_dir.resolve() == input_dir.resolve():
        raise UsageError(
            f"output folder {output_dir} is the input folder: masks named STEM.png could overwrite "
            "input images; choose another output folder"
        )


class Model(NamedTuple):
    """A mask function and what it runs (for progress lines and summaries)."""

    predict: Callable[[np.ndarray], np.ndarray]
    description: str


def make_predictor(
    model: str | None = None,
    size: int | None = None,
    letterbox: bool = False,
    normalize: str | None = None,
    postprocess: bool = False,
    threads: int | None = None,
    tile: int | None = None,
    overlap: int = 0,
    precision: str = "auto",
) -> Model:
    """An RGB uint8 (H,W,3) -> uint8 (H,W) mask function for a model (the options of the CLI).

    Args:
        model: a .onnx file (Session), a .ckpt file (TorchSession), a classical method name,
            or None: the shipped U²NetP.
        size, letterbox, normalize, threads, tile, overlap: network options (None: the model's).
        postprocess: open + Gaussian clean-up.
        precision: the shipped model's file, "auto", "fp32" or "int8" (see `Session`).

    Raises:
        UsageError: neither an existing .onnx/.ckpt file nor a classical method name,
            network options for a classical method, or a precision for another model.
    """
    from skinseg.classical import METHODS

    if model is not None and precision != "auto":
        raise UsageError(f"--precision {precision} picks the shipped model's file; not for --model {model}")
    options = {"size": size, "resize": "letterbox" if letterbox else None, "postprocess": postprocess}
    if normalize:
        options["normalize"] = normalize
    path = Path(model) if model is not None else None
    if path is None or (path.suffix == ".onnx" and path.is_file()):
        from skinseg.inference.session import Session

        try:
            session = Session(path, threads=threads, precision=precision, **options)
        except FileNotFoundError as error:  # no shipped model in this copy of the package
            raise UsageError(str(error)) from None
        return Model(lambda rgb: session.predict(rgb, tile=tile, overlap=overlap), session.description)
    if path.suffix == ".ckpt" and path.is_file():
        import torch

        from skinseg.hardware import default_threads
        from skinseg.inference.torch_session import TorchSession

        torch.set_num_threads(threads or default_threads())
        session = TorchSession(path, **options)
        return Model(lambda rgb: session.predict(rgb, tile=tile, overlap=overlap), str(path))
    if model in METHODS:
        from skinseg.classical import create_method

        network_options = {"tile": tile, "size": size, "letterbox": letterbox, "normalize": normalize,
                           "threads": threads}
        given = [f"--{flag}" for flag, value in network_options.items() if value]
        if given:
            raise UsageError(f"{', '.join(given)}: for .onnx/.ckpt models, not method {model!r}")
        method = create_method(model)
        function = (lambda rgb: post_process(method.predict(rgb))) if postprocess else method.predict
        return Model(function, f"classical method {model}")
    if path.suffix in (".onnx", ".ckpt"):
        reason = f"{path}: no such file"
    else:
        reason = f"{model!r}: no .onnx/.ckpt file"
    raise UsageError(f"--model {reason}, and not a classical method; methods: {', '.join(sorted(METHODS))}")


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit code (0 ok, 1 some images failed, 2 bad arguments)."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    console = Console(soft_wrap=True)
    try:
        images = list_images(args.input)
        check_output_dir(args.input, args.output_dir)
        model = make_predictor(args.model, args.size, args.letterbox, args.normalize, args.postprocess,
                               args.threads, args.tile, args.overlap, args.precision)
    except SkinsegError as error:  # a bad argument, or a model file the sessions cannot read
        console.print(f"[red]error:[/] {escape(str(error))}", highlight=False)
        return 2
    console.print(f"model: {escape(model.description)}", highlight=False)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    written = failed = kept = 0
    owners: dict[str, Path] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        for path in progress.track(images, description="predicting"):
            try:
                if path.stem in owners:
                    raise DataError(f"{path}: same stem as {owners[path.stem].name}: rename it")
                owners[path.stem] = path
                outputs = [args.output_dir / f"{path.stem}.png"]
                outputs += [args.output_dir / f"{path.stem}_cutout.png"] if args.cutout else []
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
