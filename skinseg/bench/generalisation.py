"""Generalisation studies: the held-out protocol (the default), leave one dataset out
(`--holdout NAME`) or scenes (`--scenes`).

`python -m skinseg.bench.generalisation [--minutes 10] [--recipe NAME OVERRIDE ...]`: the
standing protocol by which recipes are chosen (`skinseg.bench.protocol`): each recipe is
trained for the same wall time without ccp, hgr_subset and lfw_faces and scored on them.

`python -m skinseg.bench.generalisation --holdout hgr_subset`:
In-domain validation overstates how a model does on other people's photos. This study
trains one model per recipe on every dataset but `--holdout` and scores it on all the
held-out dataset's pairs (train and val: none was seen), next to its in-domain val
figures and the classical methods on the same images, so that a recipe is chosen by how
it generalises as well as by val.

A recipe is a name and Hydra overrides on top of the base (`--model`, `--size`,
`--epochs`, `--set`):

    python -m skinseg.bench.generalisation --holdout sfa --epochs 4 \\
        --recipe plain data.augment.seed26.p=0 --recipe seed26 --recipe composite data.augment.composite.p=0.5

Each run trains `train.py` in `--runs-dir/<holdout>/<recipe>`; a finished run (its
`finished.json` records the overrides) is reused when the overrides match, and an
unfinished or different one is never overwritten (the error says what to do). The best
checkpoint by in-domain val is scored, as a user would ship it. Results: printed, and
`results/generalisation/holdout-<name>.{md,csv}`.

`python -m skinseg.bench.generalisation --scenes --recipe flips data.augment.seed26.p=0 --recipe context
data.augment.seed26.p=0 data.augment.zoom_out.p=0.3 data.augment.person_paste.p=0.3`: trains each recipe twice on the
public data (scenes included): once with every dataset, once with `ccp` held out of training
entirely (no ccp photos, no pasted ccp people: only the `negatives` and the augmentation
teach scenes), and scores both at full resolution, side by side, on the ccp val split
(mIoU@0.5, F1), the negatives val split (FPR: the share of each scene called skin), each
close-up val split and the validation views (`skinseg.augment.context.VIEWS`, written once
as folder datasets), beside classical methods. The held-out rows are the honest signal
for photos from other sources. Results: `results/generalisation/scenes.{md,csv}`.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from PIL import Image
from rich.console import Console

from skinseg.augment.context import VIEW_PREFIX, VIEWS
from skinseg.bench import add_output_options, check_tables, save_table
from skinseg.bench.protocol import DEFAULT_RECIPES as DEFAULT_PROTOCOL_RECIPES
from skinseg.bench.protocol import run_protocol
from skinseg.bench.recipes import PROJECT_ROOT, best_checkpoint, recipe_folder, train_recipe
from skinseg.checkpoints import load_network
from skinseg.errors import ArgumentParser, add_debug_option, at_least, positive_float, user_command
from skinseg.evaluation import POOLED, checkpoint_entries, classical_entries, evaluate, summarise_results
from skinseg.hardware import cpu_info
from skinseg.settings import set_command_defaults

PUBLIC = ("sfa", "abd", "hgr_subset", "fasseg_frontal02")
SCENES, NEGATIVES = "ccp", "negatives"
DEFAULT_SCENE_RECIPES = {
    "flips only": ["data.augment.seed26.p=0"],
    "context 0.3": ["data.augment.seed26.p=0", "data.augment.zoom_out.p=0.3", "data.augment.person_paste.p=0.3", "data.augment.scene_crop.p=0.3",
                    "data.augment.skin_tone.p=0.3"],
}
# what holding ccp out of training takes: its photos, its people pasted, and the views made of them
CCP_HELD_OUT = [f"data.datasets=[{','.join([*PUBLIC, NEGATIVES])}]", "data.people=null", "data.augment.person_paste.p=0",
                "data.val_views=[dark_tone,zoom_out]"]
DEFAULT_RECIPES = {
    "plain (flips only)": ["data.augment.seed26.p=0"],
    "seed26": [],
    "seed26 + composite 0.5": ["data.augment.composite.p=0.5"],
    "seed26, letterbox": ["model.resize_mode=letterbox"],
}


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


def materialise_views(data_dir: Path, cache_dir: Path, images: int) -> list[tuple[str, Path]]:
    """Writes each validation view of the public data as a folder dataset; returns (name, folder).

    The views are rendered at full resolution from the public val splits (close-ups,
    negatives backgrounds, ccp people) by the datamodule's own view set, into
    `cache_dir/views/<view>-<images>/` (images/, masks/, splits.json listing all as val). A
    folder is reused when its splits.json exists (it is written last).
    """
    from skinseg.data.datamodule import SkinDataModule
    from skinseg.io import save_png

    datamodule = SkinDataModule(data_dir, datasets=[*PUBLIC, SCENES, NEGATIVES], backgrounds=NEGATIVES, people=SCENES,
                                scene_datasets=[SCENES, NEGATIVES], val_views=list(VIEWS), val_view_images=images,
                                augment={}, cache_dir=cache_dir, num_workers=0)
    datamodule.setup("validate")
    view_set = datamodule.val_set.datasets[1]
    folders = {view: cache_dir / "views" / f"{view}-{images}" for view in VIEWS}
    stems: dict[str, list[str]] = {view: [] for view in VIEWS}
    for index, (view, position, _) in enumerate(view_set.items):
        folder, stem = folders[view], f"{view}_{position:04d}"
        stems[view].append(stem)
        if (folder / "splits.json").exists():
            continue
        image, mask = view_set.render(index)
        for kind, array in (("images", image), ("masks", mask)):
            (folder / kind).mkdir(parents=True, exist_ok=True)
            save_png(Image.fromarray(array), folder / kind / f"{stem}.png")
    for view, folder in folders.items():
        if not (folder / "splits.json").exists():
            (folder / "splits.json").write_text(json.dumps({"train": [], "val": stems[view]}))
    return [(VIEW_PREFIX + view, folder) for view, folder in folders.items()]


def scenes_markdown(rows: list[dict], header: str, closeups: list[str]) -> str:
    """One row per recipe and ccp setting, or classical method: scenes, close-ups, views."""
    columns = ["recipe", "ccp in training", "ccp mIoU@0.5", "ccp F1", "negatives FPR", *closeups,
               *(f"{view} mIoU@0.5" for view in VIEWS), "skin_wall FPR", "train min", "precision"]
    lines = [header, "", "| " + " | ".join(columns) + " |", "|---|---|" + "---:|" * (len(columns) - 4) + "---|---|"]
    for row in rows:
        cells = [row["recipe"], row["ccp"], *(format_figure(row[key]) for key in row["figures"]),
                 "" if row["minutes"] is None else f"{row['minutes']:.0f}", row["precision"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_figure(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def scenes_study(args: argparse.Namespace, recipes: dict[str, list[str]]) -> None:
    """`--scenes`: every recipe trained with ccp and with ccp held out, scored on scenes, close-ups and views."""
    from skinseg.data.folder import split_samples

    data_dir = args.data.expanduser().resolve()
    cache_dir = Path(os.environ.get("SKINSEG_CACHE", PROJECT_ROOT / ".cache"))
    env = {**os.environ, "SKINSEG_DATA": str(data_dir), "SKINSEG_CACHE": str(cache_dir)}
    base = ["data=public", f"model={args.model}", f"model.input_size={args.size}", f"trainer.max_epochs={args.epochs}",
            *args.set]
    console = Console(width=160)
    trained = []
    for name, overrides in recipes.items():
        for ccp, extra in (("yes", []), ("held out", CCP_HELD_OUT)):
            run_dir = args.runs_dir / "scenes" / f"{recipe_folder(name)}{'' if ccp == 'yes' else '_ccp_held_out'}"
            console.print(f"{name} (ccp {ccp}): train.py {' '.join([*base, *overrides, *extra])}", markup=False)
            minutes = train_recipe(run_dir, [*base, *overrides, *extra], env)
            best = best_checkpoint(run_dir)
            precision = load_network(best).run_config.get("trainer", {}).get("precision", "")
            trained.append((name, ccp, minutes, precision, checkpoint_entries([str(best)])[0]))

    folders = [(dataset, data_dir / dataset) for dataset in (*PUBLIC, SCENES, NEGATIVES)]
    folders += materialise_views(data_dir, cache_dir, args.view_images)
    samples = split_samples(folders, "val", cache_dir=cache_dir)
    methods, _ = classical_entries(args.methods)
    scores = evaluate([entry for *_, entry in trained] + methods, samples, cache_dir, workers=args.workers)
    tables = summarise_results(scores)
    keys = [(SCENES, "miou50"), (SCENES, "f1"), (NEGATIVES, "fpr"), *((name, "miou50") for name in PUBLIC),
            *((VIEW_PREFIX + view, "miou50") for view in VIEWS), (VIEW_PREFIX + "skin_wall", "fpr")]
    rows = []
    for name, ccp, minutes, precision, entry in [*trained, *((m.label, "", None, "", m) for m in methods)]:
        figures = {f"{dataset}/{key}": tables[dataset][entry.label][key] for dataset, key in keys}
        rows.append({"recipe": name, "ccp": ccp, "minutes": minutes, "precision": precision, "figures": figures,
                     **figures})
    header = (f"Scenes study: {args.model} at {args.size} px, {args.epochs} epochs, base overrides: {' '.join(base)}; "
              f"best checkpoint by val/miou50; full-resolution val splits and views ({args.view_images} images each). "
              f"Trained on {cpu_info().describe()}.")
    text = scenes_markdown(rows, header, list(PUBLIC))
    console.print(text, markup=False)
    figure_keys = list(rows[0]["figures"])
    save_table(args.out, "scenes", text, ["recipe", "ccp_in_training", *figure_keys, "train_minutes", "precision"],
               [[row["recipe"], row["ccp"], *(row[key] for key in figure_keys), row["minutes"], row["precision"]]
                for row in rows])


@user_command
def main(argv: list[str]) -> None:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--protocol", action="store_true",
                      help="the held-out protocol (the default): train without ccp, hgr_subset, lfw_faces; score them")
    mode.add_argument("--holdout", help="dataset left out of training and scored on all its pairs "
                      "(train + val; never its test split)")
    mode.add_argument("--scenes", action="store_true",
                      help="train each recipe with ccp and with ccp held out; score scenes, close-ups, views")
    parser.add_argument("--datasets", nargs="+", default=list(PUBLIC),
                        help="datasets under --data (default: public)")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SKINSEG_DATA", "../shared/datasets")),
                        help="folder holding the datasets (default: $SKINSEG_DATA or ../shared/datasets)")
    parser.add_argument("--model")
    parser.add_argument("--size", type=at_least(32))
    parser.add_argument("--epochs", type=at_least(1))
    parser.add_argument("--set", nargs="*", metavar="KEY=VALUE",
                        help="more Hydra overrides for every recipe (e.g. data.batch_size=8)")
    parser.add_argument("--recipe", nargs="+", action="append", metavar=("NAME", "OVERRIDE"),
                        help="a recipe: its name, then its overrides (repeatable; default: "
                             + "; ".join(DEFAULT_RECIPES) + ")")
    parser.add_argument("--methods", nargs="*",
                        help="classical rows for comparison (default: ycbcr hsv; --scenes: ycbcr hsv_ycbcr gmm, the "
                             "best on ccp and negatives)")
    parser.add_argument("--runs-dir", type=Path, default=PROJECT_ROOT / "logs" / "generalisation")
    add_output_options(parser, Path("results") / "generalisation")
    parser.add_argument("--workers", type=at_least(1), help="scoring processes")
    parser.add_argument("--view-images", type=at_least(1), help="images per validation view (--scenes)")
    parser.add_argument("--minutes", type=positive_float,
                        help="training wall time of every recipe (--protocol: steps probed to fit it)")
    parser.add_argument("--probe-steps", type=at_least(1), help="timed steps per recipe (--protocol)")
    parser.add_argument("--infer-sizes", type=at_least(32), nargs="*",
                        help="also score every recipe's network at these input sides (--protocol)")
    parser.add_argument("--zoom", type=float, nargs="*",
                        help="also score every recipe with the small-skin pass at these factors (--protocol)")
    parser.add_argument("--weights", type=Path,
                        default=Path(os.environ.get("SKINSEG_WEIGHTS", "../shared/weights")),
                        help="folder of pretrained weights files (default: $SKINSEG_WEIGHTS or ../shared/weights)")
    add_debug_option(parser)
    set_command_defaults(parser, "bench", "generalisation")
    args = parser.parse_args(argv)
    recipes = {name: overrides for name, *overrides in args.recipe} if args.recipe else None
    stem = f"holdout-{args.holdout}" if args.holdout else "scenes" if args.scenes else "protocol"
    check_tables(args.out, [stem], args.overwrite)
    if not (args.scenes or args.holdout):
        if args.minutes <= 0 or args.probe_steps < 1 or any(size < 32 for size in args.infer_sizes):
            parser.error("--minutes must be > 0, --probe-steps >= 1 and --infer-sizes >= 32")
        if any(zoom <= 1 for zoom in args.zoom):
            parser.error("--zoom factors must be > 1")
        args.methods = ["ycbcr", "hsv_ycbcr", "gmm"] if args.methods is None else args.methods
        run_protocol(args, recipes or DEFAULT_PROTOCOL_RECIPES)
        return
    if args.scenes:
        recipes = recipes or DEFAULT_SCENE_RECIPES
        args.methods = ["ycbcr", "hsv_ycbcr", "gmm"] if args.methods is None else args.methods
        scenes_study(args, recipes)
        return
    args.methods = ["ycbcr", "hsv"] if args.methods is None else args.methods

    from skinseg.data.folder import split_samples

    if args.holdout not in args.datasets:
        parser.error(f"--holdout {args.holdout!r} is not one of --datasets {args.datasets}")
    recipes = recipes or DEFAULT_RECIPES
    kept = [name for name in args.datasets if name != args.holdout]
    base = ["data=public", f"data.datasets=[{','.join(kept)}]", "data.val_views=[]", f"model={args.model}",
            f"model.input_size={args.size}", f"trainer.max_epochs={args.epochs}", *args.set]
    data_dir = args.data.expanduser().resolve()
    cache_dir = Path(os.environ.get("SKINSEG_CACHE", PROJECT_ROOT / ".cache"))
    env = {**os.environ, "SKINSEG_DATA": str(data_dir), "SKINSEG_CACHE": str(cache_dir)}
    held_out = split_samples([(args.holdout, data_dir / args.holdout)], "all", cache_dir=cache_dir)
    in_domain = split_samples([(name, data_dir / name) for name in kept], "val", cache_dir=cache_dir)
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
