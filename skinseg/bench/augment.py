"""Augmentation benchmark: `python -m skinseg.bench.augment [--images 16] [--workers 2]`.

Prints two tables:
- offline materialisation (`python -m skinseg.augment`) of 512x768 pairs: source
  pairs/s and written variants/s with the given processes;
- online augmentation: the time one training sample takes through the pipeline
  (decode excluded: resize to 256 and flip) without and with `seed26`, next to the
  per-sample time of one DLMV training step at 256 (plain PyTorch loop, in the precision
  `trainer.precision=auto` picks on this CPU),
  which is what the loader workers must keep up with.
Each figure is the median of `--repeats` runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from skinseg.augment.materialise import materialise
from skinseg.augment.pipeline import build_steps
from skinseg.bench.train import make_batches, plain_loop_times
from skinseg.data.demo import render_demo_sample
from skinseg.data.transforms import build_transform
from skinseg.errors import ArgumentParser, add_debug_option, at_least, user_command
from skinseg.hardware import cpu_name, resolve_precision
from skinseg.settings import set_command_defaults

HEIGHT, WIDTH = 768, 512


def write_sources(root: Path, count: int) -> None:
    """`count` synthetic 512x768 (WxH) pairs in the folder-dataset layout."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for index in range(count):
        image, mask = render_demo_sample(np.random.default_rng([11, index]), HEIGHT, WIDTH)
        cv2.imwrite(str(root / "images" / f"s{index:03d}.png"), image[..., ::-1])
        cv2.imwrite(str(root / "masks" / f"s{index:03d}.png"), mask)


def materialisation_rate(source: Path, workers: int) -> float:
    """Source pairs per second of one full materialisation into a fresh folder."""
    with tempfile.TemporaryDirectory() as destination:
        start = time.perf_counter()
        report = materialise(source, destination, workers=workers, progress=False)
        elapsed = time.perf_counter() - start
    if report.failed:
        raise RuntimeError(f"materialisation failed: {report.failed}")
    return report.sources / elapsed


def online_seconds_per_sample(image: np.ndarray, mask: np.ndarray, augment: dict, samples: int) -> float:
    """Mean seconds of the training transform (resize 256, flip, augment) per sample.

    The mean, not the median: seed26 picks a variant per call and the costly ones count.
    """
    transform = build_transform(256, steps=build_steps({"hflip": {"p": 0.5}, **augment}))
    transform.set_random_seed(0)
    start = time.perf_counter()
    for _ in range(samples):
        transform(image=image, mask=mask)
    return (time.perf_counter() - start) / samples


@user_command
def main(argv: list[str]) -> None:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=at_least(1), help="512x768 source pairs to materialise")
    parser.add_argument("--workers", type=at_least(1), help="materialisation processes")
    parser.add_argument("--repeats", type=at_least(1))
    parser.add_argument("--samples", type=at_least(1), help="online samples timed per run")
    parser.add_argument("--train-steps", type=at_least(1), help="DLMV steps timed per run")
    add_debug_option(parser)
    set_command_defaults(parser, "bench", "augment")
    args = parser.parse_args(argv)
    console = Console(width=160)

    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "src"
        write_sources(source, args.images)
        rates = [materialisation_rate(source, args.workers) for _ in range(args.repeats)]
        image, mask = render_demo_sample(np.random.default_rng([11, 0]), HEIGHT, WIDTH)
    pairs = statistics.median(rates)
    table = Table(title=f"Offline materialisation of {WIDTH}x{HEIGHT} pairs, {cpu_name()}, median of {args.repeats}")
    for column in ("processes", "source pairs/s", "variants written/s", "s per source pair"):
        table.add_column(column, justify="right")
    table.add_row(str(args.workers), f"{pairs:.2f}", f"{pairs * 26:.1f}", f"{1 / pairs:.2f}")
    console.print(table)

    plain = statistics.median(
        online_seconds_per_sample(image, mask, {}, args.samples) for _ in range(args.repeats)
    )
    seeded = statistics.median(
        online_seconds_per_sample(image, mask, {"seed26": {"p": 1.0}}, args.samples) for _ in range(args.repeats)
    )
    batches = make_batches(1 + args.train_steps, 16, 256)
    precision = resolve_precision("auto", "cpu").precision
    step = statistics.median(
        statistics.median(plain_loop_times("dlmv", batches, precision)[1:]) for _ in range(args.repeats)
    )
    per_sample_step = step / 16
    table = Table(title=f"Online augmentation per {WIDTH}x{HEIGHT} sample (one process) vs DLMV@256 training")
    for column in ("what", "ms per sample", "vs DLMV step per sample"):
        table.add_column(column, justify="right")
    for label, seconds in (
        ("resize 256 + flip", plain),
        ("resize 256 + flip + seed26", seeded),
        ("seed26 alone (difference)", seeded - plain),
        (f"DLMV@256 training step / 16 ({precision})", per_sample_step),
    ):
        table.add_row(label, f"{seconds * 1000:.2f}", f"{seconds / per_sample_step:.3f}")
    console.print(table)


if __name__ == "__main__":
    main()
