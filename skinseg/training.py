"""What `python train.py` does: build everything from the Hydra config, fit, summarise."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.console import Console
from rich.table import Table

from skinseg.checkpoints import check_resume_checkpoint
from skinseg.errors import OutputExistsError, UsageError
from skinseg.files import atomic_path, remove_stale_temporaries
from skinseg.hardware import AUTO, PrecisionChoice, cpu_info, default_threads, resolve_precision
from skinseg.settings import RUN_RULES, TRAINER_RULES, check_setting_ranges, check_setting_types

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file beside it, fsyncs, then renames it.

    A run killed at any moment (SIGKILL, power loss) leaves either the previous
    checkpoint or the new one, never a truncated file: the rename is atomic on one
    file system, unlike a copy from the system's temporary folder.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        with atomic_path(path) as temporary, open(temporary, "wb") as file:
            torch.save(checkpoint, file)
            file.flush()
            os.fsync(file.fileno())


class LastCheckpoint(Checkpoint):
    """Keeps `last.ckpt` the newest training state: every N steps and after every epoch.

    Lightning's `ModelCheckpoint(save_last=True)` rewrites last.ckpt only when it also
    saves a top-k checkpoint, so after an epoch that did not improve "last" is stale.
    Resuming from this file (`ckpt_path=.../last.ckpt`) continues mid-epoch.

    Args:
        dirpath: folder of the checkpoint.
        every_n_train_steps: also save after every N optimiser steps (0: epoch ends only).
        filename: name of the file.
    """

    def __init__(self, dirpath: str | os.PathLike, every_n_train_steps: int = 50, filename: str = "last.ckpt") -> None:
        if every_n_train_steps < 0:
            raise ValueError(f"every_n_train_steps must be >= 0, got {every_n_train_steps}")
        self.every_n_train_steps = every_n_train_steps
        self.last_model_path = str(Path(dirpath) / filename)

    def _save(self, trainer: L.Trainer) -> None:
        if trainer.fast_dev_run or trainer.sanity_checking:
            return
        trainer.save_checkpoint(self.last_model_path, weights_only=False)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self.every_n_train_steps and trainer.global_step % self.every_n_train_steps == 0:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)


def instantiate_list(configs: DictConfig | None) -> list:
    """Instantiates every `_target_` entry of a config group (callbacks, loggers)."""
    if not configs:
        return []
    return [instantiate(config, _convert_="all") for config in configs.values() if config and "_target_" in config]


def check_output_dir(output_dir: str | os.PathLike, resume_from: str | os.PathLike | None = None) -> None:
    """Refuses an output folder that already holds an earlier run's checkpoints.

    Temporary checkpoint files of killed runs (here and beside `resume_from`) are removed first.
    """
    checkpoints = Path(output_dir) / "checkpoints"
    for folder in {checkpoints, *([Path(resume_from).parent] if resume_from else [])}:
        for path in remove_stale_temporaries(folder):
            log.info("removed %s, a partial checkpoint of a killed run", path)
    if checkpoints.is_dir() and any(checkpoints.iterdir()):
        raise OutputExistsError(
            f"{checkpoints} already holds checkpoints of an earlier run; choose another "
            "hydra.run.dir (to continue that run, pass ckpt_path=.../last.ckpt with a new folder)"
        )


@rank_zero_only
def print_summary(summary: dict[str, Any]) -> None:
    """Prints the end-of-run table: best validation metrics, checkpoints, wall time."""
    table = Table(title="skinseg training summary", show_header=False, title_justify="left")
    table.add_column("item", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in summary.items():
        if key == "wall_time_s":
            value = f"{value:.1f}"
        elif isinstance(value, float):
            value = f"{value:.4f}"
        table.add_row(key, str(value))
    Console().print(table)


def build_trainer(settings: DictConfig, callbacks: list, loggers: list) -> L.Trainer:
    """The Lightning Trainer of `settings`; a setting it rejects (no GPU here, ...) is a UsageError."""
    from hydra.errors import InstantiationException
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        return instantiate(settings, callbacks=callbacks, logger=loggers or False, _convert_="all")
    except InstantiationException as error:
        if isinstance(error.__cause__, (MisconfigurationException, ValueError, TypeError)):
            raise UsageError(f"trainer: {error.__cause__} (check the trainer.* settings; trainer=cpu runs on "
                             "any machine)") from error
        raise


def resolve_hardware(cfg: DictConfig) -> dict[str, str]:
    """Replaces "auto" in `trainer.precision` and `threads` by what this machine calls for.

    Sets torch's intra-op threads, writes the resolved values into `cfg` (so that the
    run's config and checkpoints record what was used), and returns one line per
    decision with its reason, for the log and the summary.

    Raises:
        UsageError: `threads` is neither "auto" nor 1 to the CPU count.
    """
    qat = "qat" in (cfg.get("callbacks") or {})
    choice: PrecisionChoice = resolve_precision(
        cfg.trainer.get("precision", AUTO),
        cfg.trainer.get("accelerator", "cpu"),
        fp32_reason="quantization-aware training fakes int8 in fp32" if qat else None,
    )
    threads = cfg.get("threads", AUTO)
    if threads in (None, AUTO):
        threads, why_threads = default_threads(), "the physical cores available to this process"
    elif type(threads) is int and 1 <= threads <= (os.cpu_count() or 1):
        why_threads = "set explicitly"
    else:
        raise UsageError(f"threads must be 'auto' or 1 to {os.cpu_count()} (this machine's CPUs; more only slow "
                         f"it down), got {threads!r}")
    torch.set_num_threads(threads)
    with open_dict(cfg):
        cfg.trainer.precision = choice.precision
        cfg.threads = threads
    return {
        "cpu": cpu_info().describe(),
        "precision": str(choice),
        "threads": f"{threads}: {why_threads}",
    }


def unset_keys(node: Any, prefix: str = "") -> list[str]:
    """The dotted keys of a config container (unresolved) whose value is Hydra's mandatory `???`.

    `OmegaConf.missing_keys` would do, but raises where an interpolation points at such a key
    (`model.pretrained: ${stage1_checkpoint}`), the case this check is for.
    """
    if isinstance(node, dict):
        return [key for name, value in node.items() for key in unset_keys(value, f"{prefix}{name}.")]
    if isinstance(node, list):
        return [key for index, value in enumerate(node) for key in unset_keys(value, f"{prefix}{index}.")]
    return [prefix[:-1]] if node == "???" else []


def check_input_spec(cfg: DictConfig) -> None:
    """Refuses a data config that resizes to another size or mode than the model's input spec.

    The model owns the spec (`model.input_size`, `model.resize_mode`) and the data config reads it;
    setting `data.input_size` alone would train at one size and record another in the checkpoint.
    """
    for key in ("input_size", "resize_mode"):
        if key in cfg.data and key in cfg.model and cfg.data[key] != cfg.model[key]:
            raise UsageError(f"data.{key}={cfg.data[key]} differs from model.{key}={cfg.model[key]}: the model owns "
                             f"the input spec and the data reads it; set model.{key}={cfg.data[key]} instead")


def run_test_loop(trainer: L.Trainer, model: L.LightningModule, datamodule: L.LightningDataModule,
                  best_checkpoint: str | None) -> dict[str, Any]:
    """Runs Lightning's test loop on the test splits: with the best checkpoint's weights, else the final ones.

    Returns:
        "tested" (the checkpoint path, or "final weights") and the logged "test/..." metrics.
    """
    if best_checkpoint:
        log.info("test loop on the best checkpoint %s", best_checkpoint)
    else:
        log.info("test loop on the final weights: no best checkpoint (no model_checkpoint callback, or a "
                 "fast_dev_run)")
    results = trainer.test(model, datamodule=datamodule, ckpt_path=best_checkpoint, weights_only=True)
    metrics = {key: float(value) for key, value in results[0].items() if key.startswith("test/")}
    return {"tested": best_checkpoint or "final weights", **metrics}


def train(cfg: DictConfig) -> dict[str, Any]:
    """Trains the configured model on the configured data; returns the summary.

    The summary holds the hardware decisions (precision, threads, loader workers, with
    their reasons), the best epoch's validation metrics (by val/miou50), the best and last
    checkpoint paths, the output folder and the wall time; with `cfg.test`, also the
    test loop's "test/..." metrics and which weights it tested.
    """
    missing = unset_keys(OmegaConf.to_container(cfg, resolve=False))
    if missing:
        raise UsageError(f"the config leaves {', '.join(missing)} unset (???): give them on the command line, "
                         f"e.g. python train.py ... {missing[0]}=VALUE")
    if rank_zero_only.rank == 0:
        check_output_dir(cfg.paths.output_dir, cfg.get("ckpt_path"))
    if cfg.get("ckpt_path"):
        check_resume_checkpoint(cfg.ckpt_path)
    check_setting_ranges({key: cfg[key] for key in RUN_RULES if key in cfg}, "", RUN_RULES)
    check_input_spec(cfg)
    check_setting_types(OmegaConf.to_container(cfg.data, resolve=True), "data")
    datamodule = instantiate(cfg.data, _convert_="all")  # its settings checked before anything is logged
    datamodule.folders()  # and its folders
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True, verbose=False)  # logged below with the hardware choices
    hardware = resolve_hardware(cfg)  # trainer.precision "auto" resolved before its type is checked
    for group in ("model", "trainer"):
        check_setting_types(OmegaConf.to_container(cfg[group], resolve=True), group)
    check_setting_ranges(OmegaConf.to_container(cfg.trainer, resolve=True), "trainer", TRAINER_RULES)
    hardware["loader workers"] = f"{datamodule.num_workers}: {datamodule.num_workers_reason}"
    with open_dict(cfg):
        cfg.data.num_workers = datamodule.num_workers  # the run's record says what was used
    if cfg.get("test"):
        datamodule.setup("test")  # no dataset with a test split: fail now, not after training
    model = instantiate(cfg.model, _convert_="all")
    model.run_config = OmegaConf.to_container(cfg, resolve=True)
    if cfg.get("ckpt_path"):
        check_resume_checkpoint(cfg.ckpt_path, model)
    for key, value in hardware.items():  # after every check of the config: an error comes alone
        log.info("%s: %s", key, value)
    log.info("seed: %s", cfg.get("seed"))
    callbacks = instantiate_list(cfg.get("callbacks"))
    loggers = instantiate_list(cfg.get("logger"))
    trainer = build_trainer(cfg.trainer, callbacks, loggers)

    start = time.perf_counter()
    # our checkpoints hold tensors and plain containers only, so resuming can load them safely
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
    wall_time = time.perf_counter() - start

    best_metrics = dict(model.best_metrics)
    summary: dict[str, Any] = {
        **hardware,
        "best_epoch": best_metrics.pop("epoch", "-"),
        "best_step": best_metrics.pop("step", "-"),
        **best_metrics,
    }
    for key in ("train/miou50", "train/mae"):  # the last epoch's, to compare with val
        if key in trainer.callback_metrics:
            summary[f"{key} (last epoch)"] = float(trainer.callback_metrics[key])
    best = [c.best_model_path for c in trainer.checkpoint_callbacks if getattr(c, "best_model_path", "")]
    last = [c.last_model_path for c in trainer.checkpoint_callbacks if getattr(c, "last_model_path", "")]
    summary.update(
        {
            "model": cfg.model.net.name,
            "epochs": trainer.current_epoch,
            "global_step": trainer.global_step,
            "best_checkpoint": best[0] if best else "-",
            "last_checkpoint": last[0] if last else "-",
            "output_dir": cfg.paths.output_dir,
            "wall_time_s": wall_time,
        }
    )
    if cfg.get("test"):
        summary.update(run_test_loop(trainer, model, datamodule, best[0] if best else None))
    print_summary(summary)
    return summary
