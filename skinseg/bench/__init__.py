"""Benchmarks that print tables: `python -m skinseg.bench.train`."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from skinseg.files import write_csv, write_text


def median_seconds(function: Callable[[], object], repeats: int) -> float:
    """Median wall seconds of `repeats` calls after one warm-up call (lazy tables, sessions, caches)."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def save_table(out_dir: Path, stem: str, text: str, columns: Sequence[str], rows: Iterable[Sequence]) -> None:
    """Writes a benchmark's Markdown table to out_dir/STEM.md and its rows to out_dir/STEM.csv (atomically)."""
    write_text(out_dir / f"{stem}.md", text + "\n")
    write_csv(out_dir / f"{stem}.csv", columns, list(rows))
