"""Exporting a trained checkpoint: ONNX fp32, int8 per quantization engine, checks, model card.

`export_checkpoint` writes, into the output folder:
- `<name>.onnx`: fp32, opset 17 (19 for BiRefNet_lite's DeformConv), dynamic batch and
  height/width (BiRefNet_lite: the export size only), images in [0,1] -> probabilities; checked against PyTorch on validation images (max |Δp| <= 1e-4);
- per engine: `<name>.<engine>.int8.onnx` (QDQ, for ONNX Runtime) and
  `<name>.<engine>.int8.pt` (the PyTorch int8 state, `skinseg.quant.load_int8`), by
  post-training static quantization calibrated on training images, or by converting a
  QAT checkpoint (which then exports only its own engine, and no fp32 file);
- `<name>.json`: the model card (architecture, input size, pre-processing, training data,
  validation metrics, files with sizes and SHA-256, parity, int8 agreement and mIoU).
Existing files are never replaced unless `overwrite=True`.
"""

from __future__ import annotations

import datetime
import itertools
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import skinseg
from skinseg.checkpoints import TrainedNetwork, load_network
from skinseg.data.folder import Sample, dataset_folders, load_pair, split_samples
from skinseg.data.transforms import resize_transforms
from skinseg.errors import CheckFailedError, UsageError
from skinseg.export.onnx import export_onnx, has_dynamic_size, onnx_probabilities, required_opset
from skinseg.files import refuse_existing, sha256, staging_folder, write_json
from skinseg.inference.processing import DEFAULT_UPSAMPLE, DEFAULT_ZOOM_BELOW, check_setting
from skinseg.io import read_image
from skinseg.metrics import score_image, summarise
from skinseg.models.head import ProbabilityHead
from skinseg.quant.fx import (
    calibrate,
    check_engine,
    check_quantizable,
    convert,
    prepare_ptq,
    quantized_engine,
    quiet_quantization,
    save_int8,
)

PARITY_TOLERANCE = 1e-4
INT8_PARITY_TOLERANCE = 0.02  # mean |Δp| of ONNX Runtime int8 vs PyTorch int8 (requantization rounding differs)
Progress = Callable[[str], None]


def local_data_folders(data: dict) -> list[tuple[str, Path]]:
    """The folders, on this machine, of the datasets a checkpoint's data config names.

    A checkpoint may come from anywhere, so only names are read from it: its dataset names
    (checked to be plain names) under this machine's data folder ($SKINSEG_DATA, else ./data),
    or, for a run on the demo data, the demo set with this package's own generator settings
    (configs/data/demo.yaml) under this machine's cache ($SKINSEG_CACHE, else ./.cache). The
    file never decides where anything is read or written, nor how much is generated.

    Raises:
        UsageError: the config names a dataset by a path, or by no name at all.
    """
    if data.get("demo") is not None:
        from omegaconf import OmegaConf

        demo_config = Path(skinseg.__file__).parent / "configs" / "data" / "demo.yaml"
        demo = OmegaConf.to_container(OmegaConf.load(demo_config))["demo"]
        here = Path(os.environ.get("PROJECT_ROOT", "."))
        return dataset_folders(os.environ.get("SKINSEG_CACHE") or here / ".cache", None, demo)
    names = data.get("datasets")
    if not names:
        raise UsageError("the checkpoint's run read one dataset folder by its path, which export does not follow; "
                         "give --data DIR [DIR ...]")
    here = Path(os.environ.get("PROJECT_ROOT", "."))
    return dataset_folders(os.environ.get("SKINSEG_DATA") or here / "data", [str(name) for name in names])


def checkpoint_samples(run_config: dict, split: str, data_dirs: Sequence[str] | None = None) -> list[Sample]:
    """The samples of a split: from `data_dirs` (folder datasets), else the run's datasets found here
    (`local_data_folders`)."""
    if data_dirs:
        folders = [(Path(d).resolve().name, Path(d)) for d in data_dirs]
        val_fraction, resize_masks = 0.1, True
    else:
        data = run_config.get("data")
        if not data:
            raise UsageError("the checkpoint records no data config; give --data DIR [DIR ...]")
        folders = local_data_folders(data)
        val_fraction, resize_masks = float(data.get("val_fraction", 0.1)), bool(data.get("resize_masks", False))
    return split_samples(folders, split, val_fraction, resize_masks)


