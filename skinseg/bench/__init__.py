"""Benchmarks that print tables: `python -m skinseg.bench.train`."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from skinseg.files import refuse_existing, write_csv, write_text


def median_seconds(function: Callable[[], object], repeats: int) -> float:
    """Median wall seconds of `repeats` calls after one warm-up call (lazy tables, sessions, caches)."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def add_output_options(parser, default_out: Path) -> None:
    """`--out` (the tables' folder) and `--overwrite` (replace the tables of an earlier run there)."""
    parser.add_argument("--out", type=Path, default=default_out,
                        help=f"folder of the tables (default: {default_out})")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the tables of an earlier run in --out")


def check_tables(out_dir: Path, stems: Sequence[str], overwrite: bool) -> None:
    """Refuses, before any work, to replace out_dir/STEM.{md,csv} of an earlier run unless `overwrite`."""
    if not overwrite:
        refuse_existing([Path(out_dir) / f"{stem}.{suffix}" for stem in stems for suffix in ("md", "csv")],
                        "pass --overwrite to replace them, or another --out")


def save_table(out_dir: Path, stem: str, text: str, columns: Sequence[str], rows: Iterable[Sequence]) -> None:
    """Writes a benchmark's Markdown table to out_dir/STEM.md and its rows to out_dir/STEM.csv (atomically)."""
    write_text(out_dir / f"{stem}.md", text + "\n")
    write_csv(out_dir / f"{stem}.csv", columns, list(rows))
