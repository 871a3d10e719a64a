"""`skinseg COMMAND [ARGS]`: one command with a subcommand per job, each a module of this package.

`train.py`, `evaluate.py`, `export.py` and the `python -m skinseg.*` mains keep working; each
subcommand runs the same code with the same arguments (Hydra overrides for train and evaluate).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from skinseg.errors import EXIT_USER_ERROR

# subcommand -> its module here, in the order `skinseg --help` lists them
COMMANDS = ("train", "evaluate", "predict", "export", "augment", "figures", "bench")


def usage() -> str:
    lines = ["usage: skinseg COMMAND [ARGS]  (skinseg COMMAND --help for its arguments)", "", "commands:"]
    for name in COMMANDS:
        lines.append(f"  {name:<10}{importlib.import_module(f'skinseg.commands.{name}').SUMMARY}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs `skinseg COMMAND ARGS`; returns the command's exit code (2 for an unknown command)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else EXIT_USER_ERROR
    name, arguments = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; the commands: {', '.join(COMMANDS)} (see skinseg --help)",
              file=sys.stderr)
        return EXIT_USER_ERROR
    sys.argv[0] = f"skinseg {name}"  # how the subcommand's own messages name it
    return importlib.import_module(f"skinseg.commands.{name}").run(arguments) or 0
