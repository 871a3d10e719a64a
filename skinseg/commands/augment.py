"""`skinseg augment SRC DST` or `skinseg augment --gallery IMAGE MASK OUT.png`.

The same as `python -m skinseg.augment`.
"""

from __future__ import annotations

from collections.abc import Sequence

SUMMARY = "write the 26 colour/occlusion variants of a dataset, or one image's gallery"


def run(arguments: Sequence[str]) -> int:
    from skinseg.augment.materialise import main

    return main(arguments)
