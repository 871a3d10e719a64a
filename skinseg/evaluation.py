"""What `python evaluate.py` does: score methods and models on one split (val, test, ...), write the tables.

Rows ("entries") are classical methods by registry name and trained models (Lightning
checkpoints or exported ONNX files, run through `skinseg.inference.create_predictor`).
Every entry predicts each image of the split at its full resolution as a uint8 0-255 mask;
`skinseg.metrics` scores it against the ground truth. Predictions and scores are cached
per entry (keyed by its settings, or the model file's SHA-256), so a rerun with one more
entry only computes that one. Classical methods and scoring run in worker processes;
models run in the main process.
Results: one Markdown table per dataset and one for all images pooled, with CSV and
JSON beside them (`results.md`, `results.csv`, `results.json`).
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from omegaconf import OmegaConf

import skinseg
from skinseg import metrics
from skinseg.data.folder import Sample, file_stamp
from skinseg.errors import DataError, MissingFileError, UnknownNameError, UsageError
from skinseg.files import atomic_path, refuse_existing, sha256, write_csv, write_json, write_text
from skinseg.inference.processing import DEFAULT_UPSAMPLE

log = logging.getLogger(__name__)

# evaluate.yaml's output folder: results/<data> for the val split, results/<data>-<split> for the others
OmegaConf.register_new_resolver("split_suffix", lambda split: "" if split == "val" else f"-{split}", replace=True)

TABLE_COLUMNS = (("miou", "mIoU", 5), ("miou50", "mIoU@0.5", 5), ("mae", "MAE", 3), ("hce", "HCE", 1), ("f1", "F1", 5),
                 ("fpr", "FPR", 4))
POOLED = "all"
TONE_THIRDS = ("darkest", "middle", "lightest")


@dataclass(frozen=True)
class Entry:
    """One row of the result tables.

    Attributes:
        label: the row's name (a method name, or a checkpoint's run/file name).
        kind: "classical" or "model" (a .ckpt or .onnx file).
        target: method name or model file path.
        settings: what determines the predictions (method arguments; checkpoint content hash).
    """

    label: str
    kind: str
    target: str
    settings: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Cache folder name: label + hash of everything that determines the predictions."""
        text = json.dumps([self.kind, self.target, self.settings, skinseg.__version__], sort_keys=True, default=str)
        return f"{self.label}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def classical_entries(names: Sequence[str], method_args: dict | None = None) -> tuple[list[Entry], dict[str, str]]:
    """Entries for classical methods, and the skipped ones with the reason (not installed).

    Raises:
        KeyError: an unknown name (the message lists the valid ones).
    """
    from skinseg.classical import METHODS, create_method
    from skinseg.classical.mediapipe import INSTALL_HINT, mediapipe_available

    method_args = method_args or {}
    unknown = [name for name in [*names, *method_args] if name not in METHODS]
    if unknown:
        raise UnknownNameError(f"unknown classical methods {unknown}; valid names: {', '.join(sorted(METHODS))}")
    entries, skipped = [], {}
    for name in names:
        if name == "mediapipe" and not mediapipe_available():
            skipped[name] = f"not installed: {INSTALL_HINT}"
            continue
        settings = create_method(name, **method_args.get(name, {})).config()
        entries.append(Entry(name, "classical", name, {"args": method_args.get(name, {}), "config": settings}))
    return entries, skipped


