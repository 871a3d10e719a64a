"""Quantization-aware training as a Lightning callback: `python train.py qat=x86 model.pretrained=CKPT`."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from skinseg.quant.fx import CHECKPOINT_KEY, check_engine, is_prepared, prepare_qat, quiet_quantization


class QuantizationAwareTraining(Callback):
    """Replaces the module's network by its fake-quantized QAT graph before training starts.

    The usual schedule: observers and BN statistics update at first; BN statistics are
    frozen after `freeze_bn_epochs` epochs (the folded weights then stop moving with the
    batch statistics), and observers after `freeze_observer_epochs` (the int8 scales
    settle, the weights adapt to them). Checkpoints record the engine under
    "skinseg_quantization", from which `export.py` and `TorchSession` rebuild the graph.

    Fine-tune a trained float model (`model.pretrained=CKPT`) with a small learning rate
    and 32-bit precision (configs/qat/ sets both).

    Args:
        engine: "fbgemm", "x86" or "qnnpack" (see `skinseg.quant.fx`).
        freeze_bn_epochs: epochs after which BN statistics are frozen; None: never.
        freeze_observer_epochs: epochs after which observers are disabled; None: never.
    """

    def __init__(self, engine: str = "x86", freeze_bn_epochs: int | None = 1,
                 freeze_observer_epochs: int | None = 2) -> None:
        check_engine(engine)
        for name, value in (("freeze_bn_epochs", freeze_bn_epochs), ("freeze_observer_epochs", freeze_observer_epochs)):
            if value is not None and value < 0:
                raise ValueError(f"qat {name} must be >= 0 or null, got {value}")
        self.engine = engine
        self.freeze_bn_epochs = freeze_bn_epochs
        self.freeze_observer_epochs = freeze_observer_epochs

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if is_prepared(pl_module.net):
            return
        if trainer.precision not in ("32", "32-true"):
            raise ValueError(f"quantization-aware training needs trainer.precision=32, got {trainer.precision!r}")
        if pl_module.hparams.get("compile"):
            raise ValueError("quantization-aware training does not support model.compile=true")
        size = training_size(pl_module)
        device = next(pl_module.net.parameters()).device
        pl_module.net = prepare_qat(pl_module.net.cpu(), self.engine, size).to(device)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from torch.ao.nn.intrinsic.qat import freeze_bn_stats
        from torch.ao.quantization import disable_observer

        epoch = trainer.current_epoch
        with quiet_quantization():
            if self.freeze_bn_epochs is not None and epoch >= self.freeze_bn_epochs:
                pl_module.net.apply(freeze_bn_stats)
            if self.freeze_observer_epochs is not None and epoch >= self.freeze_observer_epochs:
                pl_module.net.apply(disable_observer)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from torch.ao.quantization import disable_observer

        pl_module.net.apply(disable_observer)  # validation images must not move the int8 scales

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from torch.ao.quantization import enable_observer

        frozen = self.freeze_observer_epochs is not None and trainer.current_epoch >= self.freeze_observer_epochs
        if not frozen:
            pl_module.net.apply(enable_observer)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = {"method": "qat", "engine": self.engine, "size": training_size(pl_module)}

    def state_dict(self) -> dict[str, Any]:
        return {"engine": self.engine}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("engine") != self.engine:
            raise ValueError(
                f"resuming a QAT run trained for engine {state_dict.get('engine')!r} with qat engine "
                f"{self.engine!r}; use the same qat=... as the run"
            )


def training_size(pl_module: L.LightningModule) -> int:
    """The image side trained at: the module's `input_size` (its input spec)."""
    return int(pl_module.hparams.get("input_size", 320))
