"""The held-out protocol: every recipe choice is made on photos the model never trained on.

`python -m skinseg.bench.generalisation` (or `--protocol`) trains each recipe once on the
public data *without* ccp, hgr_subset and lfw_faces (the close-ups sfa, abd and
fasseg_frontal02 plus the scenes without people, `negatives`), and scores it at full
resolution on three kinds of photo it never saw:

- ccp val: people in street scenes (skin 1-10 % of the frame);
- hgr_subset, all 178 pairs: hands and forearms;
- lfw_faces val: news photos of faces of every skin tone, also per skin-tone third by the
  individual typology angle of the labelled skin (`metrics.skin_tone_ita`); its test
  split stays for the final report (`evaluate.py split=test`);

beside the in-domain val splits (sfa, abd, fasseg_frontal02 mIoU@0.5, negatives FPR) and
classical methods on the same images. A recipe that gains in-domain but loses on a
held-out set is a regression.

Recipes are compared at equal wall time on the same CPU: before training, a recipe's real
training loop (its data, augmentation, model and precision) is timed for a few steps,
and the recipe then trains for as many steps as fit in `--minutes` (its learning-rate
schedule runs to the end). Each run saves its last checkpoint, which is what is scored:
nothing is selected on in-domain validation. `--infer-sizes 320 384` adds rows of each
network run at those input sides instead of its training size ("NAME @384"); `--zoom 2`
rows of each with the small-skin pass (`skinseg.inference.processing.Predictor`, "NAME zoom 2"). Runs, probes and predictions are reused
when the overrides are unchanged. Results: printed, and `results/generalisation/protocol.{md,csv}`.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skinseg.evaluation import TONE_THIRDS, tone_table_name, tone_tables, tone_thirds
from skinseg.files import write_json

HELD_OUT = {"ccp": "val", "hgr_subset": "all", "lfw_faces": "val"}  # dataset -> split scored
TRAINED_ON = ("sfa", "abd", "fasseg_frontal02", "negatives")
TONE_DATASET = "lfw_faces"
# what holding ccp, hgr_subset and lfw_faces out of training takes: no photos, no pasted ccp
# people, scene crops from the negatives only, no views made of held-out photos
BASE_OVERRIDES = [
    "data=public", f"data.datasets=[{','.join(TRAINED_ON)}]", "data.people=null", "data.augment.person_paste.p=0",
    "data.scene_datasets=[negatives]", "data.val_views=[]", "trainer.max_epochs=-1",
    # the last checkpoint is scored: validation would only cost time
    "++trainer.limit_val_batches=0", "++trainer.num_sanity_val_steps=0", "callbacks.model_checkpoint=null",
]
PASCAL = "model.encoder_weights=${paths.weights_dir}/deeplabv3_mobilenet_v2_pascal.pt"
IMAGENET = "model.encoder_weights=${paths.weights_dir}/mobilenet_v2_imagenet.pt"
MOBILENET = ["model.input_size=256", "data.batch_size=16", "data.augment.seed26.p=0"]
DEFAULT_RECIPES = {
    "u2netp scratch": ["model=u2netp", "model.input_size=320", "data.batch_size=8", "data.augment.seed26.p=0"],
    "unet scratch": ["model=unet", "model.encoder_weights=null", *MOBILENET],
    "unet imagenet": ["model=unet", IMAGENET, *MOBILENET],
    "unet pascal": ["model=unet", PASCAL, *MOBILENET],
    "deeplabv3 pascal": ["model=deeplabv3", PASCAL, *MOBILENET],
}


@dataclass
class Probe:
    """A recipe's timed training steps and the step budget they give."""

    step_seconds: float
    steps: int


