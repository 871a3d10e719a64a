"""Training-speed benchmark: `python -m skinseg.bench.train [--models u2netp dlmv] [--quick]`.

For each model with a `experiment=NAME_public` recipe, at that recipe's input size and batch
size, with its loss and optimiser, it prints one table row per precision:
- training images/s of a plain PyTorch loop (the baseline) and of skinseg's
  LightningModule under a Lightning Trainer, over the same model, optimiser and
  in-memory batches, and their ratio (the module's overhead; target <= 5 %);
- the bf16-mixed speed-up over fp32, which precision `trainer.precision=auto` picks on
  this machine and how its speed compares with the faster of the two;
- the data pipeline's images/s with the configured loader workers on real folders
  (the public datasets when present, else the demo set), to show whether loading
  can feed training.
`--workers-sweep 0 1 2` adds a table of training fed by the real loader with each number
of worker processes (the step waits for its batch: what a run sees).
The header names the CPU and its relevant features (AVX2, AVX-512, VNNI, BF16, AMX).
Each figure is the median over `--repeats` runs of `--steps` timed steps after warm-up.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import statistics
import time
from collections.abc import Iterable
from pathlib import Path

import lightning as L
import torch
from rich.console import Console
from rich.table import Table

import skinseg
from skinseg.data import SkinDataModule
from skinseg.errors import ArgumentParser, add_debug_option, at_least, thread_count, user_command
from skinseg.hardware import cpu_info, default_loader_workers, default_threads, resolve_precision
from skinseg.module import SkinSegModule
from skinseg.settings import set_command_defaults

PRECISIONS = ("32-true", "bf16-mixed")


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


def benchmarked_models() -> list[str]:
    """The registered networks with a `experiment=NAME_public` recipe, whose settings the rows use."""
    from skinseg.models import MODELS

    experiments = Path(skinseg.__file__).parent / "configs" / "experiment"
    return [name for name in sorted(MODELS) if (experiments / f"{name}_public.yaml").is_file()]


@functools.cache
def recipe(name: str) -> tuple[dict, int, int]:
    """The model config (plain containers), input size and batch size of `experiment=NAME_public`."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    GlobalHydra.instance().clear()
    with initialize_config_module("skinseg.configs", version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={name}_public"])
    GlobalHydra.instance().clear()
    return OmegaConf.to_container(cfg.model, resolve=True), int(cfg.model.input_size), int(cfg.data.batch_size)


def build_module(name: str) -> SkinSegModule:
    """The LightningModule of `experiment=NAME_public` (loss, optimiser, scheduler as that run trains)."""
    from hydra.utils import instantiate

    return instantiate(recipe(name)[0], _convert_="all")


def plain_loop_times(name: str, batches: list[dict], precision: str) -> list[float]:
    """Seconds per step of a hand-written loop over the same network, loss and optimiser."""
    torch.manual_seed(0)
    module = build_module(name)
    net, loss_fn = module.net.train(), module.loss_fn
    optimizer = module.optimizer_factory(net.parameters())
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


def timed_trainer(precision: str, timer: StepTimer, batches: int | None = None) -> L.Trainer:
    """A quiet one-epoch Trainer on the CPU without validation, timing its steps."""
    return L.Trainer(
        accelerator="cpu",
        devices=1,
        precision=precision,
        max_epochs=1,
        limit_train_batches=batches,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[timer],
    )


def lightning_times(name: str, batches: list[dict], precision: str) -> list[float]:
    """Seconds per step of SkinSegModule.fit over the same batches."""
    torch.manual_seed(0)
    timer = StepTimer()
    loader = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False)
    timed_trainer(precision, timer).fit(build_module(name), train_dataloaders=loader)
    return timer.times()


def images_per_second(step_times: Iterable[float], batch_size: int, warmup: int) -> float:
    timed = list(step_times)[warmup:]
    return batch_size / statistics.median(timed)


def real_datamodule(size: int, batch_size: int, workers: int, data_root: Path | None,
                    cache: Path) -> tuple[SkinDataModule, str]:
    """The training datamodule on every dataset under `data_root` (else the demo), set up; and its label."""
    common = {"input_size": size, "batch_size": batch_size, "num_workers": workers, "cache_dir": cache,
              "augment": {}}
    if data_root is not None:
        datasets = [p.name for p in sorted(data_root.iterdir()) if (p / "images").is_dir()]
        module = SkinDataModule(data_root, datasets=datasets, **common)
        source = f"public ({', '.join(datasets)})"
    else:
        module = SkinDataModule(cache, demo={}, **common)
        module.prepare_data()
        source = "demo"
    module.setup("fit")
    return module, source


def data_pipeline_rate(
    size: int, batch_size: int, workers: int, batches: int, data_root: Path | None, cache: Path
) -> tuple[float, str]:
    """Images/s of the training loader alone (decode, resize, flip, collate) at the given size."""
    module, source = real_datamodule(size, batch_size, workers, data_root, cache)
    loader = iter(module.train_dataloader())
    next(loader)  # worker start-up is not throughput
    start = time.perf_counter()
    seen = sum(len(batch["image"]) for batch in itertools.islice(loader, batches))  # a small set may end first
    return seen / (time.perf_counter() - start), source


def fed_training_rate(name: str, size: int, batch_size: int, precision: str, workers: int, steps: int,
                      warmup: int, data_root: Path | None, cache: Path) -> float:
    """Training images/s when each step waits for the real loader with `workers` processes."""
    torch.manual_seed(0)
    module, _ = real_datamodule(size, batch_size, workers, data_root, cache)
    timer = StepTimer()
    timed_trainer(precision, timer, batches=warmup + steps).fit(build_module(name), datamodule=module)
    return images_per_second(timer.times(), batch_size, warmup)


