"""What inference's resize costs: `python -m skinseg.bench.resize [--model M] [--data DIR] [--images N]`.

Training resizes with area averaging (shrinking) and bilinear interpolation (enlarging);
inference with Lanczos, as the original's sessions did (`skinseg.resize`). This scores one
model at full resolution on the first N validation images of each dataset under `--data`
with both input interpolations, and prints mIoU@0.5, F1 and FPR side by side with the
difference (training's minus inference's). Default model: the shipped U²NetP, fp32.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.console import Console
from rich.table import Table

from skinseg import metrics
from skinseg.bench import save_table
from skinseg.data.folder import FolderIndex, Sample, dataset_folders, load_pair
from skinseg.errors import MissingFileError, add_debug_option, user_command
from skinseg.hardware import cpu_name
from skinseg.inference.factory import Model, create_predictor
from skinseg.resize import INTERPOLATIONS


def scores_by_interpolation(model: Model, samples: list[Sample]) -> dict[str, dict]:
    """{interpolation: metrics.summarise of the samples' masks} for each of INTERPOLATIONS."""
    results = {}
    for interpolation in INTERPOLATIONS:
        model.session.interpolation = interpolation
        scores = []
        for sample in samples:
            image, truth = load_pair(sample)
            scores.append(metrics.score_image(model.predict(image), truth))
        results[interpolation] = metrics.summarise(scores)
    return results


def cell(value) -> str:
    return "–" if value is None else f"{value:.4f}"


@user_command
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help=".onnx or .ckpt (default: the shipped U²NetP, fp32)")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SKINSEG_DATA", "../shared/datasets")),
                        help="folder of folder datasets (default $SKINSEG_DATA, else ../shared/datasets)")
    parser.add_argument("--datasets", nargs="+", help="names under --data (default: all)")
    parser.add_argument("--images", type=int, default=40, help="first N val images per dataset (default 40)")
    parser.add_argument("--out", type=Path, default=Path("results") / "bench")
    add_debug_option(parser)
    args = parser.parse_args(argv)
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
        samples = FolderIndex(folder, name=name).split("val")[: args.images]
        if samples:
            rows.append((name, len(samples), scores_by_interpolation(model, samples)))

    console = Console(width=140)
    title = f"{model.description}: input interpolation, full resolution; {cpu_name()}"
    columns = ["dataset", "images"] + [f"{key} {interpolation}" for key in ("mIoU@0.5", "FPR")
                                       for interpolation in INTERPOLATIONS] + ["Δ mIoU@0.5", "Δ FPR"]
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right")
    lines, csv_rows = [f"# {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)], []
    for name, count, results in rows:
        lanczos, area = results["lanczos"], results["area"]
        delta_iou = None if lanczos["miou50"] is None else area["miou50"] - lanczos["miou50"]
        values = [lanczos["miou50"], area["miou50"], lanczos["fpr"], area["fpr"], delta_iou,
                  area["fpr"] - lanczos["fpr"]]
        cells = [name, str(count), *map(cell, values)]
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
        csv_rows.append([name, count, *values])
    console.print(table)
    save_table(args.out, "resize", "\n".join(lines), columns, csv_rows)
    console.print(f"wrote {args.out / 'resize.md'}")


if __name__ == "__main__":
    main()