def checkpoint_entries(patterns: Sequence[str], search_root: str | os.PathLike = ".",
                       size: int | None = None, zoom: float | None = None) -> list[Entry]:
    """Entries for trained models given as paths or glob patterns: Lightning `.ckpt` or exported `.onnx`.

    `size` runs the network at that input side instead of the one it was trained at; `zoom`
    sets its small-skin pass (`skinseg.inference.processing.Predictor`; 0: off).

    Raises:
        MissingFileError: a pattern matches nothing; the message names the latest checkpoints
            under `search_root`/logs.
        UsageError: a matched file is neither a .ckpt nor an .onnx.
    """
    entries = []
    for pattern in patterns:
        paths = sorted(glob.glob(str(Path(pattern).expanduser()), recursive=True))
        if not paths:
            found = sorted(glob.glob(str(Path(search_root) / "logs" / "**" / "*.ckpt"), recursive=True))
            listing = (f"the latest under logs/: {', '.join(found[-3:])}" if found
                       else "none under logs/; train one with python train.py")
            raise MissingFileError(f"checkpoint {pattern!r} not found; {listing}")
        for path in paths:
            resolved = Path(path).resolve()
            if resolved.suffix not in (".ckpt", ".onnx"):
                raise UsageError(f"checkpoints=[{pattern}] matched {resolved}: give .ckpt or .onnx files")
            # a run's checkpoint: "<run>/<file stem>"; any other file: its stem
            in_run = resolved.parent.name == "checkpoints"
            label = f"{resolved.parent.parent.name}/{resolved.stem}" if in_run else resolved.stem
            # by content: a same-size copy or a retrained file at the same path gets its own predictions;
            # by the resize back that checkpoints get, so predictions made before a change are not reused
            settings = {"sha256": sha256(resolved), "upsample": DEFAULT_UPSAMPLE, **({"size": size} if size else {}),
                        **({"zoom": zoom} if zoom is not None else {})}
            entries.append(Entry(label, "model", str(resolved), settings))
    return entries


def image_key(sample: Sample) -> str:
    """What identifies an image's content to the cache: its resolved path, size and modification time, hashed.

    Another dataset of the same folder name, or an image replaced in place, gets new predictions.
    """
    path = Path(sample.image).resolve()
    text = json.dumps([str(path), *file_stamp(path)])
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def prediction_path(cache_dir: Path, entry: Entry, sample: Sample) -> Path:
    return cache_dir / "predictions" / entry.key / sample.dataset / f"{sample.stem}-{image_key(sample)}.png"


def _write_mask(path: Path, mask: np.ndarray) -> None:
    with atomic_path(path) as temporary:
        if not cv2.imwrite(str(temporary), mask):
            raise OSError(f"could not write {path}")


_METHODS: dict[str, Any] = {}


