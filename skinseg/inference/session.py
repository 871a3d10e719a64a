"""Session: an exported ONNX model as an image -> mask function, with ONNX Runtime.

Deployment needs only onnxruntime, numpy, Pillow and OpenCV: this module imports no
torch and no Lightning.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from skinseg.errors import MissingFileError, NotAModelError, UsageError
from skinseg.files import write_json
from skinseg.hardware import AUTO, cpu_info, default_threads
from skinseg.inference.processing import SETTING_RULES, Predictor, check_setting

DEFAULT_SIZE = 320
SIZE_KEY, RESIZE_KEY, UPSAMPLE_KEY = "skinseg.input_size", "skinseg.resize", "skinseg.upsample"
ZOOM_KEY, ZOOM_BELOW_KEY = "skinseg.zoom", "skinseg.zoom_below"
# The skin segmenter shipped in the package (`python export.py ship`): U-Net on the PASCAL DeepLabV3-MobileNetV2
# encoder, trained on the seven public datasets (experiment=unet_skin)
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default_model"
DEFAULT_MODEL_NAME = "unet_skin"

Provider = str | tuple[str, dict]


def metadata_settings(path: Path, metadata: dict[str, str]) -> dict[str, object]:
    """The Session settings an exported file's ONNX metadata holds, each checked against its rule.

    Returns:
        Those of size, resize, upsample, zoom and zoom_below that the metadata sets.

    Raises:
        NotAModelError: a value outside its rule; the message names the file, key and value.
    """
    keys = {"size": SIZE_KEY, "zoom": ZOOM_KEY, "zoom_below": ZOOM_BELOW_KEY, "resize": RESIZE_KEY,
            "upsample": UPSAMPLE_KEY}
    settings: dict[str, object] = {}
    for setting, key in keys.items():
        if key not in metadata:
            continue
        parse, _, rule = SETTING_RULES[setting]
        try:
            settings[setting] = check_setting(setting, parse(metadata[key]))
        except ValueError:  # unparsable, or outside the rule (UsageError is one)
            raise NotAModelError(f"{path}: ONNX metadata {key}={metadata[key]!r} must be {rule}; re-export "
                                 "the model with export.py, or pass the setting to Session") from None
    return settings


def select_providers(providers: Sequence[Provider] | None) -> list[Provider]:
    """The requested execution providers that this onnxruntime build offers (default: CPU only).

    A provider is a name or (name, options). Names ONNX Runtime knows but this build
    lacks (e.g. CUDA on a CPU wheel) are dropped with a warning.

    Raises:
        ValueError: an unknown name, or none of the requested providers is available;
            the message lists the available ones.
    """
    if providers is None:
        return ["CPUExecutionProvider"]
    available = ort.get_available_providers()
    listing = ", ".join(available)
    names = [provider if isinstance(provider, str) else provider[0] for provider in providers]
    unknown = [name for name in names if name not in ort.get_all_providers()]
    if unknown:
        raise UsageError(f"unknown ONNX Runtime providers {unknown}; available here: {listing}")
    missing = [name for name in names if name not in available]
    if missing:
        message = f"providers {missing} are not in this onnxruntime build (available: {listing})"
        warnings.warn(message, stacklevel=3)
    selected = [provider for provider, name in zip(providers, names, strict=True) if name in available]
    if not selected:
        raise UsageError(f"none of the providers {names} is available; available here: {listing}")
    return selected


def open_onnx(path: Path, options: ort.SessionOptions, providers: list[Provider]) -> ort.InferenceSession:
    """An ONNX Runtime session of a model file.

    Raises:
        NotAModelError: ONNX Runtime cannot load the file (not an ONNX model, truncated, or an
            operator this onnxruntime lacks); the message names the file.
    """
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as error:  # onnxruntime raises its own pybind types (InvalidProtobuf, Fail, ...)
        reason = str(error).splitlines()[0][:300]
        raise NotAModelError(f"not an ONNX model ONNX Runtime can load: {path} ({reason}); pass a .onnx "
                             "written by export.py") from error


def default_model_path(precision: str = "fp32") -> Path:
    """The shipped model's ONNX file: "fp32" (`unet_skin.onnx`) or "int8" (`unet_skin.int8.onnx`).

    Its card is `default_model/MODEL_CARD.md` (data, recipe, figures, licence).

    Raises:
        ValueError: another precision.
        FileNotFoundError: the package holds no shipped model (the message says how to make one).
    """
    if precision not in ("fp32", "int8"):
        raise UsageError(f"precision must be 'fp32' or 'int8', got {precision!r}")
    path = DEFAULT_MODEL_DIR / (DEFAULT_MODEL_NAME + (".int8" if precision == "int8" else "") + ".onnx")
    if not path.is_file():
        raise MissingFileError(f"no shipped model at {path}; pass a model path, or make one with "
                                "`python export.py ship --ckpt CKPT`")
    return path


PRECISIONS = ("fp32", "int8")


@dataclass(frozen=True)
class RuntimeChoice:
    """Which of the shipped model's files runs, and why.

    Attributes:
        precision: "fp32" or "int8".
        reason: e.g. "int8 1.86x faster than fp32 here; agrees with fp32 on 99.7 % of pixels".
    """

    precision: str
    reason: str

    def __str__(self) -> str:
        return f"shipped {DEFAULT_MODEL_NAME} {self.precision} ({self.reason})"


def runtime_cache_file() -> Path:
    """Where measured runtime choices are kept: $SKINSEG_CACHE, else the user's cache folder."""
    root = os.environ.get("SKINSEG_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "skinseg"
    return Path(root) / "runtime_choice.json"


def time_models(paths: Sequence[Path], size: int, threads: int, rounds: int = 3) -> list[float]:
    """Median seconds per run of each ONNX model on one random (1,3,size,size) image.

    One warm-up run each, then `rounds` interleaved rounds, so that a change in machine
    load hits every model alike.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    sessions = [open_onnx(path, options, ["CPUExecutionProvider"]) for path in paths]
    image = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    feeds = [{session.get_inputs()[0].name: image} for session in sessions]
    for session, feed in zip(sessions, feeds):
        session.run(None, feed)
    times: list[list[float]] = [[] for _ in sessions]
    for _ in range(rounds):
        for session, feed, spent in zip(sessions, feeds, times):
            start = time.perf_counter()
            session.run(None, feed)
            spent.append(time.perf_counter() - start)
    return [statistics.median(spent) for spent in times]


def int8_agreement(card: dict) -> tuple[bool, str]:
    """Whether the card's int8-vs-fp32 figures are within the tolerance it was shipped under, and why."""
    shipped = card.get("shipped") or {}
    tolerance = shipped.get("int8_float_tolerance")
    scores = card.get("validation_at_full_resolution", {}).get("scores", {}).get(f"int8 {shipped.get('int8_engine')}")
    if not tolerance or not scores:
        return False, "the model card has no int8-vs-fp32 figures"
    agreement = f"agrees with fp32 on {scores['same_decision']:.1%} of pixels, mean |Δp| {scores['mean_abs_diff']:.4f}"
    within = (scores["mean_abs_diff"] <= tolerance["mean_abs"]
              and scores["same_decision"] >= tolerance["same_decision"])
    return within, agreement if within else f"int8 only {agreement}, outside export's tolerance"


def shipped_card() -> dict:
    """The shipped model's card (`unet_skin.json`, written by `python export.py ship`)."""
    return json.loads((DEFAULT_MODEL_DIR / f"{DEFAULT_MODEL_NAME}.json").read_text())


def choose_shipped_precision(threads: int | None = None) -> RuntimeChoice:
    """The faster of the shipped model's fp32 and int8 files on this machine, where int8 agrees.

    int8 is chosen where its card's agreement with fp32 (mean |Δp| and the share of pixels
    on the same side of 0.5, on the validation images) is within the tolerance the model
    was shipped under, and where it runs faster than fp32 here at the model's input size.
    The speed is measured once per machine, threads and model files (about a second;
    kept in `runtime_cache_file()`), since it depends on the CPU's int8 instructions.
    """
    card = shipped_card()
    within, agreement = int8_agreement(card)
    if not within:
        return RuntimeChoice("fp32", agreement)
    threads = threads or default_threads()
    paths = [default_model_path(precision) for precision in PRECISIONS]
    cpu = cpu_info()
    key = "|".join([cpu.name, hashlib.sha1(" ".join(sorted(cpu.flags)).encode()).hexdigest()[:12],
                    ort.__version__, str(threads), *(card["files"][path.name]["sha256"][:16] for path in paths)])
    cache = runtime_cache_file()
    try:
        measured = json.loads(cache.read_text()) if cache.exists() else {}
    except (OSError, UnicodeDecodeError, ValueError):
        measured = None
    timed = measured.get(key) if isinstance(measured, dict) else None
    valid = (isinstance(timed, list) and len(timed) == 2
             and all(isinstance(seconds, (int, float)) and seconds > 0 for seconds in timed))
    if not isinstance(measured, dict) or (timed is not None and not valid):
        warnings.warn(f"{cache}: unreadable or not a timing cache; measuring again", stacklevel=2)
        measured = measured if isinstance(measured, dict) else {}
    if not valid:
        measured[key] = time_models(paths, int(card["input"]["size"]), threads)
        write_json(cache, measured, indent=1)
    fp32_seconds, int8_seconds = measured[key]
    speed = f"{fp32_seconds / int8_seconds:.2f}x fp32's speed here ({int8_seconds:.3f} s vs {fp32_seconds:.3f} s)"
    if int8_seconds < fp32_seconds:
        return RuntimeChoice("int8", f"int8 at {speed}; {agreement}")
    return RuntimeChoice("fp32", f"int8 only {speed}")


class Session(Predictor):
    """Predicts skin masks with an exported skinseg (or original U²Net/DLMV) ONNX model.

    The model takes float32 images (B,3,H,W) in [0,1] and returns probabilities
    (B,1,H,W) (output 0; sigmoid and any mean/std normalisation inside the graph).
    Pre/post-processing, as the original's Session:

    1. Input: a PIL image, a numpy array (uint8 RGB (H,W,3), grey (H,W) or RGBA
       (H,W,4)) or a file path; EXIF orientation applied (PIL and paths); converted to RGB.
    2. Resize to size x size with Lanczos: "squash" (the original: aspect not kept) or
       "letterbox" (long side = size, zero padding bottom/right, removed after).
    3. /255 -> float32 (B,3,size,size); run; output 0, channel 0.
    4. `normalize="minmax"` (the original): (p - min)/(max - min) per image, a constant
       map unchanged; "none" keeps the probabilities.
    5. Back to the input's size: `upsample="lanczos"` (the original): x255 rounded to uint8,
       Lanczos (cv2.INTER_LANCZOS4) resize; `"guided"`: the colour guided filter moves the
       mask's edges onto the image's (`skinseg.inference.guided`), then x255 to uint8.
    6. `postprocess=True` (the original's `post_process`): morphological open with a 3x3
       ellipse, then Gaussian 9x9 σ 2.

    `predict(image, tile=512)` replaces steps 2-3 by tiled inference at the image's own
    resolution (`skinseg.inference.predict_tiled`).

    Args:
        model_path: the .onnx file; None: the shipped skin segmenter (`default_model_path()`).
        precision: for the shipped model only: "fp32", "int8" or "auto" (the faster one
            on this machine where int8 agrees with fp32: `choose_shipped_precision`).
            `.description` says which file runs and why.
        providers: ONNX Runtime execution providers (names or (name, options)); default
            CPU. `.providers` reports those the session really uses.
        threads: intra-op threads (default: the physical cores this process may use,
            `skinseg.hardware.default_threads`; ONNX Runtime alone would take every core
            of the host, whatever the container's quota).
        size: network input side. Default: the model's static input size, else the ONNX
            metadata "skinseg.input_size" (written by export.py), else 320 with a warning.
        resize: "squash" or "letterbox". Default: the ONNX metadata "skinseg.resize"
            (the mode the model was trained with), else "squash" (the original).
        normalize: "minmax" (the original) or "none".
        postprocess: apply step 6.
        upsample: "lanczos" or "guided" (step 5). Default: the ONNX metadata
            "skinseg.upsample" (export.py writes "guided"), else "lanczos" (the original).
        zoom, zoom_below: the small-skin pass (see `Predictor`): when the largest skin region
            covers less than `zoom_below` of the input, run again at side size·zoom. Default:
            the ONNX metadata "skinseg.zoom" / "skinseg.zoom_below", else none; 0 turns it off.

    Raises:
        FileNotFoundError: no file at model_path.
        ValueError: unknown/unavailable providers, bad options, or a `size` that a
            fixed-size model cannot take.
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        providers: Sequence[Provider] | None = None,
        threads: int | None = None,
        size: int | None = None,
        resize: str | None = None,
        normalize: str = "minmax",
        postprocess: bool = False,
        precision: str = AUTO,
        upsample: str | None = None,
        zoom: float | None = None,
        zoom_below: float | None = None,
    ) -> None:
        threads = int(threads or default_threads())
        if precision not in (AUTO, *PRECISIONS):
            raise UsageError(f"precision must be one of {(AUTO, *PRECISIONS)}, got {precision!r}")
        if model_path is None:
            choice = (choose_shipped_precision(threads) if precision == AUTO
                      else RuntimeChoice(precision, "set explicitly"))
            path = default_model_path(choice.precision)
            self.description = str(choice)
        elif precision != AUTO:
            raise UsageError(f"precision={precision!r} picks one of the shipped model's files; "
                             "for your own model, pass the .onnx file of that precision")
        else:
            path = Path(model_path)
            self.description = str(path)
        if not path.is_file():
            raise MissingFileError(f"ONNX model {path} not found; pass the path of a .onnx written by export.py")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = open_onnx(path, options, select_providers(providers))
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        batch, _, height, width = model_input.shape
        self.single_batch = batch == 1
        metadata = metadata_settings(path, self.session.get_modelmeta().custom_metadata_map)
        if isinstance(height, int) and isinstance(width, int):
            if height != width:
                raise UsageError(f"{path}: fixed input {height}x{width} is not square, as Session needs")
            if size is not None and size != height:
                raise UsageError(f"{path} has a fixed input size {height}; size={size} cannot be used")
            self.fixed_size = size = height
        elif size is None and "size" in metadata:
            size = metadata["size"]
        elif size is None:
            message = f"{path}: no '{SIZE_KEY}' in the ONNX metadata; using size={DEFAULT_SIZE} (pass size=)"
            warnings.warn(message, stacklevel=2)
            size = DEFAULT_SIZE
        self._configure(size, resize or metadata.get("resize", "squash"), normalize, postprocess,
                        upsample or metadata.get("upsample", "lanczos"),
                        metadata.get("zoom", 0.0) if zoom is None else zoom,
                        zoom_below if zoom_below is not None else metadata.get("zoom_below"))

    @property
    def providers(self) -> list[str]:
        """The execution providers the ONNX Runtime session uses, in priority order."""
        return self.session.get_providers()

    def run(self, images: np.ndarray) -> np.ndarray:
        """float32 images (B,3,H,W) in [0,1] -> the model's output 0, probabilities (B,1,H,W)."""
        images = np.ascontiguousarray(images, dtype=np.float32)
        if self.single_batch and len(images) > 1:
            return np.concatenate([self.run(images[i : i + 1]) for i in range(len(images))])
        return self.session.run(None, {self.input_name: images})[0]
