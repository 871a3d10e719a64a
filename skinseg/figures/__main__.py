"""`python -m skinseg.figures stats DATASET...` and `python -m skinseg.figures compare IMAGES... --models ...`.

stats: colour histograms of skin and non-skin pixels, the CbCr regions of the colour
methods and the Cb-Cr histogram of skin (see `skinseg.figures.stats`).
compare: the image x model grid of original, cutout, overlay and error map (see
`skinseg.figures.compare`).
Existing figures are kept unless `--overwrite`. Exit codes: 0 done, 2 bad arguments or data.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from skinseg.errors import ArgumentParser, UsageError, add_debug_option, at_least, user_command
from skinseg.files import refuse_existing


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m skinseg.figures", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    stats = commands.add_parser("stats", help="colour statistics figures of folder datasets")
    stats.add_argument("datasets", nargs="+", type=Path, help="dataset folders with images/ and masks/")
    stats.add_argument("--out", type=Path, default=Path("figures"), help="output folder (default figures/)")
    stats.add_argument("--max-images", type=at_least(1), default=2000, help="images sampled (default 2000)")
    stats.add_argument("--pixels-per-image", type=at_least(1), default=4000, help="pixels sampled per image (default 4000)")
    stats.add_argument("--seed", type=int, default=0)
    stats.add_argument("--workers", type=at_least(1), default=2, help="decoding processes (default 2)")
    stats.add_argument("--overwrite", action="store_true", help="replace existing figures")
    compare = commands.add_parser("compare", help="image x model grid: original, cutout, overlay, errors")
    compare.add_argument("images", nargs="+", type=Path, help="image files or folders of images")
    compare.add_argument("--models", nargs="+", required=True, help=".onnx, .ckpt or classical method names")
    compare.add_argument("--masks", type=Path, help="folder of ground-truth STEM.png (default: ../masks beside images/)")
    compare.add_argument("--out", type=Path, default=Path("figures/model_plot.jpg"), help="figure file (.jpg/.png)")
    compare.add_argument("--side", type=at_least(32), default=384, help="longer side of each panel in pixels")
    compare.add_argument("--dpi", type=at_least(1), default=150)
    for command in (stats, compare):
        add_debug_option(command)
    compare.add_argument("--overwrite", action="store_true", help="replace an existing figure")
    args = parser.parse_args(argv)
    for name in ("max_images", "pixels_per_image", "workers", "side", "dpi"):
        if getattr(args, name, 1) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def run_stats(args: argparse.Namespace, console: Console) -> None:
    from skinseg.figures.stats import draw_stats

    with console.status("sampling pixels and drawing"):
        paths, sample = draw_stats(args.datasets, args.out, args.max_images, args.pixels_per_image, args.seed,
                                   args.workers, args.overwrite)
    for reason in sample.skipped:
        console.print(f"[yellow]skipped:[/] {escape(reason)}", highlight=False)
    console.print(f"{sample.images} images, {len(sample.skin):,} pixels ({sample.skin.mean():.1%} skin) -> "
                  + ", ".join(escape(str(path)) for path in paths), highlight=False)


def run_compare(args: argparse.Namespace, console: Console) -> None:
    from skinseg.figures.compare import compare_figure
    from skinseg.inference import create_predictor
    from skinseg.io import list_images

    if not args.overwrite:
        refuse_existing([args.out], "choose another --out or pass --overwrite")
    if args.out.suffix.lower() not in (".jpg", ".jpeg", ".png"):
        raise UsageError(f"--out {args.out}: use a .jpg or .png file name")
    images = [path for item in args.images for path in list_images(item)]
    models = {Path(model).stem if Path(model).suffix else model: create_predictor(model).predict for model in args.models}
    with console.status(f"predicting {len(images)} images with {len(models)} models"):
        scores = compare_figure(images, models, args.out, args.masks, args.side, args.dpi)
    for stem, by_model in scores.items():
        cells = [f"{label} {value:.3f}" if isinstance(value, float) else f"{label} {value}"
                 for label, value in by_model.items()]
        if cells:
            console.print(f"{escape(stem)}: " + ", ".join(escape(cell) for cell in cells), highlight=False)
    console.print(f"wrote {escape(str(args.out))}", highlight=False)


@user_command
def main(argv: Sequence[str]) -> int:
    """Runs the command line; returns the exit code."""
    args = parse_args(argv)
    (run_stats if args.command == "stats" else run_compare)(args, Console(soft_wrap=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