def read_cached_mask(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """A cached prediction of an image of `shape` (H,W), or None when there is none.

    An unreadable one (a torn or corrupt file) or one of another size is deleted, with a warning.
    """
    if not path.exists():
        return None
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None or mask.shape != tuple(shape):
        log.warning("%s: %s cached prediction; predicting it again", path,
                    "unreadable" if mask is None else f"a {mask.shape} (not {tuple(shape)})")
        path.unlink(missing_ok=True)
        return None
    return mask


def _prediction(entry: Entry, sample: Sample, cache_dir: Path, image_cache: list) -> tuple[np.ndarray, float | None]:
    """The cached prediction, or a classical method's new one (written to the cache) and its time."""
    path = prediction_path(cache_dir, entry, sample)
    cached = read_cached_mask(path, (sample.height, sample.width))
    if cached is not None:
        return cached, None
    if entry.kind != "classical":
        raise FileNotFoundError(f"no cached prediction {path} for {entry.label}")
    if entry.key not in _METHODS:
        from skinseg.classical import create_method

        _METHODS[entry.key] = create_method(entry.target, **entry.settings["args"])
    if not image_cache:
        from skinseg.io import read_image

        image_cache.append(read_image(sample.image))
    start = time.perf_counter()
    prediction = _METHODS[entry.key].predict(image_cache[0])
    seconds = time.perf_counter() - start
    _write_mask(path, prediction)
    return prediction, seconds


def _score_sample(entries: Sequence[Entry], sample: Sample, cache_dir: str) -> list[dict]:
    """Scores one image for several entries (reading it and skeletonising its truth once)."""
    from skinseg.io import read_mask

    truth = read_mask(sample.mask)
    skeleton = metrics.hce_skeleton(truth)
    image_cache: list = []
    scores = []
    for entry in entries:
        prediction, seconds = _prediction(entry, sample, Path(cache_dir), image_cache)
        if prediction.shape != truth.shape:
            raise ValueError(f"{entry.label} predicted {prediction.shape} for {sample.image}, truth is {truth.shape}")
        score = metrics.score_image(prediction, truth, gt_skeleton=skeleton)
        scores.append({"entry": entry.label, "stem": sample.stem, "dataset": sample.dataset, "seconds": seconds, **score})
    return scores


def predict_model(entry: Entry, samples: Sequence[Sample], cache_dir: Path, progress=None) -> None:
    """Writes the missing full-resolution predictions of a trained model (.ckpt or .onnx, main process)."""
    todo = [s for s in samples if read_cached_mask(prediction_path(cache_dir, entry, s), (s.height, s.width)) is None]
    if not todo:
        return
    from skinseg.inference.factory import create_predictor
    from skinseg.io import read_image

    predictor = create_predictor(entry.target, size=entry.settings.get("size"), zoom=entry.settings.get("zoom"))
    task = progress.add_task(f"predicting {entry.label}", total=len(todo)) if progress else None
    for sample in todo:
        _write_mask(prediction_path(cache_dir, entry, sample), predictor.predict(read_image(sample.image)))
        if progress:
            progress.advance(task)


def _load_cached_scores(path: Path, samples: Sequence[Sample]) -> dict[str, dict]:
    """Scores cached for these samples whose image and ground truth are unchanged.

    A cache file that is unreadable or of another shape is ignored (rebuilt) with a warning naming it.
    """
    if not path.exists():
        return {}
    try:
        cached = json.loads(path.read_text())
        if not isinstance(cached, dict) or not isinstance(cached.get("scores", {}), dict):
            raise ValueError("not a scores file")
    except (OSError, UnicodeDecodeError, ValueError):
        log.warning("%s: unreadable or not a scores cache; rebuilding it", path)
        return {}
    if cached.get("metrics_version") != metrics.METRICS_VERSION:
        return {}
    stamps = {s.stem: [image_key(s), file_stamp(Path(s.mask))] for s in samples}
    return {
        stem: score
        for stem, score in cached["scores"].items()
        if stem in stamps and isinstance(score, dict) and [score.get("image_key"), score.get("mask_stamp")] == stamps[stem]
    }


def evaluate(
    entries: Sequence[Entry],
    samples: Sequence[Sample],
    cache_dir: str | os.PathLike,
    workers: int = 2,
    progress: bool = True,
) -> dict[str, list[dict]]:
    """Per-image scores of every entry on every sample: {entry label: [score dicts]}."""
    from rich.progress import Progress

    cache_dir = Path(cache_dir)
    results: dict[str, list[dict]] = {}
    with Progress(disable=not progress) as bar:
        pending: dict[str, list[Entry]] = {}  # sample key -> entries still to score on it
        for entry in entries:
            if entry.kind == "model":
                predict_model(entry, samples, cache_dir, bar)
            results[entry.label] = []
            for dataset in sorted({s.dataset for s in samples}):
                group = [s for s in samples if s.dataset == dataset]
                cached = _load_cached_scores(cache_dir / "predictions" / entry.key / dataset / "scores.json", group)
                results[entry.label] += cached.values()
                for sample in group:
                    if sample.stem not in cached:
                        pending.setdefault(f"{dataset}/{sample.stem}", []).append(entry)
        by_key = {f"{s.dataset}/{s.stem}": s for s in samples}
        task = bar.add_task("scoring", total=sum(len(todo) for todo in pending.values()))
        context = get_context("spawn")  # workers import numpy/OpenCV only, never a forked torch
        with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=context) as pool:
            futures = {
                pool.submit(_score_sample, todo, by_key[key], str(cache_dir)): by_key[key] for key, todo in pending.items()
            }
            for future in as_completed(futures):
                sample = futures[future]
                stamps = {"image_key": image_key(sample), "mask_stamp": file_stamp(Path(sample.mask))}
                for score in future.result():
                    results[score.pop("entry")].append({**score, **stamps})
                    bar.advance(task)
    for entry in entries:
        for dataset in {s.dataset for s in samples}:
            scores = {r["stem"]: r for r in results[entry.label] if r["dataset"] == dataset}
            write_json(cache_dir / "predictions" / entry.key / dataset / "scores.json",
                       {"metrics_version": metrics.METRICS_VERSION, "scores": scores}, indent=None)
    return results


