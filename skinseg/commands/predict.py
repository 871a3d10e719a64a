"""`skinseg predict INPUT OUTPUT_DIR [--model M]`: `python -m skinseg.predict`."""

from __future__ import annotations

from collections.abc import Sequence

SUMMARY = "skin masks (and cutouts) for an image or a folder of images"


def run(arguments: Sequence[str]) -> int:
    from skinseg.predict import main

    return main(arguments)
