"""What inference's resizing costs: `python -m skinseg.bench.resize [--model M] [--data DIR] [--images N]`.

Training resizes with area averaging (shrinking) and bilinear interpolation (enlarging);
inference resizes the photo in with Lanczos, as the original's sessions did (`skinseg.resize`),
and the network's output back to the photo's size with Lanczos (the original's) or the
colour guided filter (`skinseg.inference.guided`, what skinseg's exports use). This scores
one model at full resolution on the first N validation images of each dataset under
`--data` with three settings: Lanczos in and out (the original's), training's interpolation
in, and guided out, and prints mIoU@0.5, FPR and the median milliseconds per image of each,
with the differences to the original's. Default model: the shipped one, fp32.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from skinseg import metrics
from skinseg.bench import add_output_options, check_tables, save_table
from skinseg.data.folder import Sample, dataset_folders, load_pair, split_samples
from skinseg.errors import ArgumentParser, MissingFileError, add_debug_option, at_least, user_command
from skinseg.hardware import cpu_name
from skinseg.inference.factory import Model, create_predictor
from skinseg.settings import set_command_defaults

# setting -> (input interpolation, output upsampling); the first is the baseline of the differences
SETTINGS = {"lanczos": ("lanczos", "lanczos"), "area in": ("area", "lanczos"), "guided out": ("lanczos", "guided")}


def scores_by_setting(model: Model, samples: list[Sample]) -> dict[str, dict]:
    """{setting: metrics.summarise of the samples' masks, plus "ms": median ms per image} for SETTINGS."""
    results = {}
    for setting, (interpolation, upsample) in SETTINGS.items():
        model.session.interpolation, model.session.upsample = interpolation, upsample
        scores, milliseconds = [], []
        for sample in samples:
            image, truth = load_pair(sample)
            start = time.perf_counter()
            mask = model.predict(image)
            milliseconds.append(1000 * (time.perf_counter() - start))
            scores.append(metrics.score_image(mask, truth))
        results[setting] = metrics.summarise(scores) | {"ms": statistics.median(milliseconds)}
    return results


def cell(value) -> str:
    return "–" if value is None else f"{value:.4f}"


@user_command
def main(argv: list[str]) -> None:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help=".onnx or .ckpt (default: the shipped model, fp32)")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SKINSEG_DATA", "../shared/datasets")),
                        help="folder of folder datasets (default $SKINSEG_DATA, else ../shared/datasets)")
    parser.add_argument("--datasets", nargs="+", help="names under --data (default: all)")
    parser.add_argument("--images", type=at_least(1),
                        help="first N val images per dataset (default %(default)s)")
    add_output_options(parser, Path("results") / "bench")
    add_debug_option(parser)
    set_command_defaults(parser, "bench", "resize")
    args = parser.parse_args(argv)
    check_tables(args.out, ["resize"], args.overwrite)
    if args.images < 1:
        parser.error("--images must be >= 1")

    model = create_predictor(args.model, precision="fp32" if args.model is None else "auto")
    if not args.data.is_dir():
        raise MissingFileError(f"--data {args.data}: no such folder; pass the folder holding the datasets")
    if model.session is None:
        parser.error(f"--model {args.model}: a classical method has no network input to resize")
    names = args.datasets or sorted(path.name for path in args.data.iterdir() if (path / "images").is_dir())
    rows = []
    for name, folder in dataset_folders(args.data, names):
        samples = split_samples([(name, folder)], "val")[: args.images]
        if samples:
            rows.append((name, len(samples), scores_by_setting(model, samples)))

    console = Console(width=140)
    title = f"{model.description}: resizing in and out, full resolution; {cpu_name()}"
    others = list(SETTINGS)[1:]
    columns = ["dataset", "images"] + [f"{key} {setting}" for key in ("mIoU@0.5", "FPR") for setting in SETTINGS]
    columns += [f"Δ {key} {setting}" for setting in others for key in ("mIoU@0.5", "FPR")]
    columns += [f"ms {setting}" for setting in SETTINGS]
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right")
    lines, csv_rows = [f"# {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)], []
    for name, count, results in rows:
        baseline = results["lanczos"]
        values = [results[setting][key] for key in ("miou50", "fpr") for setting in SETTINGS]
        for setting in others:
            values.append(None if baseline["miou50"] is None else results[setting]["miou50"] - baseline["miou50"])
            values.append(results[setting]["fpr"] - baseline["fpr"])
        values += [results[setting]["ms"] for setting in SETTINGS]
        cells = [name, str(count), *map(cell, values[:-len(SETTINGS)]), *(f"{ms:.1f}" for ms in values[-len(SETTINGS):])]
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
        csv_rows.append([name, count, *values])
    console.print(table)
    save_table(args.out, "resize", "\n".join(lines), columns, csv_rows)
    console.print(f"wrote {args.out / 'resize.md'}")


if __name__ == "__main__":
    main()
