"""Training recipes for the generalisation studies: one train.py run per recipe, reused when unchanged."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from skinseg.errors import OutputExistsError

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def recipe_folder(name: str) -> str:
    """A folder name for a recipe label ("seed26 + composite 0.5" -> "seed26_composite_0.5")."""
    kept = "".join(char if char.isalnum() or char in "._-" else "_" for char in name)
    return "_".join(part for part in kept.split("_") if part)


def train_recipe(run_dir: Path, overrides: list[str], env: dict[str, str]) -> float:
    """Trains one recipe with train.py in `run_dir` (or reuses a finished run); returns training minutes.

    Raises:
        FileExistsError: `run_dir` holds an unfinished run, or one with other overrides.
        RuntimeError: training failed (the log is in `run_dir`).
    """
    marker = run_dir / "finished.json"
    if marker.exists():
        finished = json.loads(marker.read_text())
        if finished["overrides"] == overrides:
            return finished["minutes"]
        raise OutputExistsError(
            f"{run_dir} holds a finished run with other overrides {finished['overrides']}; "
            "pass another --runs-dir or remove that folder"
        )
    if run_dir.exists():
        raise OutputExistsError(
            f"{run_dir} holds an unfinished run; remove it to retrain, or finish it with train.py "
            f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'} in a new folder"
        )
    command = [sys.executable, str(PROJECT_ROOT / "train.py"), *overrides, f"hydra.run.dir={run_dir}"]
    start = time.perf_counter()
    completed = subprocess.run(command, cwd=PROJECT_ROOT, env=env)
    minutes = (time.perf_counter() - start) / 60
    if completed.returncode != 0:
        raise RuntimeError(f"training failed ({' '.join(command)}); see {run_dir}")
    marker.write_text(json.dumps({"overrides": overrides, "minutes": minutes}, indent=2))
    return minutes


def best_checkpoint(run_dir: Path) -> Path:
    found = sorted((run_dir / "checkpoints").glob("best-*.ckpt"))
    if not found:
        raise FileNotFoundError(f"no best-*.ckpt in {run_dir / 'checkpoints'}")
    return found[-1]
