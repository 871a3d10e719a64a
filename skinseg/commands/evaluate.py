"""`skinseg evaluate [OVERRIDES]`: `python evaluate.py`."""

from __future__ import annotations

import sys
from collections.abc import Sequence

SUMMARY = "regenerate the comparison tables (Hydra overrides, as python evaluate.py)"


def run(arguments: Sequence[str]) -> int:
    from skinseg.cli import evaluate

    sys.argv = ["skinseg evaluate", *arguments]  # Hydra reads its overrides from sys.argv
    evaluate()
    return 0
