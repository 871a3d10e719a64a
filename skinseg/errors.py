"""The errors a user can act on, and the one handler every command-line entry point runs through.

A `SkinsegError` is bad input, not a bug: a corrupt or missing file, a wrong path, an
invalid setting, a file that would be overwritten. Its message names the file or setting
and the fix. `exit_on_user_error` runs a command's body; such an error (also when a
library wraps it, as Hydra's `instantiate` does) ends the command with that one line on
stderr and exit code 2, without a traceback. Any other exception is a bug and keeps its
traceback. `debug=True` (`--debug`, or HYDRA_FULL_ERROR=1 for train.py and evaluate.py)
shows the traceback of user errors too. The
commands' exit codes: 0 done, 1 done but some inputs were skipped, 2 user error.
"""

from __future__ import annotations

import argparse
import errno
import functools
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

EXIT_USER_ERROR = 2

T = TypeVar("T")


class SkinsegError(Exception):
    """Bad input a user can fix; the message names the file or setting and the fix."""

    def __str__(self) -> str:  # KeyError subclasses would quote the message otherwise
        return str(self.args[0]) if self.args else ""


class UsageError(SkinsegError, ValueError):
    """A bad command-line argument or configuration value."""


class UnknownNameError(SkinsegError, KeyError):
    """A name that is not registered (a model, method, engine...); the message lists the valid ones."""


class DataError(SkinsegError, ValueError):
    """Bad input data: the message names the file(s) and the fix."""


class NotAModelError(SkinsegError, ValueError):
    """A file given as a checkpoint or ONNX model that cannot be read as one."""


class MissingFileError(SkinsegError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class OutputExistsError(SkinsegError, FileExistsError):
    """Writing would overwrite or mix with files already there."""


class CheckFailedError(SkinsegError, RuntimeError):
    """A check refused an output (export parity, int8 agreement); nothing was written in its place."""


class UnwritableError(SkinsegError, OSError):
    """An output the system refuses to write: a read-only or full disk, no permission, a file where a folder goes."""


# what the system says when an output cannot be written where the user asked
UNWRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR, errno.EISDIR,
              errno.ENAMETOOLONG}


def user_error(error: BaseException) -> SkinsegError | None:
    """The SkinsegError that `error` is or was raised from (following __cause__ and __context__), if any.

    An OSError of `UNWRITABLE` kind (read-only folder, full disk, ...) counts as one: it names its file.
    """
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, SkinsegError):
            return error
        if isinstance(error, OSError) and error.errno in UNWRITABLE:
            where = error.filename or "an output"
            return UnwritableError(f"{where}: {error.strerror or error}; check that path (permissions, free disk "
                                   "space, a file where a folder should be) and run again")
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def hydra_debug() -> bool:
    """Whether HYDRA_FULL_ERROR=1 asks for full tracebacks."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def add_debug_option(parser) -> None:
    """Adds `--debug` (show the traceback of user errors too; `user_command` reads it) to an argparse parser."""
    parser.add_argument("--debug", action="store_true", help="show the full traceback of errors in the input too")


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the commands' error rule: a bad argument is one `error:` line and exit code 2 (no usage block).

    Without `prog`, a module run with `python -m` is named the way it was started.
    """

    def __init__(self, *args, **kwargs):
        main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        # under the `skinseg` command, argparse's own default applies: sys.argv[0], "skinseg bench NAME"
        named_by_module = main_spec is not None and main_spec.name and main_spec.name != "skinseg.__main__"
        if "prog" not in kwargs and named_by_module:
            kwargs["prog"] = f"python -m {main_spec.name.removesuffix('.__main__')}"
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR)


def checked(parse: Callable[[str], T], valid: Callable[[Any], bool], rule: str) -> Callable[[str], T]:
    """An argparse `type`: parses a value and refuses one outside `rule` (or not finite) in one line.

    Args:
        parse: `int`, `float`, ... applied to the argument's text.
        valid: the rule, on the parsed value.
        rule: the rule in words, e.g. "a whole number >= 1"; the error reads "'0': must be RULE".
    """

    def convert(text: str) -> T:
        try:
            value = parse(text)
        except ValueError:
            value = None
        if value is None or (isinstance(value, float) and not math.isfinite(value)) or not valid(value):
            raise argparse.ArgumentTypeError(f"{text!r}: must be {rule}")
        return value

    return convert


def at_least(low: int) -> Callable[[str], int]:
    """An argparse `type` for a whole number >= `low` (counts, sizes, repeats)."""
    return checked(int, lambda value: value >= low, f"a whole number >= {low}")


positive_float = checked(float, lambda value: value > 0, "a number > 0")


def thread_count(text: str) -> int:
    """An argparse `type` for a CPU thread count: 1 to the CPUs this machine has (more only slows it down)."""
    cpus = os.cpu_count() or 1
    return checked(int, lambda value: 1 <= value <= cpus, f"a thread count from 1 to {cpus} (this machine's CPUs)")(text)


def user_command(main: Callable[[Sequence[str]], T]) -> Callable[[Sequence[str] | None], T]:
    """Decorates a command's `main(argv)`: user errors end it with one line and exit code 2.

    `argv` defaults to `sys.argv[1:]`; `--debug` in it (see `add_debug_option`) keeps tracebacks.
    """

    @functools.wraps(main)
    def command(argv: Sequence[str] | None = None) -> T:
        argv = list(sys.argv[1:] if argv is None else argv)
        return exit_on_user_error(lambda: main(argv), debug="--debug" in argv)

    return command


def exit_on_user_error(body: Callable[[], T], debug: bool = False) -> T:
    """Runs a command's body; a user error ends it with one line on stderr and exit code 2.

    Raises:
        SystemExit: code 2, for a `SkinsegError` (unless `debug`).
        Exception: anything else, unchanged.
    """
    try:
        return body()
    except Exception as error:
        found = user_error(error)
        if found is None or debug:
            raise
        print(f"error: {found}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR) from None
