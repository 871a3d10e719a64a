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
        names = ", ".join(BENCHES)
        if arguments and arguments[0] not in ("-h", "--help"):
            print(f"error: unknown benchmark {arguments[0]!r}; the benchmarks: {names} "
                  "(see skinseg bench --help)", file=sys.stderr)
            return EXIT_USER_ERROR
        print(f"usage: skinseg bench NAME [ARGS], NAME one of {names} "
              "(skinseg bench NAME --help for its arguments)")
        return 0 if arguments else EXIT_USER_ERROR
    sys.argv[0] = f"skinseg bench {arguments[0]}"
    return importlib.import_module(f"skinseg.bench.{arguments[0]}").main(arguments[1:]) or 0
