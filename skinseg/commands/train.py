"""`skinseg train [OVERRIDES]`: `python train.py`."""

from __future__ import annotations

import sys
from collections.abc import Sequence

SUMMARY = "train a model (Hydra overrides, as python train.py)"


def run(arguments: Sequence[str]) -> int:
    from skinseg.cli import train

    sys.argv = ["skinseg train", *arguments]  # Hydra reads its overrides from sys.argv
    train()
    return 0
