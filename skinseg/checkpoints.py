"""Reading a trained network out of a skinseg checkpoint, without building the LightningModule."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from skinseg.errors import MissingFileError, NotAModelError
from skinseg.models import create_model
from skinseg.quant.fx import CHECKPOINT_KEY, load_qat_network


@dataclass
class TrainedNetwork:
    """A checkpoint's network and what it was trained with.

    Attributes:
        net: the float network, or a QAT checkpoint's fake-quantized FX graph (eval mode).
        hparams: the module's hyper-parameters (`net`, `input_size`, `input_mean`, ...).
        run_config: the resolved Hydra config of the run ({} if not recorded).
        extras: the checkpoint's "skinseg" entry (best_metrics, dataset_names, ...).
        quantization: {"method": "qat", "engine": ..., "size": ...} for QAT checkpoints, else None.
    """

    net: nn.Module
    hparams: dict[str, Any]
    run_config: dict[str, Any]
    extras: dict[str, Any]
    quantization: dict[str, Any] | None

    @property
    def resize_mode(self) -> str:
        """"squash" or "letterbox": the model's input spec (checkpoints before it was one: the data config's)."""
        return self.hparams.get("resize_mode") or (self.run_config.get("data") or {}).get("resize_mode", "squash")


TRAINING_ONLY_ARGUMENTS = ("device_map", "stage_dtypes", "encoder_weights")


def inference_net_config(net_config: dict[str, Any]) -> dict[str, Any]:
    """A run's `net` config without its training-time placement, precision and initial weights
    (the checkpoint holds the trained weights)."""
    return {key: value for key, value in net_config.items() if key not in TRAINING_ONLY_ARGUMENTS}


def read_checkpoint(path: Path) -> Any:
    """torch.load of a checkpoint with weights_only=True (tensors and plain containers only).

    Raises:
        NotAModelError: the file cannot be read as one (empty, truncated, text, random bytes,
            or pickled objects that are not plain data); the message names it.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # EOFError, UnpicklingError, RuntimeError, KeyError... depending on the bytes
        # the type only: torch's own messages advise unsafe loading (weights_only=False)
        raise NotAModelError(f"not a skinseg checkpoint: {path} cannot be read ({type(error).__name__}); pass a "
                             ".ckpt written by train.py") from error


def read_skinseg_state(path: str | os.PathLike, setting: str = "checkpoint") -> dict[str, Any]:
    """A skinseg checkpoint's contents (`read_checkpoint`), checked to hold hyper_parameters.net and a state_dict.

    Raises:
        MissingFileError: no file at path (the message names it as `setting`).
        NotAModelError: not a skinseg checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{setting} {path}: no such file")
    state = read_checkpoint(path)
    hparams = state.get("hyper_parameters") if isinstance(state, dict) else None
    if not hparams or "net" not in hparams or not isinstance(state.get("state_dict"), dict):
        raise NotAModelError(f"not a skinseg checkpoint: {path} (no hyper_parameters.net / state_dict); pass a "
                             ".ckpt written by train.py")
    return state


def load_network(path: str | os.PathLike) -> TrainedNetwork:
    """Loads a skinseg/Lightning `.ckpt` (`weights_only=True`) into its network.

    Loading touches no random generator and needs none of the files the run's config
    names (e.g. `model.pretrained`). Training-time placement and precision
    (`device_map`, `stage_dtypes`) are dropped: the network is float32 on the CPU, to be
    moved wherever it runs.

    Raises:
        MissingFileError: no file at path.
        NotAModelError: the file is not a skinseg checkpoint (text, empty, truncated, another
            format, or a checkpoint of something else); the message names it.
    """
    state = read_skinseg_state(path)
    hparams = state["hyper_parameters"]
    weights = {key[4:]: value for key, value in state["state_dict"].items() if key.startswith("net.")}
    quantization = state.get(CHECKPOINT_KEY)
    if quantization:
        net = load_qat_network(hparams["net"], weights, quantization)
    else:
        net = create_model(**inference_net_config(hparams["net"]))
        net.load_state_dict(weights)
    extras = state.get("skinseg") or {}
    return TrainedNetwork(net.eval(), dict(hparams), extras.get("config") or {}, extras, quantization)


def check_resume_checkpoint(path: str | os.PathLike, model: nn.Module | None = None) -> None:
    """Checks a `ckpt_path=` file before Lightning resumes from it: one named error instead of its traceback.

    Args:
        path: the checkpoint to resume.
        model: the LightningModule this run built; its parameter names must match the file's.

    Raises:
        MissingFileError: no file at path.
        NotAModelError: not a skinseg checkpoint (unreadable, pickled objects, no
            state_dict or hyper_parameters.net), or one of another network.
    """
    state = read_skinseg_state(path, "ckpt_path")
    if model is None:
        return
    saved, built = set(state["state_dict"]), set(model.state_dict())
    if saved != built:
        net_config = state["hyper_parameters"]["net"]
        net = net_config.get("name", "?") if isinstance(net_config, dict) else "?"
        missing, unexpected = sorted(built - saved), sorted(saved - built)
        raise NotAModelError(
            f"ckpt_path={path} is a checkpoint of another network ({net}: {len(missing)} of this run's weights "
            f"missing, e.g. {(missing or ['-'])[0]}; {len(unexpected)} not in this run's, e.g. {(unexpected or ['-'])[0]}); "
            "resume with the model config it was trained with"
        )


def newest_checkpoint(log_dir: str | os.PathLike = "logs") -> Path:
    """The most recently written best checkpoint under `log_dir` (`**/checkpoints/best-*.ckpt`).

    Raises:
        FileNotFoundError: there is none; the message says how to make or name one.
    """
    found = sorted(Path(log_dir).glob("**/checkpoints/best-*.ckpt"), key=lambda path: path.stat().st_mtime)
    if not found:
        raise MissingFileError(f"no best-*.ckpt under {log_dir}/: train one (python train.py) or pass --ckpt PATH")
    return found[-1]
