"""`skinseg bench NAME [ARGS]`: the benchmark tables, `python -m skinseg.bench.NAME`."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from skinseg.errors import EXIT_USER_ERROR

BENCHES = ("train", "augment", "classical", "inference", "session", "resize", "birefnet", "generalisation")
SUMMARY = "benchmark tables: " + ", ".join(BENCHES)


def run(arguments: Sequence[str]) -> int:
    if not arguments or arguments[0] not in BENCHES:
        given = f"unknown benchmark {arguments[0]!r}; " if arguments and arguments[0] not in ("-h", "--help") else ""
        print(f"{'error: ' if given else ''}{given}usage: skinseg bench NAME [ARGS], NAME one of {', '.join(BENCHES)} "
              "(skinseg bench NAME --help for its arguments)", file=sys.stderr if given else sys.stdout)
        return EXIT_USER_ERROR if given or not arguments else 0
    return importlib.import_module(f"skinseg.bench.{arguments[0]}").main(arguments[1:]) or 0
