"""Classical-method speed: `python -m skinseg.bench.classical [--public DIR]`.

Prints each method's megapixels/s on one core (raw mask and with its post-processing)
next to the cost of decoding the same image as a JPEG, the budget a colour rule should
stay under; with `--public`, also the wall time of evaluating every classical method on
the public datasets' val splits from an empty cache (both cores).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from skinseg.bench import median_seconds
from skinseg.classical import METHODS, create_method
from skinseg.classical.mediapipe import mediapipe_available
from skinseg.data.demo import render_demo_sample
from skinseg.errors import ArgumentParser, add_debug_option, at_least, user_command
from skinseg.hardware import cpu_name
from skinseg.settings import set_command_defaults


def method_speeds(side: int, repeats: int) -> tuple[list[tuple[str, float, float]], float]:
    """[(method, raw s, post-processed s)] on a side x side image, and its JPEG decode time."""
    image, _ = render_demo_sample(np.random.default_rng([3, 1]), side, side)
    ok, jpeg = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    decode = median_seconds(lambda: cv2.imdecode(jpeg, cv2.IMREAD_COLOR), repeats)
    rows = []
    for name in sorted(METHODS):
        if name == "mediapipe" and not mediapipe_available():
            continue
        raw = create_method(name, postprocess=False)
        full = create_method(name)
        rows.append((name, median_seconds(lambda: raw.predict(image), repeats),
                     median_seconds(lambda: full.predict(image), repeats)))
    return rows, decode


def public_evaluation_seconds(root: Path, workers: int) -> tuple[float, int]:
    """Wall time of scoring every classical method on the public val splits, cold cache."""
    from skinseg.data.folder import split_samples
    from skinseg.evaluation import classical_entries, evaluate

    datasets = [p for p in sorted(root.iterdir()) if (p / "images").is_dir()]
    with tempfile.TemporaryDirectory() as cache:
        samples = split_samples([(folder.name, folder) for folder in datasets], "val", cache_dir=cache)
        entries, _ = classical_entries([name for name in METHODS if name != "mediapipe" or mediapipe_available()])
        start = time.perf_counter()
        evaluate(entries, samples, cache, workers=workers, progress=True)
        return time.perf_counter() - start, len(samples) * len(entries)


@user_command
def main(argv: list[str]) -> None:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=at_least(32), help="square test image side (1024: ~1 MP)")
    parser.add_argument("--repeats", type=at_least(1))
    parser.add_argument("--public", type=Path, help="datasets folder: also time the full evaluation")
    parser.add_argument("--workers", type=at_least(1))
    add_debug_option(parser)
    set_command_defaults(parser, "bench", "classical")
    args = parser.parse_args(argv)
    console = Console(width=140)

    cv2.setNumThreads(1)  # one core, as the budget is stated
    rows, decode = method_speeds(args.side, args.repeats)
    megapixels = args.side * args.side / 1e6
    table = Table(title=f"Classical methods on a {args.side}x{args.side} image, one core, {cpu_name()}; "
                        f"median of {args.repeats}")
    for column in ("method", "raw ms/MP", "raw MP/s", "post-processed ms/MP", "raw / JPEG decode"):
        table.add_column(column, justify="right")
    table.add_row("JPEG decode (q90)", f"{decode / megapixels * 1000:.2f}", f"{megapixels / decode:.0f}", "", "1.00")
    for name, raw, full in rows:
        table.add_row(name, f"{raw / megapixels * 1000:.2f}", f"{megapixels / raw:.1f}",
                      f"{full / megapixels * 1000:.2f}", f"{raw / decode:.2f}")
    console.print(table)
    if args.public:
        cv2.setNumThreads(0)
        seconds, predictions = public_evaluation_seconds(args.public, args.workers)
        console.print(f"evaluating every classical method on {args.public} val: {seconds:.1f} s for "
                      f"{predictions} predictions ({args.workers} workers, cold cache, HCE included)")


if __name__ == "__main__":
    main()
