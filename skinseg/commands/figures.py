"""`skinseg figures stats|compare ...`: `python -m skinseg.figures`."""

from __future__ import annotations

from collections.abc import Sequence

SUMMARY = "dataset colour statistics and model comparison grids"


def run(arguments: Sequence[str]) -> int:
    from skinseg.figures.__main__ import main

    return main(arguments)
