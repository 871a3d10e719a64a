"""Ship a checkpoint as the package's default skin segmenter: `python export.py ship --ckpt CKPT`.

Exports the checkpoint to ONNX fp32 and int8 (post-training quantization for one engine,
x86 by default) with export.py's checks, refuses an int8 model that strays from its float
model by more than `INT8_FLOAT_TOLERANCE`, and writes into `skinseg/inference/default_model/`:

    unet_skin.onnx        fp32, what `Session()` and `python -m skinseg.predict` load
    unet_skin.int8.onnx   int8 (QDQ), about 3x smaller and faster on CPUs with VNNI
    unet_skin.json        export.py's card (parity, int8 deviations, hashes)
    MODEL_CARD.md           data, recipe, figures, licence: what a user reads

Files already there are replaced only with `--overwrite`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from skinseg.checkpoints import load_network
from skinseg.errors import CheckFailedError, UsageError
from skinseg.export.checkpoint import dataset_table, export_checkpoint, figure
from skinseg.files import refuse_existing, staging_folder
from skinseg.inference.processing import DEFAULT_ZOOM_BELOW
from skinseg.inference.session import DEFAULT_MODEL_DIR, DEFAULT_MODEL_NAME

# the shipped int8 model against its fp32 twin: mean |Δp| on the validation images at full
# resolution (PTQ here gives 0.003-0.004) and the share of pixels on the same side of 0.5
INT8_FLOAT_TOLERANCE = 0.01
INT8_SAME_DECISION = 0.99

CITATIONS = {
    "sfa": "Casati et al., SFA: a human skin image database based on FERET and AR, 2013",
    "abd": "Topiwala et al., BIBE 2019",
    "hgr_subset": "Kawulok et al., HGR database",
    "fasseg_frontal02": "Khan et al., FASSEG, ICIP 2015",
    "ccp": "Yang et al., Clothing Co-Parsing by Joint Image Segmentation and Labeling, CVPR 2014 (Apache-2.0)",
    "negatives": "Huang et al., Urban100, CVPR 2015; Hays & Efros, Scene Completion Using Millions of "
                 "Photographs (Sun-Hays 80), 2007",
    "lfw_faces": "Kae et al., Augmenting CRFs with Boltzmann Machine Shape Priors for Image Labeling (LFW Part "
                 "Labels), CVPR 2013; Huang et al., Labeled Faces in the Wild, 2007",
}
LICENCE = (
    "The weights were learnt from research datasets whose images carry no licence for reuse. "
    "Use them for research and testing; cite the datasets above in any work built on them. "
    "The skinseg code is under the project's licence; these weights are not a product."
)


def shipped_files(out_dir: Path) -> list[Path]:
    names = [f"{DEFAULT_MODEL_NAME}.onnx", f"{DEFAULT_MODEL_NAME}.int8.onnx", f"{DEFAULT_MODEL_NAME}.json",
             "MODEL_CARD.md"]
    return [out_dir / name for name in names]


def recipe(run_config: dict[str, Any]) -> dict[str, Any]:
    """The training settings a user needs to reproduce the run (from the checkpoint's config)."""
    data, model, trainer = run_config.get("data", {}), run_config.get("model", {}), run_config.get("trainer", {})
    # runs before data.augment named its steps kept them as flat keys (augment: seed26|none, hflip: 0.5, ...),
    # and the input side as image_size
    keys = ("input_size", "image_size", "resize_mode", "batch_size", "augment", "composite", "hflip", "vflip",
            "rotate90", "crop", "zoom_out", "person_paste", "scene_crop", "skin_tone", "weights")
    settings = {key: data.get(key) for key in keys if key in data}
    if isinstance(settings.get("augment"), dict):  # the steps that were on, with their parameters
        settings["augment"] = {name: parameters for name, parameters in settings["augment"].items()
                               if parameters and parameters.get("p", 0) > 0}
    return {
        "tags": run_config.get("tags"),
        "seed": run_config.get("seed"),
        "data": settings,
        "datasets": data.get("datasets"),
        "loss": {key: value for key, value in (model.get("loss") or {}).items() if key != "_target_"},
        "optimizer": {key: value for key, value in (model.get("optimizer") or {}).items() if not key.startswith("_")},
        "epochs": trainer.get("max_epochs"),
        "precision": trainer.get("precision"),
        "started_from": Path(model["pretrained"]).name if model.get("pretrained") else None,
        "encoder_weights": Path(str(model["encoder_weights"])).name if model.get("encoder_weights") else None,
        "train_on_val": data.get("train_on_val") or [],
    }


def model_card_markdown(card: dict[str, Any], notes: str = "") -> str:
    """MODEL_CARD.md from the shipped card: model, files, data, recipe, figures, licence."""
    architecture, shipped = card["architecture"], card["shipped"]
    training = shipped["recipe"]
    names = card.get("dataset_names") or training.get("datasets") or []
    # the val views (view_dark_tone, ...) are validation copies made from these sets, not training data
    trained_on = training.get("datasets") or [name for name in names if not name.startswith("view_")]
    best = card.get("val_metrics_at_training_resolution") or {}
    lines = [
        f"# {DEFAULT_MODEL_NAME}: the skin segmenter shipped with skinseg {card['skinseg_version']}",
        "",
        (f"{architecture['net']['name']} ({architecture['parameters']:,} parameters) "
         + (f"fine-tuned from `{training['encoder_weights']}`, " if training.get("encoder_weights")
            else "trained from scratch, ")
         + f"input {card['input']['size']} px ({card['input']['resize']}), output skin probabilities at the "
         "input's size, which `Session` brings back to the photo's size with the colour guided filter (edges "
         "follow the photo's; `upsample=\"lanczos\"`: the original's resize). "
         + (f"When the largest skin region covers less than {small['zoom_below']:.0%} of the frame (people far "
            f"away), `Session` runs it again at {small['zoom']:g} times that side and keeps the second pass. "
            if (small := card.get("small_skin_pass")) else "")
         + "Load it with `skinseg.inference.Session()` or `python -m skinseg.predict IN OUT`."),
        "",
        "| file | bytes | sha256 |",
        "|---|---:|---|",
        *[f"| {name} | {info['bytes']:,} | `{info['sha256'][:16]}…` |" for name, info in card["files"].items()],
        "",
        # the notes first: they hold the figures on photos the model never saw, which come before in-domain ones
        *(["## Notes", "", notes.strip(), ""] if notes else []),
        "## Training data",
        "",
        *[f"- `{name}`: {CITATIONS.get(name, 'user dataset')}" for name in trained_on],
        "",
        "## Recipe",
        "",
        f"- checkpoint `{shipped['checkpoint']}`, best epoch {best.get('epoch', '?')} (step {best.get('step', '?')})",
        f"- tags {training['tags']}, seed {training['seed']}, {training['epochs']} epochs, {training['precision']}",
        *([f"- started from `{training['started_from']}` (model.pretrained: an earlier stage's checkpoint)"]
          if training.get("started_from") else []),
        f"- data {json.dumps(training['data'])}",
        f"- loss {json.dumps(training['loss'])}, optimizer {json.dumps(training['optimizer'])}",
        "",
        "## Figures",
        "",
        "Validation at the training resolution (the run's best epoch):",
        "",
        "| dataset | IoU@0.5 | MAE (0-255) |",
        "|---|---:|---:|",
        *[f"| {name} | {best[f'val/{name}/miou50']:.4f} | {best[f'val/{name}/mae']:.2f} |"
          for name in names if f"val/{name}/miou50" in best],
        *([f"| pooled | {best['val/miou50']:.4f} | {best['val/mae']:.2f} |"] if "val/miou50" in best else []),
    ]
    evaluation = card.get("validation_at_full_resolution") or {}
    if evaluation:
        lines += ["", f"Full resolution through `Session`, {evaluation['images']} validation images:", "",
                  "| file | mIoU | mIoU@0.5 | mean \\|Δp\\| vs fp32 | same decision as fp32 |", "|---|---:|---:|---:|---:|"]
        for label, scores in evaluation["scores"].items():
            lines.append(f"| {label} | {figure(scores['miou'])} | {figure(scores['miou50'])} | "
                         f"{scores['mean_abs_diff']:.4f} | {scores['same_decision']:.2%} |")
        header, rows = dataset_table(evaluation)
        for row in rows:  # data.train_on_val: its "validation" figures are in-domain training figures
            if row[0] in training.get("train_on_val", []):
                row[0] += " (val trained on)"
        if rows:
            lines += ["", "Per dataset at full resolution (mIoU@0.5 and mean F1 over the images with skin; FPR: "
                      "the mean share of non-skin pixels called skin, on `negatives` the share of each scene):",
                      "", f"| {' | '.join(header)} |", f"|---|{'---:|' * (len(header) - 1)}",
                      *(f"| {' | '.join(row)} |" for row in rows)]
    lines += ["", "## Licence", "", LICENCE, ""]
    return "\n".join(lines)


def ship_checkpoint(
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike = DEFAULT_MODEL_DIR,
    engine: str = "x86",
    data_dirs: Sequence[str] | None = None,
    calibration_images: int = 64,
    eval_images: int | None = None,
    notes: str = "",
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
    size: int | None = None,
    zoom: float = 0.0,
    zoom_below: float = DEFAULT_ZOOM_BELOW,
) -> dict[str, Any]:
    """Exports `checkpoint` as the shipped model into `out_dir`; returns its card.

    `size`, `zoom` and `zoom_below` are how `Session()` runs it (see `export_checkpoint`).

    Raises:
        FileExistsError: a shipped file exists and `overwrite` is False.
        ValueError: `eval_images` is 0 (the int8 check needs validation images).
        RuntimeError: the int8 model strays from fp32 beyond the tolerances (nothing written).
        (and what `export_checkpoint` raises).
    """
    if eval_images == 0:
        raise UsageError("shipping checks int8 against fp32 on validation images: eval_images must be >= 1 or None")
    out_dir = Path(out_dir)
    if not overwrite:
        refuse_existing(shipped_files(out_dir), "pass --overwrite to replace the shipped model")
    with staging_folder(out_dir, "ship") as work:
        card = export_checkpoint(checkpoint, work, DEFAULT_MODEL_NAME, size=size, data_dirs=data_dirs,
                                 engines=[engine], calibration_images=calibration_images, eval_images=eval_images,
                                 progress=progress, zoom=zoom, zoom_below=zoom_below)
        scores = card["validation_at_full_resolution"]["scores"][f"int8 {engine}"]
        if scores["mean_abs_diff"] > INT8_FLOAT_TOLERANCE or scores["same_decision"] < INT8_SAME_DECISION:
            raise CheckFailedError(f"int8 ({engine}) differs from fp32 by mean |Δp| {scores['mean_abs_diff']:.4f} "
                               f"(limit {INT8_FLOAT_TOLERANCE}) with {scores['same_decision']:.2%} same decisions "
                               f"(limit {INT8_SAME_DECISION:.0%}); not shipped")
        (work / f"{DEFAULT_MODEL_NAME}.{engine}.int8.pt").unlink()
        os.replace(work / f"{DEFAULT_MODEL_NAME}.{engine}.int8.onnx", work / f"{DEFAULT_MODEL_NAME}.int8.onnx")
        files = card["files"]
        files[f"{DEFAULT_MODEL_NAME}.int8.onnx"] = files.pop(f"{DEFAULT_MODEL_NAME}.{engine}.int8.onnx")
        del files[f"{DEFAULT_MODEL_NAME}.{engine}.int8.pt"]
        card["checkpoint"] = Path(checkpoint).name  # not this machine's path
        card["shipped"] = {"checkpoint": Path(checkpoint).name, "int8_engine": engine,
                           "int8_float_tolerance": {"mean_abs": INT8_FLOAT_TOLERANCE,
                                                    "same_decision": INT8_SAME_DECISION},
                           "recipe": recipe(load_network(checkpoint).run_config)}
        (work / f"{DEFAULT_MODEL_NAME}.json").write_text(json.dumps(card, indent=2, default=str))
        (work / "MODEL_CARD.md").write_text(model_card_markdown(card, notes))
        for path in shipped_files(out_dir):
            os.replace(work / path.name, path)
    return card
