"""The one LightningModule that trains, validates and checkpoints every skinseg model."""

from __future__ import annotations

import inspect
import math
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn
from torchmetrics import Metric

from skinseg import metrics
from skinseg.augment.context import VIEW_PREFIX
from skinseg.checkpoints import read_checkpoint
from skinseg.errors import MissingFileError, NotAModelError, UsageError
from skinseg.losses import BceDiceLoss
from skinseg.models import create_model
from skinseg.outputs import TrainingOutputs, final_logits
from skinseg.resize import check_resize_mode


class SegmentationScores(Metric):
    """Each image's scores, summarised overall and per source dataset by `skinseg.metrics.summarise`.

    The one summary evaluate.py and the export checks use, under the same names: each image's
    probabilities become a uint8 mask (0-255), the truth is scaled to 0-255, `score_image`
    (without HCE) scores it, and `compute` reports `summarise`'s miou50 (mean over the images
    whose truth has skin: on a scene without people an IoU is 1 or about 0 and says little),
    fpr (mean over all images: on scenes without people, the share called skin) and mae
    (pooled over all pixels, 0-255). Computed at the network's input resolution (evaluate.py
    scores full-resolution masks).

    Args:
        num_datasets: number of dataset ids that `update` may receive.
        pooled: which dataset ids count in the overall figures (default: all); validation
            views (`data.val_views`) are reported on their own, not pooled.
    """

    full_state_update = False
    FIELDS = ("soft_iou", "iou50", "abs_error", "pixels", "tp", "fp", "fn", "fpr", "precision", "recall", "f1")
    REPORTED = ("miou50", "fpr", "mae")

    def __init__(self, num_datasets: int = 1, pooled: Sequence[bool] | None = None) -> None:
        super().__init__()
        self.add_state("rows", default=[], dist_reduce_fx="cat")  # (dataset id, *FIELDS) per image
        pooled = torch.ones(num_datasets, dtype=torch.bool) if pooled is None else torch.tensor(list(pooled))
        if pooled.shape != (num_datasets,):
            raise ValueError(f"pooled needs one flag per dataset ({num_datasets}), got {len(pooled)}")
        self.register_buffer("pooled", pooled, persistent=False)

    def update(self, logits: torch.Tensor, target: torch.Tensor, dataset: torch.Tensor) -> None:
        """Args: logits (B,1,H,W); target (B,1,H,W) in [0,1]; dataset (B,) int ids."""
        predictions = probabilities_to_uint8(torch.sigmoid(logits.detach().float()))
        truths = probabilities_to_uint8(target.detach().float())
        rows = []
        for prediction, truth, index in zip(predictions, truths, dataset.tolist(), strict=True):
            score = metrics.score_image(prediction, truth, with_hce=False)
            rows.append([index, *(score[key] for key in self.FIELDS)])
        self.rows.append(torch.tensor(rows, dtype=torch.float64, device=self.pooled.device))

    def compute(self) -> dict[str, float]:
        """{"miou50", "fpr", "mae"} over the pooled datasets (miou50 0 where no image has skin, so that
        the best-checkpoint monitor always has a value), and per dataset id "miou50/<id>" (where some
        truth has skin), "fpr/<id>", "mae/<id>"."""
        if isinstance(self.rows, list) and not self.rows:
            return {}
        rows = torch.cat(self.rows) if isinstance(self.rows, list) else self.rows  # synced: already one tensor
        scores_by_id: dict[int, list[dict[str, float]]] = {}
        for row in rows.tolist():
            scores_by_id.setdefault(int(row[0]), []).append(dict(zip(self.FIELDS, row[1:], strict=True)))
        pooled = [score for index, scores in scores_by_id.items() if self.pooled[index] for score in scores]
        results = {}
        if pooled:
            summary = metrics.summarise(pooled)
            results = {key: summary[key] if summary[key] is not None else 0.0 for key in self.REPORTED}
        for index in sorted(scores_by_id):
            summary = metrics.summarise(scores_by_id[index])
            results.update({f"{key}/{index}": summary[key] for key in self.REPORTED if summary[key] is not None})
        return results