def summarise_results(results: dict[str, list[dict]]) -> dict[str, dict[str, dict]]:
    """{dataset or "all": {entry label: dataset figures (metrics.summarise + seconds per image)}}."""
    tables: dict[str, dict[str, dict]] = {}
    for label, scores in results.items():
        datasets = sorted({score["dataset"] for score in scores})
        for dataset in [*datasets, POOLED]:
            subset = [s for s in scores if dataset == POOLED or s["dataset"] == dataset]
            if not subset:
                continue
            figures = metrics.summarise(subset)
            timed = [s["seconds"] for s in subset if s.get("seconds") is not None]
            figures["seconds_per_image"] = float(np.mean(timed)) if timed else None
            tables.setdefault(dataset, {})[label] = figures
    return tables


def tone_thirds(samples: Sequence[Sample]) -> dict[str, str]:
    """Stem -> "darkest" / "middle" / "lightest" third of the samples by the ITA of their labelled skin.

    Images without labelled skin have no tone and are in no third.
    """
    from skinseg.io import read_image, read_mask

    angles = {sample.stem: metrics.skin_tone_ita(read_image(sample.image), read_mask(sample.mask))
              for sample in samples}
    ranked = sorted((angle, stem) for stem, angle in angles.items() if angle is not None)
    return {stem: TONE_THIRDS[min(2, 3 * rank // len(ranked))] for rank, (_, stem) in enumerate(ranked)}


def tone_table_name(dataset: str, third: str) -> str:
    """The results table of one skin-tone third of a dataset: "lfw_faces, darkest skin-tone third"."""
    return f"{dataset}, {third} skin-tone third"


def tone_tables(results: dict[str, list[dict]], thirds: dict[str, dict[str, str]]) -> dict[str, dict[str, dict]]:
    """Tables like `summarise_results`' for each skin-tone third of the datasets in `thirds`.

    Args:
        results: entry label -> per-image scores (with "dataset" and "stem").
        thirds: dataset -> `tone_thirds` of its samples.

    Returns:
        {"DATASET, darkest third": {label: figures}, ...}.
    """
    tables: dict[str, dict[str, dict]] = {}
    for dataset, by_stem in thirds.items():
        for third in TONE_THIRDS:
            for label, scores in results.items():
                subset = [s for s in scores if s["dataset"] == dataset and by_stem.get(s["stem"]) == third]
                if subset:
                    tables.setdefault(tone_table_name(dataset, third), {})[label] = metrics.summarise(subset)
    return tables


def markdown_table(figures: dict[str, dict]) -> str:
    """Rows = entries (best mIoU first; on scenes without skin, lowest FPR first), columns =
    mIoU, mIoU@0.5, MAE, HCE, F1, FPR; "–" where a figure is undefined (IoU without skin)."""
    header = "| method | " + " | ".join(title for _, title, _ in TABLE_COLUMNS) + " | images |"
    rule = "|---|" + "---:|" * (len(TABLE_COLUMNS) + 1)
    rows = [header, rule]
    ranked = sorted(figures.items(), key=lambda item: (-(item[1]["miou"] or 0.0), item[1]["fpr"]))
    for label, values in ranked:
        cells = ["–" if values[key] is None else f"{values[key]:.{digits}f}" for key, _, digits in TABLE_COLUMNS]
        rows.append(f"| {label} | " + " | ".join(cells) + f" | {values['images']} |")
    return "\n".join(rows)


def result_paths(output_dir: str | os.PathLike) -> list[Path]:
    """results.md, results.csv and results.json in output_dir."""
    return [Path(output_dir) / f"results.{suffix}" for suffix in ("md", "csv", "json")]


def write_results(
    tables: dict[str, dict[str, dict]],
    output_dir: str | os.PathLike,
    meta: dict[str, Any],
    skipped: dict[str, str] | None = None,
) -> list[Path]:
    """Writes results.md, results.csv and results.json into output_dir; returns their paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# Evaluation on {meta['data']} ({meta['split']} split)",
        "",
        f"{meta['date']}, skinseg {skinseg.__version__}, {meta['machine']}; "
        f"{meta['wall_time_s']:.1f} s. Full-resolution masks on the 0-255 scale: mIoU as the original "
        "(bitwise AND/OR of soft masks), mIoU@0.5, MAE (0-255, pooled over pixels), HCE (relax 5, "
        "RDP epsilon 2), F1 at 128 (mean over images with skin), FPR: share of non-skin pixels called "
        "skin (mean over all images; on scenes without people, the share of the image called skin).",
        "",
    ]
    ordered = [name for name in sorted(tables) if name != POOLED] + ([POOLED] if POOLED in tables else [])
    for dataset in ordered:
        title = "All datasets pooled (mean over images)" if dataset == POOLED else dataset
        lines += [f"## {title}", "", markdown_table(tables[dataset]), ""]
    if skipped:
        lines += ["Skipped:", ""] + [f"- {name}: {reason}" for name, reason in skipped.items()] + [""]
    paths = result_paths(output_dir)
    write_text(paths[0], "\n".join(lines))
    columns = ["miou", "miou50", "mae", "mae_per_image", "hce", "f1", "fpr", "precision", "recall",
               "pooled_precision", "pooled_recall", "pooled_f1", "images", "images_with_skin", "seconds_per_image"]
    rows = [[dataset, label, *[values.get(column) for column in columns]]
            for dataset in ordered for label, values in tables[dataset].items()]
    write_csv(paths[1], ["dataset", "method", *columns], rows)
    write_json(paths[2], {"meta": meta, "skipped": skipped or {}, "tables": tables})
    return paths


def machine_description() -> str:
    """CPU model with its features and core count, for the tables' header."""
    from skinseg.hardware import cpu_info

    return f"{cpu_info().describe()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def run(cfg) -> dict[str, Any]:
    """evaluate.py's body: build the entries and samples from the Hydra config, evaluate, write."""
    from rich.console import Console

    from skinseg.data.folder import dataset_folders, split_samples

    start = time.perf_counter()
    if not isinstance(cfg.workers, int) or isinstance(cfg.workers, bool) or cfg.workers < 1:
        raise UsageError(f"workers must be an integer >= 1 (scoring processes), got {cfg.workers!r}")
    if not cfg.get("overwrite", False):
        refuse_existing(result_paths(cfg.output_dir), "pass overwrite=true to replace them, or another output_dir=")
    entries, skipped = classical_entries(list(cfg.methods), dict(cfg.get("method_args") or {}))
    entries += checkpoint_entries(list(cfg.checkpoints or []), cfg.paths.root_dir)
    if not entries:
        raise UsageError("nothing to evaluate: set methods=[...] and/or checkpoints=[...]")
    folders = dataset_folders(cfg.data.root, cfg.data.get("datasets"), cfg.data.get("demo"))
    samples = split_samples(folders, cfg.split, cfg.data.val_fraction, cfg.data.resize_masks, cfg.paths.cache_dir)
    if not samples:
        raise DataError(f"no {cfg.split!r} images in {[str(folder) for _, folder in folders]}; "
                        f'list them under "{cfg.split}" in their splits.json')
    results = evaluate(entries, samples, cfg.paths.cache_dir, workers=cfg.workers, progress=cfg.progress)
    tables = summarise_results(results)
    thirds = {name: tone_thirds([sample for sample in samples if sample.dataset == name])
              for name in cfg.get("tones") or [] if any(sample.dataset == name for sample in samples)}
    tables.update(tone_tables(results, thirds))
    meta = {
        "data": cfg.data_name,
        "split": cfg.split,
        "datasets": {name: str(folder) for name, folder in folders},
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine_description(),
        "wall_time_s": time.perf_counter() - start,
    }
    paths = write_results(tables, cfg.output_dir, meta, skipped)
    console = Console(width=120)
    console.print((Path(cfg.output_dir) / "results.md").read_text(), markup=False)
    console.print(f"wrote {', '.join(str(p) for p in paths)}")
    return {"tables": tables, "paths": paths, "skipped": skipped}
