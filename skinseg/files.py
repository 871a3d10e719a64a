"""Atomic file writes: a killed or failing writer leaves the old file or the new one, never a torn one.

Every writer of the package goes through `atomic_path`: the data is written to a hidden
temporary file beside the target (same folder, so the rename is atomic; same suffix, so
PIL, OpenCV and matplotlib pick the right format), renamed over the target on success and
removed on failure. A process killed with SIGKILL cannot remove its temporary file;
`remove_stale_temporaries` deletes those whose writer is no longer running. Temporary
files are named `.STEM.skinseg-tmp-HOST-PID.SUFFIX`: only skinseg's own, and only those
of this host (on a shared filesystem another machine's PID means nothing here), are ever
removed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import socket
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "host_name", "refuse_existing", "remove_stale_temporaries", "save_figure", "sha256",
           "staging_folder", "temporary_path", "write_csv", "write_json", "write_text"]

_TEMPORARY = re.compile(r"^\..+\.skinseg-tmp-(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)(\.[^.]*)?$")


def refuse_existing(paths: Iterable[str | os.PathLike], fix: str = "pass --overwrite to replace them") -> None:
    """The output rule: a command replaces files it did not create in this run only when told to.

    Called before any work, so that a refused run costs nothing.

    Raises:
        OutputExistsError: any of `paths` exists; the message lists them and ends with `fix`.
    """
    from skinseg.errors import OutputExistsError

    existing = [str(path) for path in paths if Path(path).exists()]
    if existing:
        raise OutputExistsError(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; {fix}")


def host_name() -> str:
    """This machine's name as it appears in temporary file names (letters, digits, '-' and '_')."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


def temporary_path(path: str | os.PathLike, pid: int | None = None) -> Path:
    """The hidden temporary file beside `path` that process `pid` (default: this one) writes it through."""
    path = Path(path)
    return path.with_name(f".{path.stem}.skinseg-tmp-{host_name()}-{pid or os.getpid()}{path.suffix}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path to write; it becomes `path` when the block ends without error.

    The parent folder is created. On an exception the temporary file is removed and
    `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes a text file atomically; returns its path."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, value: Any, indent: int | None = 2) -> Path:
    """Writes a JSON file atomically (objects JSON cannot hold are written with `str`); returns its path."""
    return write_text(path, json.dumps(value, indent=indent, default=str) + "\n")


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    """Writes a CSV file atomically; returns its path."""
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return Path(path)


def save_figure(figure, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Lays out and saves a matplotlib figure atomically (format from the suffix), then closes it."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=dpi)
    finally:
        plt.close(figure)
    return Path(path)


def sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's content (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


@contextmanager
def staging_folder(out_dir: str | os.PathLike, label: str) -> Iterator[Path]:
    """A hidden folder inside `out_dir` to assemble outputs in before they are moved into place.

    Named like the temporary files (`.LABEL.skinseg-tmp-HOST-PID`); removed when the block ends,
    and, if a killed run left one, by the next run into `out_dir` (`remove_stale_temporaries`).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir)
    folder = temporary_path(out_dir / label)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Removes skinseg's temporary files and staging folders in `folder` left by writers on this host
    that are no longer running.

    Returns:
        The removed paths.
    """
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    host = host_name()
    for path in folder.iterdir():
        match = _TEMPORARY.match(path.name)
        if not match or match["host"] != host:
            continue
        pid = int(match["pid"])
        if pid != os.getpid() and not _running(pid):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed
