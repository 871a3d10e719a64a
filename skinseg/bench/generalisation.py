"""Leave-one-dataset-out study: `python -m skinseg.bench.generalisation --holdout hgr_subset`.

In-domain validation overstates how a model does on other people's photos. This study
trains one model per recipe on every dataset but `--holdout` and scores it on all the
held-out dataset's pairs (train and val: none was seen), next to its in-domain val
figures and the classical methods on the same images, so that a recipe is chosen by how
it generalises as well as by val.

A recipe is a name and Hydra overrides on top of the base (`--model`, `--size`,
`--epochs`, `--set`):

    python -m skinseg.bench.generalisation --holdout sfa --epochs 4 \\
        --recipe plain data.augment=none --recipe seed26 --recipe composite data.composite=0.5

Each run trains `train.py` in `--runs-dir/<holdout>/<recipe>`; a finished run (its
`finished.json` records the overrides) is reused when the overrides match, and an
unfinished or different one is never overwritten (the error says what to do). The best
checkpoint by in-domain val is scored, as a user would ship it. Results: printed, and
`results/generalisation/holdout-<name>.{md,csv}`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from skinseg.bench import save_table
from skinseg.checkpoints import load_network
from skinseg.evaluation import POOLED, checkpoint_entries, classical_entries, evaluate, summarise_results
from skinseg.hardware import cpu_info

PUBLIC = ("sfa", "abd", "hgr_subset", "fasseg_frontal02")
DEFAULT_RECIPES = {
    "plain (flips only)": ["data.augment=none"],
    "seed26": [],
    "seed26 + composite 0.5": ["data.composite=0.5"],
    "seed26, letterbox": ["data.resize_mode=letterbox"],
}
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
        raise FileExistsError(
            f"{run_dir} holds a finished run with other overrides {finished['overrides']}; "
            "pass another --runs-dir or remove that folder"
        )
    if run_dir.exists():
        raise FileExistsError(
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


def markdown(rows: list[dict], header: str) -> str:
    """One row per recipe or classical method: held-out figures, then pooled in-domain val."""
    lines = [header, "",
             "| recipe | held-out mIoU@0.5 | held-out F1 | held-out MAE | held-out HCE | in-domain val mIoU@0.5 "
             "| train min | precision | overrides |",
             "|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for row in rows:
        val = f"{row['val_miou50']:.4f}" if row["val_miou50"] is not None else ""
        minutes = f"{row['minutes']:.0f}" if row["minutes"] is not None else ""
        lines.append(f"| {row['recipe']} | {row['miou50']:.4f} | {row['f1']:.4f} | {row['mae']:.2f} | "
                     f"{row['hce']:.1f} | {val} | {minutes} | {row['precision']} | {' '.join(row['overrides'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--holdout", required=True, help="dataset left out of training and scored on all its pairs")
    parser.add_argument("--datasets", nargs="+", default=list(PUBLIC), help="datasets under --data (default: public)")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SKINSEG_DATA", "../shared/datasets")),
                        help="folder holding the datasets (default: $SKINSEG_DATA or ../shared/datasets)")
    parser.add_argument("--model", default="u2netp")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="more Hydra overrides for every recipe (e.g. data.batch_size=8)")
    parser.add_argument("--recipe", nargs="+", action="append", metavar=("NAME", "OVERRIDE"),
                        help="a recipe: its name, then its overrides (repeatable; default: "
                             + "; ".join(DEFAULT_RECIPES) + ")")
    parser.add_argument("--methods", nargs="*", default=["ycbcr", "hsv"], help="classical rows for comparison")
    parser.add_argument("--runs-dir", type=Path, default=PROJECT_ROOT / "logs" / "generalisation")
    parser.add_argument("--out", type=Path, default=Path("results") / "generalisation")
    parser.add_argument("--workers", type=int, default=2, help="scoring processes")
    args = parser.parse_args(argv)

    from skinseg.data.folder import FolderIndex

    if args.holdout not in args.datasets:
        parser.error(f"--holdout {args.holdout!r} is not one of --datasets {args.datasets}")
    recipes = {name: overrides for name, *overrides in args.recipe} if args.recipe else DEFAULT_RECIPES
    kept = [name for name in args.datasets if name != args.holdout]
    base = ["data=public", f"data.datasets=[{','.join(kept)}]", f"model={args.model}",
            f"data.image_size={args.size}", f"trainer.max_epochs={args.epochs}", *args.set]
    data_dir = args.data.expanduser().resolve()
    cache_dir = Path(os.environ.get("SKINSEG_CACHE", PROJECT_ROOT / ".cache"))
    env = {**os.environ, "SKINSEG_DATA": str(data_dir), "SKINSEG_CACHE": str(cache_dir)}
    indexes = {name: FolderIndex(data_dir / name, name=name, cache_dir=cache_dir) for name in args.datasets}
    held_out = indexes[args.holdout].split("all")
    in_domain = [sample for name in kept for sample in indexes[name].split("val")]
    console = Console(width=160)

    trained = {}
    for name, overrides in recipes.items():
        run_dir = args.runs_dir / args.holdout / recipe_folder(name)
        console.print(f"{name}: train.py {' '.join([*base, *overrides])}", markup=False)
        minutes = train_recipe(run_dir, [*base, *overrides], env)
        best = best_checkpoint(run_dir)
        # what trainer.precision=auto resolved to in that run (its checkpoint records the resolved config)
        precision = load_network(best).run_config.get("trainer", {}).get("precision", "")
        trained[name] = (overrides, minutes, precision, checkpoint_entries([str(best)])[0])

    methods, _ = classical_entries(args.methods)
    entries = [entry for *_, entry in trained.values()] + methods
    scores = evaluate(entries, held_out + in_domain, cache_dir, workers=args.workers)
    tables = summarise_results(scores)
    pooled_val = summarise_results(
        {label: [score for score in entry_scores if score["dataset"] != args.holdout]
         for label, entry_scores in scores.items()})[POOLED]
    rows = []
    for name, (overrides, minutes, precision, entry) in [*trained.items(),
                                                          *((m.label, ([], None, "", m)) for m in methods)]:
        figures = tables[args.holdout][entry.label]
        rows.append({"recipe": name, "overrides": overrides, "minutes": minutes, "precision": precision,
                     "val_miou50": pooled_val[entry.label]["miou50"],
                     **{key: figures[key] for key in ("miou50", "f1", "mae", "hce")}})
    header = (f"Held out: {args.holdout} (all {len(held_out)} pairs, never trained on); in-domain val: "
              f"{', '.join(kept)} ({len(in_domain)} pairs, pooled). {args.model} at {args.size} px, "
              f"{args.epochs} epochs, base overrides: {' '.join(base)}. Best checkpoint by in-domain val. "
              f"Trained on {cpu_info().describe()}.")
    text = markdown(rows, header)
    console.print(text, markup=False)
    save_table(args.out, f"holdout-{args.holdout}", text,
               ["recipe", "overrides", "train_minutes", "precision", "heldout_miou50", "heldout_f1", "heldout_mae",
                "heldout_hce", "val_miou50"],
               [[row["recipe"], " ".join(row["overrides"]), row["minutes"], row["precision"], row["miou50"], row["f1"],
                 row["mae"], row["hce"], row["val_miou50"]] for row in rows])


if __name__ == "__main__":
    main()