def measure_step_seconds(overrides: Sequence[str], work_dir: Path, steps: int = 8, warmup: int = 2) -> float:
    """Median seconds per training step of the recipe's real loop (data, model, precision), in-process.

    Builds the run as train.py would (Hydra config, hardware choices) and fits `steps`
    steps without validation, checkpoints or logs; the first `warmup` steps are not counted.
    """
    import lightning as L
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate
    from omegaconf import open_dict

    from skinseg.bench.train import StepTimer
    from skinseg.training import resolve_hardware

    GlobalHydra.instance().clear()
    with initialize_config_module("skinseg.configs", version_base="1.3"):
        cfg = compose("train", overrides=list(overrides))
    GlobalHydra.instance().clear()
    with open_dict(cfg):
        cfg.paths.output_dir = str(work_dir)
    resolve_hardware(cfg)
    datamodule = instantiate(cfg.data, _convert_="all")
    model = instantiate(cfg.model, _convert_="all")
    timer = StepTimer()
    trainer = L.Trainer(accelerator=cfg.trainer.accelerator, devices=1, precision=cfg.trainer.precision,
                        max_steps=steps + warmup, min_epochs=0, limit_val_batches=0, num_sanity_val_steps=0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[timer], default_root_dir=str(work_dir))
    trainer.fit(model, datamodule=datamodule)
    return statistics.median(timer.times()[warmup:])


def probe_recipe(run_dir: Path, overrides: Sequence[str], minutes: float, probe_steps: int) -> Probe:
    """The recipe's step time and step budget for `minutes`, measured once and kept in run_dir/probe.json."""
    path = run_dir / "probe.json"
    if path.exists():
        kept = json.loads(path.read_text())
        if kept.get("overrides") == list(overrides) and kept.get("minutes") == minutes:
            return Probe(kept["step_seconds"], kept["steps"])
    step_seconds = measure_step_seconds(overrides, run_dir.parent / f".probe-{run_dir.name}", probe_steps)
    probe = Probe(step_seconds, max(1, int(minutes * 60 / step_seconds)))
    write_json(path, {"overrides": list(overrides), "minutes": minutes, "step_seconds": probe.step_seconds,
                      "steps": probe.steps}, indent=2)
    return probe


def tone_figures(tone: dict[str, dict[str, dict]], label: str) -> dict[str, float | None]:
    """mIoU@0.5 of each skin-tone third of TONE_DATASET's images (`tone_tables`), and the lightest minus the darkest."""
    figures = {third: tone.get(tone_table_name(TONE_DATASET, third), {}).get(label, {}).get("miou50")
               for third in TONE_THIRDS}
    if figures["lightest"] is not None and figures["darkest"] is not None:
        figures["gap"] = figures["lightest"] - figures["darkest"]
    else:
        figures["gap"] = None
    return figures


COLUMNS = [  # (title, dataset, figure)
    ("ccp val mIoU@0.5", "ccp", "miou50"), ("ccp F1", "ccp", "f1"), ("hgr_subset all", "hgr_subset", "miou50"),
    ("lfw_faces val", "lfw_faces", "miou50"), ("lfw darkest third", "tone", "darkest"),
    ("lfw lightest third", "tone", "lightest"), ("tone gap", "tone", "gap"), ("sfa", "sfa", "miou50"),
    ("abd", "abd", "miou50"), ("fasseg_frontal02", "fasseg_frontal02", "miou50"),
    ("negatives FPR", "negatives", "fpr"),
]