def interleave_datasets(samples: Sequence[Sample]) -> list[Sample]:
    """The samples reordered round robin over their datasets (each dataset's order kept), so that
    the first N cover every dataset: int8 ranges calibrated on faces alone clip scenes."""
    by_dataset: dict[str, list[Sample]] = {}
    for sample in samples:
        by_dataset.setdefault(sample.dataset, []).append(sample)
    rounds = itertools.zip_longest(*by_dataset.values())
    return [sample for round_ in rounds for sample in round_ if sample is not None]


def model_inputs(samples: Sequence[Sample], size: int, resize_mode: str) -> np.ndarray:
    """float32 (N,3,size,size) in [0,1]: the images resized as in training (squash or letterbox)."""
    resize = resize_transforms(size, resize_mode)
    batch = np.zeros((len(samples), 3, size, size), np.float32)
    for index, sample in enumerate(samples):
        image = read_image(sample.image)
        for step in resize:
            image = step(image=image)["image"]
        batch[index, :, : image.shape[0], : image.shape[1]] = image.transpose(2, 0, 1) / 255.0
    return batch


def validation_scores(predictors: dict[str, Any], samples: Sequence[Sample], reference: str,
                      progress: Progress | None = None) -> dict[str, dict[str, Any]]:
    """Each predictor's masks at full resolution: overall, per dataset, and against `reference`.

    Args:
        predictors: label -> object with `predict(rgb) -> uint8 (H,W)` (`create_predictor`'s models).
        samples: validation pairs.
        reference: the label the others are compared with (the fp32 model).

    Returns:
        {"scores": label -> {"miou", "miou50" (`skinseg.metrics.summarise`: means over the images
        with skin), "mean_abs_diff" (0-1, vs reference), "same_decision" (fraction of pixels on the
        same side of 0.5 as the reference), over all images}, "datasets": dataset -> label ->
        {"images", "images_with_skin", "miou50", "f1" (images with skin; None without any), "fpr"
        (mean over all images: on a set of empty masks, the share of each image called skin)}}.
    """
    records: dict[str, list[dict[str, Any]]] = {label: [] for label in predictors}
    for index, sample in enumerate(samples):
        image, gt = load_pair(sample)
        masks = {label: predictor.predict(image) for label, predictor in predictors.items()}
        for label, mask in masks.items():
            records[label].append({
                **score_image(mask, gt, with_hce=False), "dataset": sample.dataset,
                "mean_abs_diff": np.abs(mask.astype(np.int16) - masks[reference]).mean() / 255,
                "same_decision": np.mean((mask >= 128) == (masks[reference] >= 128))})
        if progress:
            progress(f"validation {index + 1}/{len(samples)}")

    scores, datasets = {}, {}
    for label, rows in records.items():
        summary = summarise(rows)
        scores[label] = {"miou": summary["miou"], "miou50": summary["miou50"],
                         "mean_abs_diff": float(np.mean([row["mean_abs_diff"] for row in rows])),
                         "same_decision": float(np.mean([row["same_decision"] for row in rows]))}
        for dataset in dict.fromkeys(row["dataset"] for row in rows):
            summary = summarise([row for row in rows if row["dataset"] == dataset])
            datasets.setdefault(dataset, {})[label] = {
                key: summary[key] for key in ("images", "images_with_skin", "miou50", "f1", "fpr")}
    return {"scores": scores, "datasets": datasets}


def figure(value: float | None) -> str:
    """A score with four decimals, or "-" where there is none (e.g. mIoU on a set without skin)."""
    return "-" if value is None else f"{value:.4f}"


