"""Atomic writes: a failed or killed writer leaves the old file, and no temporary file behind."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

from skinseg.files import (
    atomic_path,
    host_name,
    remove_stale_temporaries,
    sha256,
    staging_folder,
    temporary_path,
    write_csv,
    write_json,
    write_text,
)
from skinseg.training import check_output_dir


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    target = write_text(tmp_path / "results.md", "old table\n")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half a new ta")
        raise RuntimeError("killed by a bug")
    assert target.read_text() == "old table\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.md"]


def test_writes_keep_the_suffix_for_the_codec_and_create_folders(tmp_path):
    with atomic_path(tmp_path / "deep" / "mask.png") as temporary:
        assert temporary.suffix == ".png" and temporary.parent == tmp_path / "deep"
        assert temporary.name.startswith(".")
        temporary.write_bytes(b"png")
    write_json(tmp_path / "card.json", {"path": tmp_path})
    write_csv(tmp_path / "rows.csv", ["a", "b"], [[1, 2], [3, None]])
    assert (tmp_path / "deep" / "mask.png").read_bytes() == b"png"
    assert '"path"' in (tmp_path / "card.json").read_text()
    assert (tmp_path / "rows.csv").read_text().splitlines() == ["a,b", "1,2", "3,"]
    assert sha256(tmp_path / "deep" / "mask.png") == hashlib.sha256(b"png").hexdigest()


def dead_pid() -> int:
    """The PID of a process that has exited."""
    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                             text=True, check=True)
    return int(process.stdout)


def test_only_skinsegs_temporaries_of_dead_writers_on_this_host_are_removed(tmp_path):
    dead = dead_pid()
    stale = temporary_path(tmp_path / "last.ckpt", dead)
    live = temporary_path(tmp_path / "last.ckpt", os.getppid())
    own = temporary_path(tmp_path / "results.md")
    other_host = tmp_path / f".last.skinseg-tmp-{host_name()}x-{dead}.ckpt"
    not_ours = [tmp_path / f".last.tmp-{dead}.ckpt", tmp_path / f".notes.tmp-{dead}"]  # another tool's files
    kept = [tmp_path / "last.ckpt", tmp_path / ".hidden.ckpt", live, own, other_host, *not_ours]
    for path in [stale, *kept]:
        path.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert all(path.exists() for path in kept) and not stale.exists()


def test_a_killed_runs_partial_checkpoint_does_not_block_or_linger(tmp_path):
    checkpoints = tmp_path / "run" / "checkpoints"
    checkpoints.mkdir(parents=True)
    partial = temporary_path(checkpoints / "last.ckpt", dead_pid())
    partial.write_bytes(b"half a checkpoint")
    check_output_dir(tmp_path / "run")  # only a partial file: not an earlier run's checkpoints
    assert not partial.exists()

    earlier = tmp_path / "earlier" / "checkpoints"
    earlier.mkdir(parents=True)
    (earlier / "last.ckpt").write_bytes(b"state")
    partial = temporary_path(earlier / "last.ckpt", dead_pid())
    partial.write_bytes(b"half")
    check_output_dir(tmp_path / "resumed", resume_from=earlier / "last.ckpt")
    assert not partial.exists() and (earlier / "last.ckpt").exists()


def test_a_killed_runs_staging_folder_is_removed_by_the_next_run(tmp_path):
    left = temporary_path(tmp_path / "model.export", dead_pid())
    left.mkdir()
    (left / "model.onnx").write_bytes(b"half an export")
    others = [tmp_path / ".model.export-abc", tmp_path / "model.onnx"]  # not skinseg's staging: kept
    others[0].mkdir()
    others[1].write_bytes(b"an earlier export")
    with staging_folder(tmp_path, "model.export") as work:
        assert work.is_dir() and work.parent == tmp_path and not left.exists()
        (work / "x").write_bytes(b"x")
    assert not work.exists() and all(path.exists() for path in others)