def hardware_header() -> str:
    """The CPU with its features, the threads, and the precision `auto` picks here (with why)."""
    cpu = cpu_info()
    features = ", ".join(f"{label} {'yes' if found else 'no'}" for label, found in cpu.features().items())
    return (f"{cpu.name}: {features}; {torch.get_num_threads()} threads; "
            f"trainer.precision=auto -> {resolve_precision('auto', 'cpu')}")


@user_command
def main(argv: list[str]) -> None:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=benchmarked_models(), choices=benchmarked_models())
    parser.add_argument("--size", type=at_least(32),
                        help="input size for every model (default: each one's own)")
    parser.add_argument("--batch-size", type=at_least(1),
                        help="batch size for every model (default: each one's own)")
    parser.add_argument("--steps", type=at_least(1), help="timed steps per run")
    parser.add_argument("--warmup", type=at_least(0), help="untimed steps per run")
    parser.add_argument("--repeats", type=at_least(1), help="runs per figure (median)")
    parser.add_argument("--threads", type=thread_count, default=default_threads(),
                        help="torch intra-op threads (default: the physical cores this process may use)")
    parser.add_argument("--workers", type=at_least(0), default=default_loader_workers(),
                        help="loader workers for the loader figure (default: data.num_workers=auto here)")
    parser.add_argument("--workers-sweep", type=at_least(0), nargs="*", metavar="N",
                        help="also time training fed by the real loader with each of these worker counts")
    parser.add_argument("--data-batches", type=at_least(1))
    parser.add_argument("--data", type=Path, default=os.environ.get("SKINSEG_DATA"),
                        help="folder of datasets for the loader figures (default $SKINSEG_DATA, else demo)")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("SKINSEG_CACHE", ".cache")))
    parser.add_argument("--quick", action="store_true", help="1 repeat, 3 steps: a smoke run")
    add_debug_option(parser)
    set_command_defaults(parser, "bench", "train")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.steps, args.warmup, args.data_batches = 1, 3, 1, 5
    torch.set_num_threads(args.threads)
    data_root = args.data if args.data and any(Path(args.data).glob("*/images")) else None
    default_precision = resolve_precision("auto", "cpu").precision
    console = Console(width=200)
    console.print(hardware_header(), highlight=False, soft_wrap=True)

    table = Table(title=(
        f"Training speed, {cpu_info().name}, {args.threads} threads, torch {torch.__version__}, "
        f"lightning {L.__version__}; median of {args.repeats} x {args.steps} steps"
    ))
    for column in ("model", "size", "batch", "precision", "plain img/s", "skinseg img/s", "skinseg / plain",
                   "bf16 / fp32", "auto picks", "auto / faster", "loader img/s", "loader / train"):
        table.add_column(column, justify="right")
    sweep = Table(title=f"Training fed by the loader ({default_precision}), images/s by worker processes")
    for column in ("model", "size", "batch", *(f"{w} workers" for w in args.workers_sweep), "default"):
        sweep.add_column(column, justify="right")

    for name in args.models:
        _, recipe_size, recipe_batch_size = recipe(name)
        batch_size, size = args.batch_size or recipe_batch_size, args.size or recipe_size
        batches = make_batches(args.warmup + args.steps, batch_size, size)
        loader_rate, source = data_pipeline_rate(
            size, batch_size, args.workers, args.data_batches, data_root, args.cache
        )
        rows = {}
        for precision in PRECISIONS:
            plain_rates, our_rates = [], []
            for _ in range(args.repeats):  # interleaved, so that drifts in machine speed hit both
                plain_rates.append(
                    images_per_second(plain_loop_times(name, batches, precision), batch_size, args.warmup)
                )
                our_rates.append(
                    images_per_second(lightning_times(name, batches, precision), batch_size, args.warmup)
                )
            rows[precision] = (statistics.median(plain_rates), statistics.median(our_rates))
            print(f"row: {name} {precision} plain {rows[precision][0]:.2f} skinseg {rows[precision][1]:.2f} img/s",
                  flush=True)  # partial results while the rest runs
        fp32_rate = rows["32-true"][1]
        fastest = max(ours for _, ours in rows.values())
        for precision, (plain, ours) in rows.items():
            picked = precision == default_precision
            table.add_row(
                name, str(size), str(batch_size), precision, f"{plain:.2f}", f"{ours:.2f}", f"{ours / plain:.3f}",
                f"{ours / fp32_rate:.2f}", "yes" if picked else "", f"{ours / fastest:.2f}" if picked else "",
                f"{loader_rate:.1f}", f"{loader_rate / ours:.1f}",
            )
        if args.workers_sweep:
            fed: dict[int, list[float]] = {workers: [] for workers in args.workers_sweep}
            for _ in range(args.repeats):  # interleaved, as above
                for workers in args.workers_sweep:
                    fed[workers].append(fed_training_rate(name, size, batch_size, default_precision, workers,
                                                          args.steps, args.warmup, data_root, args.cache))
            sweep.add_row(name, str(size), str(batch_size),
                          *(f"{statistics.median(rates):.2f}" for rates in fed.values()),
                          str(default_loader_workers()))
    console.print(table)
    console.print(
        f"loader: {args.workers} workers on {source} data, measured alone (in training it shares the "
        "CPU with the model); loader / train > 1 means loading keeps up."
    )
    if args.workers_sweep:
        console.print(sweep)


if __name__ == "__main__":
    main()