def format_figure(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def protocol_markdown(rows: list[dict], header: str) -> str:
    """One row per recipe or classical method: held-out figures first, then in-domain val."""
    titles = ["recipe", *(title for title, _, _ in COLUMNS), "steps", "images seen", "s/step", "train min",
              "precision"]
    lines = [header, "", "| " + " | ".join(titles) + " |", "|---|" + "---:|" * (len(titles) - 2) + "---|"]
    for row in rows:
        cells = [row["recipe"], *(format_figure(row["figures"][title]) for title, _, _ in COLUMNS),
                 str(row.get("steps") or ""), str(row.get("images") or ""), format_figure(row.get("step_seconds"), 2),
                 format_figure(row.get("minutes"), 0), row.get("precision", "")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def row_figures(tables: dict, tones: dict[str, float], label: str) -> dict[str, float | None]:
    """The COLUMNS figures of one entry, from `summarise_results` tables and its tone figures."""
    return {title: tones[key] if dataset == "tone" else tables[dataset][label][key] for title, dataset, key in COLUMNS}


def run_protocol(args: Any, recipes: dict[str, list[str]]) -> list[dict]:
    """Probes, trains and scores every recipe (see the module doc); returns the table's rows."""
    import os

    from rich.console import Console

    from skinseg.bench import save_table
    from skinseg.bench.recipes import PROJECT_ROOT, recipe_folder, train_recipe
    from skinseg.checkpoints import load_network
    from skinseg.data.folder import split_samples
    from skinseg.evaluation import checkpoint_entries, classical_entries, evaluate, summarise_results
    from skinseg.hardware import cpu_info

    data_dir = args.data.expanduser().resolve()
    cache_dir = Path(os.environ.get("SKINSEG_CACHE", PROJECT_ROOT / ".cache"))
    env = {**os.environ, "SKINSEG_DATA": str(data_dir), "SKINSEG_CACHE": str(cache_dir),
           "SKINSEG_WEIGHTS": str(args.weights.expanduser().resolve())}
    os.environ.update({key: env[key] for key in ("SKINSEG_DATA", "SKINSEG_CACHE", "SKINSEG_WEIGHTS")})
    console = Console(width=200)
    trained = []
    for name, overrides in recipes.items():
        run_dir = args.runs_dir / "protocol" / recipe_folder(name)
        recipe = [*BASE_OVERRIDES, *args.set, *overrides]
        probe = probe_recipe(run_dir, recipe, args.minutes, args.probe_steps)
        full = [*recipe, f"trainer.max_steps={probe.steps}"]
        console.print(f"{name}: {probe.step_seconds:.2f} s/step -> {probe.steps} steps in {args.minutes:g} min; "
                      f"train.py {' '.join(full)}", markup=False)
        minutes = train_recipe(run_dir / "run", full, env)
        checkpoint = run_dir / "run" / "checkpoints" / "last.ckpt"
        network = load_network(checkpoint)
        batch = network.run_config.get("data", {}).get("batch_size", 0)
        precision = network.run_config.get("trainer", {}).get("precision", "")
        details = {"steps": probe.steps, "images": probe.steps * batch, "step_seconds": probe.step_seconds,
                   "minutes": minutes, "precision": precision}
        for size in [None, *args.infer_sizes]:  # its training size, then other input sides
            for zoom in [None, *args.zoom]:
                # the recipe's name, not the file's ("last")
                label = name + (f" @{size}" if size else "") + (f" zoom {zoom:g}" if zoom else "")
                entry = checkpoint_entries([str(checkpoint)], size=size, zoom=zoom)[0]
                trained.append({"recipe": label, "entry": dataclasses.replace(entry, label=label), **details})

    samples = []
    for dataset, split in [*HELD_OUT.items(), *((name, "val") for name in TRAINED_ON)]:
        samples += split_samples([(dataset, data_dir / dataset)], split, cache_dir=cache_dir)
    thirds = tone_thirds([sample for sample in samples if sample.dataset == TONE_DATASET])
    methods, _ = classical_entries(args.methods)
    scores = evaluate([row["entry"] for row in trained] + methods, samples, cache_dir, workers=args.workers)
    tables = summarise_results(scores)
    tone = tone_tables(scores, {TONE_DATASET: thirds})
    rows = []
    for row in [*trained, *({"recipe": method.label, "entry": method} for method in methods)]:
        label = row["entry"].label
        rows.append({**row, "figures": row_figures(tables, tone_figures(tone, label), label)})
    header = (f"Held-out protocol: trained on {', '.join(TRAINED_ON)}; never on ccp, hgr_subset or lfw_faces. "
              f"Full-resolution mIoU@0.5 on ccp val, all of hgr_subset and lfw_faces val (its thirds by skin "
              f"tone), then in-domain val. Each recipe trained {args.minutes:g} min of steps (probed) on "
              f"{cpu_info().describe()}; its last checkpoint scored.")
    text = protocol_markdown(rows, header)
    console.print(text, markup=False)
    titles = [title for title, _, _ in COLUMNS]
    save_table(args.out, "protocol", text,
               ["recipe", *titles, "steps", "images_seen", "step_seconds", "train_minutes", "precision", "overrides"],
               [[row["recipe"], *(row["figures"][title] for title in titles), row.get("steps"), row.get("images"),
                 row.get("step_seconds"), row.get("minutes"), row.get("precision"),
                 " ".join(recipes.get(row["recipe"], []))] for row in rows])
    return rows
