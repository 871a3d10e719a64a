"""Fitted parameter files of the classical methods: JSON for numbers and lists, NPZ for arrays.

Every file records its `kind` ("ellipse", "gmm", "histogram", ...), the format `version`
and metadata (data used, sample counts, date, skinseg version), so a file cannot be
loaded as the wrong kind of parameters. Nothing is pickled: JSON is plain text and NPZ
files are read with `allow_pickle=False`. Writes are atomic and never overwrite a file
unless asked to.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import skinseg
from skinseg.errors import MissingFileError
from skinseg.files import atomic_path, refuse_existing

FORMAT_VERSION = 1
SUFFIXES = (".json", ".npz")
_RESERVED = ("__kind__", "__version__", "__metadata__")


@dataclass(frozen=True)
class ParamFile:
    """The contents of a parameter file."""

    kind: str
    version: int
    values: dict[str, Any]
    metadata: dict[str, Any]


def _check_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{path}: unsupported parameter file type {suffix!r}; use .json or .npz")
    return suffix


def _plain(value: Any) -> Any:
    """Numpy arrays and scalars -> lists and Python numbers, recursively (for JSON)."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    return value


def save_params(
    path: str | os.PathLike,
    kind: str,
    values: dict[str, Any],
    metadata: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Writes a parameter file atomically (temporary file, then rename).

    Args:
        path: destination ending in .json (numbers, lists, nested dicts) or .npz (arrays).
        kind: what the parameters are for, checked on loading.
        values: the parameters; for .npz each value must be array-like.
        metadata: JSON-serialisable facts about the fit; the date and skinseg version are added.
        overwrite: replace an existing file instead of raising OutputExistsError.

    Returns:
        The path written.
    """
    path = Path(path)
    suffix = _check_suffix(path)
    if not overwrite:
        refuse_existing([path], "choose another name or pass overwrite=True (--overwrite)")
    clashes = [key for key in values if key in _RESERVED]
    if clashes:
        raise ValueError(f"parameter names {clashes} are reserved")
    metadata = {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "skinseg_version": skinseg.__version__,
        **(metadata or {}),
    }
    with atomic_path(path) as temporary, open(temporary, "wb") as file:
        if suffix == ".json":
            record = {
                "kind": kind,
                "version": FORMAT_VERSION,
                "metadata": _plain(metadata),
                "values": _plain(values),
            }
            file.write(json.dumps(record, indent=2, allow_nan=False).encode("utf-8"))
        else:
            arrays = {key: np.asarray(value) for key, value in values.items()}
            objects = [key for key, array in arrays.items() if array.dtype == object]
            if objects:
                raise ValueError(f"{path}: .npz values must be numeric arrays; {objects} are not")
            np.savez_compressed(
                file,
                __kind__=np.array(kind),
                __version__=np.array(FORMAT_VERSION),
                __metadata__=np.array(json.dumps(_plain(metadata), allow_nan=False)),
                **arrays,
            )
    return path


def read_params(path: str | os.PathLike) -> ParamFile:
    """Reads any parameter file (use `load_params` to also check its kind)."""
    path = Path(path)
    suffix = _check_suffix(path)
    if not path.is_file():
        raise MissingFileError(f"parameter file {path} not found")
    try:
        if suffix == ".json":
            record = json.loads(path.read_text(encoding="utf-8"))
            kind, version, metadata, values = (
                record[key] for key in ("kind", "version", "metadata", "values")
            )
        else:
            with np.load(path, allow_pickle=False) as data:
                kind = str(data["__kind__"])
                version = int(data["__version__"])
                metadata = json.loads(str(data["__metadata__"]))
                values = {key: data[key] for key in data.files if key not in _RESERVED}
    except (KeyError, TypeError, ValueError, OSError) as error:
        raise ValueError(
            f"{path} is not a skinseg parameter file ({type(error).__name__}: {error})"
        ) from error
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} has format version {version}, newer than this skinseg reads "
            f"({FORMAT_VERSION}); upgrade skinseg"
        )
    return ParamFile(kind=kind, version=version, values=values, metadata=metadata)


def load_params(path: str | os.PathLike, kind: str) -> dict[str, Any]:
    """The values of a parameter file that must hold `kind` parameters.

    Raises:
        FileNotFoundError: no such file.
        ValueError: another kind, an unsupported suffix or an unreadable file.
    """
    record = read_params(path)
    if record.kind != kind:
        raise ValueError(f"{path} holds {record.kind!r} parameters, expected {kind!r}")
    return record.values
