"""Benchmarks that print tables: `python -m skinseg.bench.train`."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path


def save_table(out_dir: Path, stem: str, text: str, columns: Sequence[str], rows: Iterable[Sequence]) -> None:
    """Writes a benchmark's Markdown table to out_dir/STEM.md and its rows to out_dir/STEM.csv."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.md").write_text(text + "\n")
    with open(out_dir / f"{stem}.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(columns)
        writer.writerows(rows)