def dataset_table(evaluation: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-dataset full-resolution figures of `validation_scores`."""
    labels = list(evaluation["scores"])
    header = ["dataset", "images", *(f"{label} {key}" for label in labels for key in ("mIoU@0.5", "F1", "FPR"))]
    rows = [[dataset, str(next(iter(per_label.values()))["images"]),
             *(figure(per_label[label][key]) for label in labels for key in ("miou50", "f1", "fpr"))]
            for dataset, per_label in evaluation.get("datasets", {}).items()]
    return header, rows


def planned_files(out_dir: Path, name: str, engines: Sequence[str], with_fp32: bool) -> list[Path]:
    files = [out_dir / f"{name}.json"] + ([out_dir / f"{name}.onnx"] if with_fp32 else [])
    return files + [out_dir / f"{name}.{engine}.int8.{ext}" for engine in engines for ext in ("onnx", "pt")]


def export_int8(trained: TrainedNetwork, engine: str, size: int, calibration: np.ndarray, onnx_path: Path,
                pt_path: Path, metadata: dict[str, Any]) -> ProbabilityHead:
    """Quantizes (PTQ with `calibration`, or converts the QAT graph), writes both files; returns the int8 head."""
    mean, std = trained.hparams.get("input_mean"), trained.hparams.get("input_std")
    method = (trained.quantization or {}).get("method", "ptq")
    if method == "qat":
        prepared = trained.net
    else:
        prepared = prepare_ptq(trained.net, engine, size)
        calibrate(ProbabilityHead(prepared, mean, std), (torch.from_numpy(batch) for batch in np.split(
            calibration, range(8, len(calibration), 8))))
    quantized = convert(prepared, engine)
    head = ProbabilityHead(quantized, mean, std).eval()
    with quantized_engine(engine), quiet_quantization():
        export_onnx(head, onnx_path, size, metadata={**metadata, "skinseg.quantization": f"{method}/{engine}"})
    save_int8(quantized, pt_path, trained.hparams["net"], engine, method, size)
    return head


def load_for_export(checkpoint: str | os.PathLike, engines: Sequence[str]) -> tuple[TrainedNetwork, list[str]]:
    """Loads a checkpoint and settles the int8 engines (a QAT checkpoint: its own engine only).

    Raises:
        UnknownNameError: an unknown engine.
        UsageError: an engine other than a QAT checkpoint's own, or engines for a network that
            cannot be quantized (BiRefNet_lite).
    """
    trained = load_network(checkpoint)
    qat = trained.quantization
    engines = list(dict.fromkeys(engines))
    for engine in engines:
        check_engine(engine)
    if qat:
        if any(engine != qat["engine"] for engine in engines):
            raise UsageError(f"{checkpoint} was trained with QAT for engine {qat['engine']!r}; "
                             f"it can only be exported for that engine, not {engines}")
        engines = [qat["engine"]]
    if engines:
        check_quantizable(trained.net)
    return trained, engines


def export_verified(trained: TrainedNetwork, work: Path, name: str, size: int, engines: Sequence[str],
                    parity_inputs: np.ndarray, calibration: np.ndarray,
                    report: Progress, zoom: dict[str, float] | None = None) -> tuple[list[Path], dict[str, Any], dict[str, Any]]:
    """Writes the fp32 (unless QAT) and int8 files into `work`, each checked against PyTorch.

    `zoom` ({"zoom", "zoom_below"}) turns on the small-skin pass in the files' metadata.

    Returns:
        The files written, the card's "onnx" entry (opset, parity) and its "int8" entry per engine.

    Raises:
        CheckFailedError: ONNX Runtime disagrees with PyTorch beyond the tolerances.
    """
    qat = trained.quantization
    mean, std = trained.hparams.get("input_mean"), trained.hparams.get("input_std")
    metadata = {"skinseg.input_size": size, "skinseg.resize": trained.resize_mode, "skinseg.upsample": DEFAULT_UPSAMPLE,
                "skinseg.model": name, "skinseg.version": skinseg.__version__,
                # applied inside the graph; recorded for readers of the file
                "skinseg.normalisation": json.dumps({"mean": mean, "std": std}),
                **{f"skinseg.{key}": value for key, value in (zoom or {}).items()}}
    card_onnx: dict[str, Any] = {"opset": required_opset(trained.net), "dynamic_size": has_dynamic_size(trained.net),
                                 "parity_images": len(parity_inputs)}
    head = ProbabilityHead(trained.net, mean, std).eval()
    with torch.inference_mode(), quiet_quantization():
        reference_probabilities = head(torch.from_numpy(parity_inputs)).numpy()
    files: list[Path] = []
    if not qat:
        report("exporting fp32 ONNX")
        onnx_path = export_onnx(head, work / f"{name}.onnx", size, metadata=metadata)
        difference = float(np.abs(onnx_probabilities(onnx_path, parity_inputs) - reference_probabilities).max())
        if difference > PARITY_TOLERANCE:
            raise CheckFailedError(f"{name}.onnx: ONNX Runtime differs from PyTorch by {difference:.2e} "
                                   f"(> {PARITY_TOLERANCE:g}) on {len(parity_inputs)} validation images; not written")
        card_onnx["parity_max_abs_probability"] = difference
        files.append(onnx_path)

    int8: dict[str, Any] = {}
    for engine in engines:
        report(f"quantizing for {engine}")
        onnx_path = work / f"{name}.{engine}.int8.onnx"
        pt_path = work / f"{name}.{engine}.int8.pt"
        int8_head = export_int8(trained, engine, size, calibration, onnx_path, pt_path, metadata)
        with torch.inference_mode(), quantized_engine(engine), quiet_quantization():
            torch_int8 = int8_head(torch.from_numpy(parity_inputs)).numpy()
        onnx_int8 = onnx_probabilities(onnx_path, parity_inputs)
        difference = np.abs(onnx_int8 - torch_int8)
        if difference.mean() > INT8_PARITY_TOLERANCE:
            raise CheckFailedError(f"{onnx_path.name}: ONNX Runtime int8 differs from PyTorch int8 by "
                                   f"{difference.mean():.3f} on average (> {INT8_PARITY_TOLERANCE}); the export is "
                                   "wrong; not written")
        int8[engine] = {
            "method": qat["method"] if qat else "ptq",
            "calibration_images": 0 if qat else len(calibration),
            "onnx_vs_torch_int8": {"max_abs": float(difference.max()), "mean_abs": float(difference.mean())},
            "vs_float_at_model_size": {"max_abs": float(np.abs(onnx_int8 - reference_probabilities).max()),
                                       "mean_abs": float(np.abs(onnx_int8 - reference_probabilities).mean())},
        }
        files += [onnx_path, pt_path]
    return files, card_onnx, int8


def model_card(trained: TrainedNetwork, checkpoint: str | os.PathLike, name: str, size: int, card_onnx: dict,
               int8: dict, evaluation: dict, files: Sequence[Path]) -> dict[str, Any]:
    """The model card: architecture, input contract, training data and metrics, checks, files with SHA-256."""
    hparams, extras = trained.hparams, trained.extras
    return {
        "name": name,
        "skinseg_version": skinseg.__version__,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "checkpoint": str(Path(checkpoint).resolve()),
        "architecture": {"net": hparams["net"], "parameters": sum(p.numel() for p in trained.net.parameters())},
        "input": {
            "size": size,
            "resize": trained.resize_mode,
            "scale": "RGB uint8 / 255 -> [0,1], NCHW float32",
            "normalisation": {"mean": hparams.get("input_mean"), "std": hparams.get("input_std")},
            "inside_graph": "normalisation (if any) and sigmoid",
        },
        "output": "probabilities (B,1,H,W) of skin, at the input's size",
        "upsample": "guided: Session resizes the output to the image's size with the colour guided filter",
        "training_data": trained.run_config.get("data") or {},
        "dataset_names": extras.get("dataset_names"),
        "val_metrics_at_training_resolution": extras.get("best_metrics"),
        "quantization_aware_training": trained.quantization,
        "onnx": card_onnx,
        "int8": int8,
        "validation_at_full_resolution": evaluation,
        "files": {path.name: {"bytes": path.stat().st_size, "sha256": sha256(path)} for path in files},
    }


def export_checkpoint(
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    name: str | None = None,
    size: int | None = None,
    data_dirs: Sequence[str] | None = None,
    parity_images: int = 8,
    engines: Sequence[str] = (),
    calibration_images: int = 64,
    eval_images: int | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    zoom: float = 0.0,
    zoom_below: float = DEFAULT_ZOOM_BELOW,
) -> dict[str, Any]:
    """Exports fp32 (and int8) ONNX models with their checks and card; returns the card (also written).

    Everything is written into a temporary folder inside `out_dir` and moved into place only
    when every check has passed: a failed check or an error leaves `out_dir` as it was.

    Args:
        checkpoint: a skinseg `.ckpt` (float, or QAT from `train.py qat=ENGINE`).
        out_dir: output folder (created).
        name: file stem (default: the model's registry name).
        size: the input side `Session` runs the files at, also of the checks (default: the
            checkpoint's training size).
        data_dirs: folder datasets for the checks (default: the data the run trained on).
        parity_images: validation images for the ONNX-vs-PyTorch parity checks.
        engines: quantization engines to export int8 models for (see skinseg.quant).
        calibration_images: training images that calibrate post-training quantization.
        eval_images: validation images scored for mIoU with int8 (default: all; 0: none).
        overwrite: replace existing files of the same names.
        progress: called with a short status line as work proceeds.
        zoom, zoom_below: the small-skin pass `Session` runs (`skinseg.inference.processing.Predictor`),
            written into the files' metadata; 0: none.

    Raises:
        MissingFileError, NotAModelError: no checkpoint at the path, or not a skinseg one.
        OutputExistsError: an output file exists and `overwrite` is False.
        UnknownNameError, UsageError: see `load_for_export`; no calibration images.
        CheckFailedError: ONNX Runtime disagrees with PyTorch beyond the tolerances.
    """
    report = progress or (lambda message: None)
    check_setting("zoom", float(zoom), "--zoom")
    check_setting("zoom_below", float(zoom_below), "--zoom-below")
    if size is not None and size < 32:
        raise UsageError(f"--size must be >= 32, got {size}")
    if parity_images < 1:
        raise UsageError(f"--parity-images must be >= 1 (the ONNX files are checked against PyTorch), got {parity_images}")
    small_skin = {"zoom": float(zoom), "zoom_below": float(zoom_below)} if zoom else None
    if name is not None and (not name or "/" in name or "\\" in name or name in (".", "..")):
        raise UsageError(f"--name {name!r}: a file name stem, without folders (use --out for the folder)")
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise UsageError(f"--out {out_dir} is a file; give a folder for the exported files")
    trained, engines = load_for_export(checkpoint, engines)
    qat = trained.quantization
    size = int(size or trained.hparams["input_size"])
    name = name or trained.hparams["net"]["name"]
    out_dir = Path(out_dir)
    if not overwrite:
        refuse_existing(planned_files(out_dir, name, engines, not qat), "choose another --out/--name or pass --overwrite")

    val_samples = checkpoint_samples(trained.run_config, "val", data_dirs)
    parity_inputs = model_inputs(val_samples[:parity_images], size, trained.resize_mode)
    calibration = np.zeros((0, 3, size, size), np.float32)
    if engines and not qat:
        train_samples = interleave_datasets(checkpoint_samples(trained.run_config, "train", data_dirs))
        train_samples = train_samples[:calibration_images]
        if not train_samples:
            raise UsageError("post-training quantization needs calibration images: calibration_images >= 1 and "
                             "a training split")
        report(f"reading {len(train_samples)} calibration images")
        calibration = model_inputs(train_samples, size, trained.resize_mode)

    with staging_folder(out_dir, f"{name}.export") as work:
        files, card_onnx, int8 = export_verified(trained, work, name, size, engines, parity_inputs, calibration,
                                                 report, small_skin)
        evaluation: dict[str, Any] = {}
        eval_samples = val_samples if eval_images is None else interleave_datasets(val_samples)[:eval_images]
        if engines and eval_samples:
            from skinseg.inference.factory import create_predictor

            options = {"size": size, "letterbox": trained.resize_mode == "letterbox", "normalize": "none",
                       "zoom": zoom, "zoom_below": zoom_below}
            reference = "float (QAT, fake-quantized)" if qat else "fp32"
            predictors = {reference: create_predictor(checkpoint if qat else work / f"{name}.onnx", **options)}
            predictors |= {f"int8 {engine}": create_predictor(work / f"{name}.{engine}.int8.onnx", **options)
                           for engine in engines}
            evaluation = {"images": len(eval_samples), "reference": reference,
                          **validation_scores(predictors, eval_samples, reference, report)}
        card = model_card(trained, checkpoint, name, size, card_onnx, int8, evaluation, files)
        card["small_skin_pass"] = small_skin
        files.append(write_json(work / f"{name}.json", card))
        for path in files:
            os.replace(path, out_dir / path.name)
    return card
