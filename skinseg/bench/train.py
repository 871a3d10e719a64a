"""Training-speed benchmark: `python -m skinseg.bench.train [--models u2netp dlmv] [--quick]`.

For each model at its training size it prints one table row per precision:
- training images/s of a plain PyTorch loop (the baseline) and of skinseg's
  LightningModule under a Lightning Trainer, over the same model, optimiser and
  in-memory batches, and their ratio (the module's overhead; target <= 5 %);
- the bf16-mixed speed-up over fp32;
- the data pipeline's images/s with the configured loader workers on real folders
  (the public datasets when present, else the demo set), to show whether loading
  can feed training.
Each figure is the median over `--repeats` runs of `--steps` timed steps after warm-up.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Iterable
from functools import partial
from pathlib import Path

import lightning as L
import torch
from rich.console import Console
from rich.table import Table

from skinseg.data import SkinDataModule
from skinseg.losses import BceDiceLoss
from skinseg.module import SkinSegModule

TRAIN_SIZES = {"u2netp": 320, "u2net": 320, "dlmv": 256}
BATCH_SIZES = {"u2netp": 8, "u2net": 4, "dlmv": 16}
LOSS_WEIGHTS = {"u2netp": (1 / 3, 2 / 3), "u2net": (1 / 3, 2 / 3), "dlmv": (0.5, 0.5)}
PRECISIONS = ("32-true", "bf16-mixed")


def cpu_name() -> str:
    """The processor's model name (Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def make_batches(count: int, batch_size: int, size: int, seed: int = 0) -> list[dict]:
    """Random uint8 image batches with blob masks, shaped like the datamodule's."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        images = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8, generator=generator)
        noise = torch.rand(batch_size, 1, size // 8, size // 8, generator=generator)
        masks = torch.nn.functional.interpolate(noise, size=(size, size), mode="bilinear") > 0.5
        batches.append(
            {
                "image": images,
                "mask": masks.to(torch.uint8) * 255,
                "dataset": torch.zeros(batch_size, dtype=torch.long),
            }
        )
    return batches


def build_module(name: str) -> SkinSegModule:
    bce, dice = LOSS_WEIGHTS[name]
    return SkinSegModule(
        net={"name": name},
        loss=BceDiceLoss(bce, dice),
        optimizer=partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.0),
        input_size=TRAIN_SIZES[name],
        channels_last=True,
    )


def plain_loop_times(name: str, batches: list[dict], precision: str) -> list[float]:
    """Seconds per step of a hand-written loop over the same network, loss and optimiser."""
    torch.manual_seed(0)
    module = build_module(name)
    net, loss_fn = module.net.train(), module.loss_fn
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.0)
    times = []
    for batch in batches:
        start = time.perf_counter()
        images = batch["image"].float().div_(255).contiguous(memory_format=torch.channels_last)
        target = batch["mask"].float().div_(255)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
            outputs = net(images)
            loss = loss_fn(outputs, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return times


class StepTimer(L.Callback):
    """Records the wall time between consecutive training-batch starts (and the last end)."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.stamps.append(time.perf_counter())

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.stamps.append(time.perf_counter())

    def times(self) -> list[float]:
        return [b - a for a, b in zip(self.stamps, self.stamps[1:])]


def lightning_times(name: str, batches: list[dict], precision: str) -> list[float]:
    """Seconds per step of SkinSegModule.fit over the same batches."""
    torch.manual_seed(0)
    timer = StepTimer()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        precision=precision,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[timer],
    )
    loader = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False)
    trainer.fit(build_module(name), train_dataloaders=loader)
    return timer.times()


def images_per_second(step_times: Iterable[float], batch_size: int, warmup: int) -> float:
    timed = list(step_times)[warmup:]
    return batch_size / statistics.median(timed)


def data_pipeline_rate(
    size: int, batch_size: int, workers: int, batches: int, data_root: Path | None, cache: Path
) -> tuple[float, str]:
    """Images/s of the training loader (decode, resize, flip, collate) at the given size."""
    common = {"image_size": size, "batch_size": batch_size, "num_workers": workers, "cache_dir": cache}
    if data_root is not None:
        datasets = [p.name for p in sorted(data_root.iterdir()) if (p / "images").is_dir()]
        module = SkinDataModule(data_root, datasets=datasets, **common)
        source = f"public ({', '.join(datasets)})"
    else:
        module = SkinDataModule(cache, demo={}, **common)
        module.prepare_data()
        source = "demo"
    module.setup("fit")
    loader = iter(module.train_dataloader())
    next(loader)  # worker start-up is not throughput
    start = time.perf_counter()
    seen = 0
    for _ in range(batches):
        seen += len(next(loader)["image"])
    return seen / (time.perf_counter() - start), source


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(TRAIN_SIZES), choices=list(TRAIN_SIZES))
    parser.add_argument("--size", type=int, help="input size for every model (default: each one's own)")
    parser.add_argument("--batch-size", type=int, help="batch size for every model (default: each one's own)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--workers", type=int, default=2, help="loader workers (configs/data: 2)")
    parser.add_argument("--data-batches", type=int, default=20)
    parser.add_argument("--data", type=Path, default=os.environ.get("SKINSEG_DATA"),
                        help="folder of datasets for the loader figure (default $SKINSEG_DATA, else demo)")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("SKINSEG_CACHE", ".cache")))
    parser.add_argument("--quick", action="store_true", help="1 repeat, 3 steps: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.steps, args.warmup, args.data_batches = 1, 3, 1, 5
    data_root = args.data if args.data and any(Path(args.data).glob("*/images")) else None

    table = Table(title=(
        f"Training speed, {cpu_name()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, lightning {L.__version__}; median of {args.repeats} x {args.steps} steps"
    ))
    for column in ("model", "size", "batch", "precision", "plain img/s", "skinseg img/s",
                   "skinseg / plain", "bf16 / fp32", "loader img/s", "loader / train"):
        table.add_column(column, justify="right")

    for name in args.models:
        batch_size, size = args.batch_size or BATCH_SIZES[name], args.size or TRAIN_SIZES[name]
        batches = make_batches(args.warmup + args.steps, batch_size, size)
        loader_rate, source = data_pipeline_rate(
            size, batch_size, args.workers, args.data_batches, data_root, args.cache
        )
        fp32_rate = None
        for precision in PRECISIONS:
            plain_rates, our_rates = [], []
            for _ in range(args.repeats):  # interleaved, so that drifts in machine speed hit both
                plain_rates.append(
                    images_per_second(plain_loop_times(name, batches, precision), batch_size, args.warmup)
                )
                our_rates.append(
                    images_per_second(lightning_times(name, batches, precision), batch_size, args.warmup)
                )
            plain, ours = statistics.median(plain_rates), statistics.median(our_rates)
            fp32_rate = fp32_rate or ours
            row = (
                name, str(size), str(batch_size), precision, f"{plain:.2f}", f"{ours:.2f}",
                f"{ours / plain:.3f}", f"{ours / fp32_rate:.2f}", f"{loader_rate:.1f}", f"{loader_rate / ours:.1f}",
            )
            print("row:", " | ".join(row), flush=True)  # partial results while the rest runs
            table.add_row(*row)
    console = Console(width=200)
    console.print(table)
    console.print(
        f"loader: {args.workers} workers on {source} data, measured alone (in training it shares the "
        "CPU with the model); loader / train > 1 means loading keeps up."
    )


if __name__ == "__main__":
    main()
