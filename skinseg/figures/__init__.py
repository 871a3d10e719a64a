"""Figures: dataset colour statistics and model comparison grids (`python -m skinseg.figures`)."""

from __future__ import annotations

import os
from pathlib import Path


def save_figure(figure, path: Path, dpi: int = 150) -> Path:
    """Saves a matplotlib figure atomically (temporary file of the same suffix, then rename) and closes it."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    figure.tight_layout()
    figure.savefig(temporary, dpi=dpi)
    plt.close(figure)
    os.replace(temporary, path)
    return path