def probabilities_to_uint8(probabilities: torch.Tensor) -> list[np.ndarray]:
    """(B,1,H,W) values in [0,1] -> B uint8 (H,W) masks on the 0-255 scale, as the sessions write them."""
    scaled = (probabilities.clamp(0, 1) * 255).round().to(torch.uint8)
    return list(scaled[:, 0].cpu().numpy())


def capture_rng_state() -> dict:
    """Python, NumPy, torch (and CUDA) generator states as tensors and ints.

    Plain types only, so checkpoints still load with `weights_only=True`.
    """
    version, python_state, gauss = random.getstate()
    _, numpy_key, numpy_pos, numpy_has_gauss, numpy_gauss = np.random.get_state()
    state = {
        "python": [version, torch.tensor(python_state, dtype=torch.int64), gauss],
        "numpy": [torch.from_numpy(numpy_key.astype(np.int64)), numpy_pos, numpy_has_gauss, numpy_gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Restores what `capture_rng_state` captured."""
    version, python_state, gauss = state["python"]
    random.setstate((version, tuple(python_state.tolist()), gauss))
    key, pos, has_gauss, numpy_gauss = state["numpy"]
    np.random.set_state(("MT19937", key.numpy().astype(np.uint32), pos, has_gauss, numpy_gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0, min_lr_ratio: float = 1e-3
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over `warmup_steps`, then cosine decay to `min_lr_ratio`·lr at `total_steps`."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def load_weights(net: nn.Module, path: str | os.PathLike) -> None:
    """Loads a local state dict or checkpoint into net, safely (`weights_only=True`).

    Accepts a bare state dict, a skinseg/Lightning checkpoint ("state_dict" with "net."
    keys) and the original trainer's {"state": {"state_dict": ...}}; DDP's "module."
    and torch.compile's "_orig_mod." prefixes are removed.

    Raises:
        MissingFileError: no file at path.
        NotAModelError: the file cannot be read as weights.
        UsageError: the weights do not fit the network (lists missing/unexpected keys).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingFileError(f"model.pretrained={path}: no such file; give a local .ckpt/.pth path")
    state = read_checkpoint(path)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    elif isinstance(state, dict) and isinstance(state.get("state"), dict):
        state = state["state"]["state_dict"]
    if not isinstance(state, dict):
        raise NotAModelError(f"model.pretrained={path} holds a {type(state).__name__}, not a state dict or checkpoint")
    if any(key.startswith("net.") for key in state):
        state = {key[4:]: value for key, value in state.items() if key.startswith("net.")}
    state = {key.replace("module.", "", 1).replace("_orig_mod.", ""): value for key, value in state.items()}
    result = net.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise UsageError(
            f"model.pretrained={path} does not fit {type(net).__name__}: "
            f"{len(result.missing_keys)} missing keys (e.g. {result.missing_keys[:3]}), "
            f"{len(result.unexpected_keys)} unexpected keys (e.g. {result.unexpected_keys[:3]}); "
            "check model.net matches the checkpoint's architecture"
        )


def check_optimizer_settings(optimizer: Callable | None) -> None:
    """Refuses a partial optimizer whose learning rate is not a number > 0 or whose weight decay is negative.

    Raises:
        UsageError: names the setting and the value (torch would fail later with a TypeError).
    """
    settings = getattr(optimizer, "keywords", {}) or {}
    for key, minimum, rule in (("lr", 0.0, "> 0"), ("weight_decay", None, ">= 0")):
        if key not in settings:
            continue
        value = settings[key]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or (value <= minimum if minimum is not None else value < 0):
            raise UsageError(f"model.optimizer.{key} must be a number {rule}, got {value!r}")


class SkinSegModule(L.LightningModule):
    """Trains any registered network with a multi-output loss and per-dataset metrics.

    Args:
        net: registry name and constructor arguments, e.g. {"name": "u2netp"}.
        loss: callable (outputs, target) -> scalar; default 0.5 BCE + 0.5 Dice.
        optimizer: partial taking `params`, e.g. `partial(torch.optim.AdamW, lr=1e-3)`.
        scheduler: partial taking the optimizer (and `total_steps` if it accepts it).
        scheduler_interval: "step" or "epoch".
        input_size: the side of the square network input. With `resize_mode`, `input_mean`
            and `input_std` this is the model's input spec: the data config reads size and
            resize mode from here (`${model.input_size}`), the checkpoint records them once, and
            export and inference read them from there.
        resize_mode: how images become squares: "squash" (stretched, as the original) or
            "letterbox" (aspect kept, padded bottom/right).
        channels_last: use the NHWC memory format (faster convolutions on CPU and GPU).
        compile: compile the network with torch.compile.
        pretrained: local state dict / checkpoint to start from.
        encoder_weights: pretrained encoder of an encoder-decoder network (`unet`,
            `deeplabv3`): None (random), "imagenet" (torchvision's, downloaded) or the path
            of a state dict (`skinseg.models.encoders`). Not part of `net`, so a checkpoint
            rebuilds its network without the file.
        input_mean: per-channel mean subtracted after scaling inputs to [0,1]; None: what
            the encoder weights expect (recorded in the checkpoint), else none.
        input_std: per-channel std divided by after the mean; None: as input_mean.
        freeze_pretrained_bn: keep the BatchNorm layers of the pretrained parts (encoder,
            and a loaded head) in eval mode: their statistics stay the pretrained ones.
        encoder_lr_scale: the encoder's learning rate as a fraction of the others' (its own
            parameter group); 1: one rate for all.
        freeze_encoder_steps: the encoder takes no gradient for the first N optimiser steps
            (the new decoder settles first).
        device_map: None, or where each part of a network that can be split lives, e.g.
            {"backbone": "cuda:0", "decoder": "cuda:1"} (BiRefNet_lite; any devices, "cpu"
            included). The module keeps the parts there although Lightning moves models
            onto one device; outputs and the loss are on the backbone's device.

    Batches are {"image": uint8 (B,3,H,W), "mask": uint8 (B,1,H,W), "dataset": (B,) ids}.
    """

    def __init__(
        self,
        net: dict,
        loss: Callable | None = None,
        optimizer: Callable | None = None,
        scheduler: Callable | None = None,
        scheduler_interval: str = "step",
        input_size: int = 320,
        resize_mode: str = "squash",
        channels_last: bool = False,
        compile: bool = False,
        pretrained: str | None = None,
        input_mean: Sequence[float] | None = None,
        input_std: Sequence[float] | None = None,
        device_map: dict[str, str] | None = None,
        encoder_weights: str | None = None,
        freeze_pretrained_bn: bool = False,
        encoder_lr_scale: float = 1.0,
        freeze_encoder_steps: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["loss", "optimizer", "scheduler"], logger=False)
        check_resize_mode(resize_mode, "model.resize_mode")
        if scheduler_interval not in ("step", "epoch"):
            raise ValueError(f"model.scheduler_interval must be 'step' or 'epoch', got {scheduler_interval!r}")
        if not encoder_lr_scale > 0:
            raise UsageError(f"model.encoder_lr_scale must be > 0, got {encoder_lr_scale}")
        if freeze_encoder_steps < 0:
            raise UsageError(f"model.freeze_encoder_steps must be >= 0, got {freeze_encoder_steps}")
        self.net = create_model(**net)
        if (encoder_weights or freeze_pretrained_bn or encoder_lr_scale != 1 or freeze_encoder_steps) and not hasattr(
                self.net, "load_pretrained"):
            raise UsageError(f"model.encoder_weights / freeze_pretrained_bn / encoder_lr_scale / freeze_encoder_steps: "
                             f"{net['name']} has no pretrained encoder (unet and deeplabv3 have)")
        if encoder_weights:
            self.net.load_pretrained(encoder_weights)
        if input_mean is None and input_std is None and getattr(self.net, "input_mean", None) is not None:
            input_mean, input_std = self.net.input_mean, self.net.input_std
            self.hparams["input_mean"], self.hparams["input_std"] = list(input_mean), list(input_std)
        if device_map is not None:
            if not hasattr(self.net, "place"):
                raise ValueError(f"model.device_map: {net['name']} cannot be split over devices (birefnet_lite can)")
            self.net.device_map = device_map
        if pretrained:
            load_weights(self.net, pretrained)
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        if freeze_pretrained_bn:
            self.train()  # sets the modes Lightning keeps: it restores each submodule's mode, never calls train()
        self.loss_fn = loss if loss is not None else BceDiceLoss()
        check_optimizer_settings(optimizer)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        mean = torch.tensor(input_mean if input_mean is not None else [0.0, 0.0, 0.0])
        std = torch.tensor(input_std if input_std is not None else [1.0, 1.0, 1.0])
        self.register_buffer("input_mean", mean.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("input_std", std.view(1, -1, 1, 1), persistent=False)
        self.dataset_names: list[str] = ["data"]
        self.train_scores = SegmentationScores(1)
        self.val_scores = SegmentationScores(1)
        self.best_metrics: dict[str, float] = {}
        self.run_config: dict | None = None

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        names = list(getattr(datamodule, "dataset_names", None) or self.dataset_names)
        pooled = [not name.startswith(VIEW_PREFIX) for name in names]
        if names != self.dataset_names:
            self.dataset_names = names
            self.train_scores = SegmentationScores(len(names), pooled)
            self.val_scores = SegmentationScores(len(names), pooled)
        if stage == "test":  # a fresh instance for each trainer.test()
            self.test_scores = SegmentationScores(len(names), pooled)
        if self.hparams.compile:
            self.net.compile()

    @property
    def device_map(self) -> dict[str, torch.device] | None:
        """The network's part -> device map, if it is split over devices (BiRefNet_lite)."""
        return getattr(self.net, "device_map", None)

    def place_network(self) -> None:
        """Moves the parts of a split network onto their devices, and its optimizer state with them.

        Lightning moves the whole module onto its root device before fitting, and a resumed
        optimizer state onto it after `on_fit_start`; the hooks below undo both for split
        networks.
        """
        if self.device_map is None:
            return
        self.net.place()
        if self._trainer is None:
            return
        for optimizer in self.trainer.optimizers:
            for parameter, state in optimizer.state.items():
                for key, value in state.items():
                    if isinstance(value, torch.Tensor) and value.dim() > 0:
                        state[key] = value.to(parameter.device)

    def on_fit_start(self) -> None:
        if self.device_map is not None and self.trainer.world_size > 1:
            raise ValueError(
                "model.device_map splits one model over devices by hand: train it in one process "
                f"(trainer.devices=1), not {self.trainer.world_size}"
            )
        self.place_network()

    def on_train_start(self) -> None:
        self.place_network()

    def on_validation_start(self) -> None:
        self.place_network()

    def on_test_start(self) -> None:
        self.place_network()

    def on_predict_start(self) -> None:
        self.place_network()

    def pretrained_batchnorms(self) -> list[nn.Module]:
        """The BatchNorm layers of the network's pretrained parts (`net.pretrained_parts`)."""
        parts = [getattr(self.net, name) for name in getattr(self.net, "pretrained_parts", [])]
        return [module for part in parts for module in part.modules()
                if isinstance(module, nn.modules.batchnorm._BatchNorm)]

    def train(self, mode: bool = True) -> SkinSegModule:
        """As `nn.Module.train`, keeping pretrained BatchNorm in eval mode if `freeze_pretrained_bn`."""
        super().train(mode)
        if mode and self.hparams.get("freeze_pretrained_bn"):
            for batchnorm in self.pretrained_batchnorms():
                batchnorm.eval()
        return self

    def encoder_parameters(self) -> list[nn.Parameter]:
        """The parameters of the network's encoder (by name, so a QAT graph's too); [] without one."""
        return [parameter for name, parameter in self.net.named_parameters() if name.startswith("encoder.")]

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        steps = self.hparams.get("freeze_encoder_steps", 0)
        if steps and self.global_step <= steps:
            for parameter in self.encoder_parameters():
                parameter.requires_grad_(self.global_step >= steps)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B,3,H,W) -> float (B,3,H,W) in [0,1], normalised if configured."""
        x = images.float().div_(255)
        if self.hparams.input_mean is not None or self.hparams.input_std is not None:
            x = (x - self.input_mean) / self.input_std
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, images: torch.Tensor) -> torch.Tensor | TrainingOutputs:
        """uint8 images (B,3,H,W) -> the network's logits (`TrainingOutputs` in training, where it has them)."""
        return self.net(self.preprocess(images))

    def _step(self, batch: dict, scores: SegmentationScores, split: str) -> torch.Tensor:
        outputs = self(batch["image"])
        main = final_logits(outputs)
        # a network split over devices returns its outputs on its first part's device
        target = batch["mask"].to(main.device).float().div_(255)
        loss = self.loss_fn(outputs, target)
        scores.update(main.to(batch["dataset"].device), target.to(batch["dataset"].device), batch["dataset"])
        self.log(
            f"{split}/loss",
            loss,
            on_step=split == "train",
            on_epoch=split != "train",
            prog_bar=True,
            batch_size=target.shape[0],
            sync_dist=split != "train",
        )
        return loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)
        return self._step(batch, self.train_scores, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, self.val_scores, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, self.test_scores, "test")

    def _log_scores(self, scores: SegmentationScores, split: str) -> dict[str, float]:
        computed = scores.compute()
        scores.reset()
        metrics = {}
        for key, value in computed.items():
            name, _, index = key.partition("/")
            label = f"{split}/{self.dataset_names[int(index)]}/{name}" if index else f"{split}/{name}"
            metrics[label] = float(value)
        self.log_dict(metrics, prog_bar=False, sync_dist=False)
        return metrics

    def on_train_epoch_end(self) -> None:
        self._log_scores(self.train_scores, "train")

    def on_validation_epoch_end(self) -> None:
        metrics = self._log_scores(self.val_scores, "val")
        if self.trainer.sanity_checking:
            return
        if metrics["val/miou50"] >= self.best_metrics.get("val/miou50", -1.0):
            self.best_metrics = {**metrics, "epoch": self.current_epoch, "step": self.global_step}
        self.log("val/miou50_best", self.best_metrics["val/miou50"], prog_bar=True)

    def on_test_epoch_end(self) -> None:
        self._log_scores(self.test_scores, "test")

    def configure_optimizers(self):
        if self.optimizer_factory is None:
            raise ValueError("model.optimizer is not set; give a partial optimizer (see configs/model/)")
        scale = self.hparams.get("encoder_lr_scale", 1.0)
        encoder = {id(parameter) for parameter in self.encoder_parameters()} if scale != 1.0 else set()
        groups = [{"params": [p for p in self.parameters() if id(p) not in encoder]}]
        if encoder:  # a second group, its rate scaled before the scheduler records the base rates
            groups.append({"params": [p for p in self.parameters() if id(p) in encoder]})
        optimizer = self.optimizer_factory(params=groups)
        if encoder:
            optimizer.param_groups[1]["lr"] *= scale
        if self.scheduler_factory is None:
            return optimizer
        extra = {}
        if "total_steps" in inspect.signature(self.scheduler_factory).parameters:
            extra["total_steps"] = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer, **extra)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "interval": self.hparams.scheduler_interval,
                "monitor": "val/miou50",
            },
        }

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["skinseg"] = {
            "best_metrics": self.best_metrics,
            "dataset_names": self.dataset_names,
            "config": self.run_config,
            "rng": capture_rng_state(),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("skinseg", {})
        self.best_metrics = dict(state.get("best_metrics", {}))
        if "rng" in state:
            restore_rng_state(state["rng"])
