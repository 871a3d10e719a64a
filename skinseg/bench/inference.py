"""The original's inference-time table: `python -m skinseg.bench.inference [--models ...] [--sizes ...]`.

Rows are model x runtime: torch eager (no_grad), torch `inference_mode`, `torch.compile`
(inductor, weights frozen), ONNX Runtime fp32, ONNX Runtime int8 (QDQ, one row per
quantization engine, for the models that quantize), and torch on CUDA when a GPU is
present; columns are input sizes (256, 320, 512, 1024, 1280, 1728 and 2048 by default,
batch 1, random weights: speed does not depend on the values; int8 scales are calibrated once
per model on random 256 px images). Below `--sequential-from` (1024) the runtimes of a size
are timed in interleaved rounds after a warm-up call each, so that a noisy, shared machine
slows them alike; from it on one after another, so that only one large ONNX Runtime session
is alive at a time (U²NetP's four sessions at 1728 px exceeded 24 GiB). A cell is the median
over rounds. A runtime whose time at the next size
is predicted (quadratic in the side) or measured above `--budget` seconds is not run at
larger sizes: its cells are left empty and the table says so. The machine (CPU, threads,
library versions) heads the table, which is printed and written to `results/` as
Markdown (`inference_time.md`) and CSV. An earlier run's table there is replaced only with
`--overwrite`, and then its cells that this run did not measure (other models or sizes) are
kept, so `--models u2netp --sizes 256 --overwrite` refreshes those cells only; `--fresh`
starts the table anew.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import statistics
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort
import psutil
import torch
from rich.console import Console

from skinseg.bench import add_output_options, check_tables, save_table
from skinseg.errors import (
    ArgumentParser,
    add_debug_option,
    at_least,
    positive_float,
    thread_count,
    user_command,
)
from skinseg.export.onnx import INPUT_NAME, export_onnx, has_dynamic_size
from skinseg.hardware import cpu_info, default_threads
from skinseg.models import MODELS, create_model
from skinseg.models.head import ProbabilityHead
from skinseg.quant.fx import (
    ENGINES,
    calibrate,
    check_quantizable,
    convert,
    prepare_ptq,
    quantized_engine,
    quiet_quantization,
)
from skinseg.settings import set_command_defaults

REFERENCE = "ONNX Runtime fp32"


def interleaved_medians(runners: dict[str, Callable[[], object]], runs: int, warmup: int = 2) -> dict[str, float]:
    """Median seconds per call of each runner, timed round-robin: `runs` rounds after `warmup` calls each."""
    for run in runners.values():
        for _ in range(warmup):
            run()
    times: dict[str, list[float]] = {label: [] for label in runners}
    for _ in range(runs):
        for label, run in runners.items():
            start = time.perf_counter()
            run()
            times[label].append(time.perf_counter() - start)
    return {label: statistics.median(values) for label, values in times.items()}


def ort_session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def within(mode: Callable[[], object], function: Callable[[], object]) -> Callable[[], object]:
    """`function` run inside the context manager `mode()` (no_grad, inference_mode)."""

    def run() -> object:
        with mode():
            return function()

    return run


def int8_networks(head: ProbabilityHead, engines: list[str]) -> dict[str, torch.nn.Module]:
    """engine -> int8 network (PTQ calibrated on two random 256 px images), for a model that quantizes.

    Built once per model: the int8 graphs take any input size, and speed does not depend
    on the calibration.
    """
    try:
        check_quantizable(head.net)
    except ValueError:
        return {}
    networks = {}
    for engine in engines:
        prepared = prepare_ptq(head.net, engine, 256)
        calibrate(prepared, [torch.rand(1, 3, 256, 256) for _ in range(2)])
        networks[engine] = ProbabilityHead(convert(prepared, engine)).eval()
    return networks


def runtimes(head: ProbabilityHead, name: str, size: int, int8: dict[str, torch.nn.Module], folder: Path,
             threads: int, compile_model: bool) -> dict[str, Callable[[], Callable[[], object]]]:
    """Builders of the runtimes to time for one model and size (batch 1): each returns a
    zero-argument callable (building is deferred: an export or compilation can take longer
    than the budget, and a large ONNX Runtime session holds gigabytes)."""
    image = torch.rand(1, 3, size, size)
    array = image.numpy()
    candidates: dict[str, Callable[[], Callable[[], object]]] = {
        "torch eager": lambda: within(torch.no_grad, lambda: head(image)),
        "torch inference_mode": lambda: within(torch.inference_mode, lambda: head(image)),
    }
    if compile_model:
        def compiled_runner() -> Callable[[], object]:
            import torch._inductor.config as inductor_config

            inductor_config.freezing = True  # constant-fold the weights: what makes CPU inference fast
            compiled = torch.compile(head)
            return within(torch.inference_mode, lambda: compiled(image))

        candidates["torch.compile (inductor, frozen)"] = compiled_runner

    # a graph with dynamic height and width is exported once (at 256) and reused at every size:
    # tracing U²Net at 2048 px takes minutes and gigabytes; fixed-size graphs are exported per size
    export_size = 256 if has_dynamic_size(head) else size

    def onnx_runner(model: torch.nn.Module, stem: str, engine: str | None = None) -> Callable[[], object]:
        path = folder / f"{stem}.{export_size}.onnx"
        if not path.exists():
            with quantized_engine(engine) if engine else contextlib.nullcontext(), quiet_quantization():
                export_onnx(model, path, export_size)
        session = ort_session(path, threads)
        return lambda: session.run(None, {INPUT_NAME: array})

    candidates[REFERENCE] = lambda: onnx_runner(head, name)
    for engine, network in int8.items():
        candidates[f"ONNX Runtime int8 QDQ ({engine})"] = (
            lambda engine=engine, network=network: onnx_runner(network, f"{name}.{engine}", engine))
    if torch.cuda.is_available():
        def cuda_runner() -> Callable[[], object]:
            on_gpu, gpu_image = copy.deepcopy(head).cuda(), image.cuda()

            def run() -> object:
                with torch.inference_mode():
                    output = on_gpu(gpu_image)
                torch.cuda.synchronize()
                return output

            return run

        candidates[f"torch CUDA ({torch.cuda.get_device_name(0)})"] = cuda_runner
    return candidates


Table = dict[tuple[str, str], dict[int, float | None]]


def read_cells(csv_path: Path) -> Table:
    """The cells of an earlier run's CSV (none if absent)."""
    import csv

    cells: Table = {}
    if csv_path.exists():
        with open(csv_path, newline="") as file:
            for row in csv.DictReader(file):
                seconds = float(row["seconds_per_image"]) if row["seconds_per_image"] else None
                cells.setdefault((row["model"], row["runtime"]), {})[int(row["size"])] = seconds
    return cells


def with_earlier_cells(table: Table, earlier: Table) -> tuple[Table, int]:
    """The table plus the earlier cells it lacks, rows by model name; and how many were added."""
    merged = {key: dict(cells) for key, cells in table.items()}
    kept = 0
    for key, cells in earlier.items():
        row = merged.setdefault(key, {})
        for size, seconds in cells.items():
            if size not in row:
                row[size] = seconds
                kept += 1
    order = {name: index for index, name in enumerate(sorted(MODELS))}
    rows = sorted(merged.items(), key=lambda item: order.get(item[0][0], len(order)))  # stable: runtimes keep order
    return dict(rows), kept


class PeakMemory:
    """Samples this process's RSS every 20 ms in a thread; `.added` is the peak over the RSS at entry (bytes)."""

    def __enter__(self) -> PeakMemory:
        self.process = psutil.Process()
        self.start = self.peak = self.process.memory_info().rss
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *exc_info) -> None:
        self.done.set()
        self.thread.join()
        self.added = max(self.peak, self.process.memory_info().rss) - self.start


def timed_alone(runtime: str, build: Callable[[], Callable[[], object]], runs: int) -> tuple[float, int]:
    """Median seconds of one runtime built (exported, compiled) and timed on its own, and the peak
    memory it added in doing so (bytes of RSS)."""
    with PeakMemory() as memory:
        run = build()
        seconds = interleaved_medians({runtime: run}, runs, warmup=1)[runtime]
        del run
    gc.collect()
    return seconds, memory.added


def markdown(table: dict[tuple[str, str], dict[int, float | None]], sizes: list[int], header: str,
             budget: float) -> str:
    """Rows model x runtime, one column per size; empty cells are over the budget."""
    lines = [header, "", "| model | runtime | " + " | ".join(str(size) for size in sizes) + " |",
             "|---|---|" + "---:|" * len(sizes)]
    for (name, runtime), cells in table.items():
        values = [f"{cells[size]:.4f}" if cells.get(size) is not None else "" for size in sizes]
        lines.append(f"| {name} | {runtime} | " + " | ".join(values) + " |")
    lines += ["", f"Seconds per image. Empty cells: not run, because over the {budget:g} s budget (measured, or "
              "predicted from the previous size: time grows with the square of the side) or predicted to need more "
              "memory than the machine had free (likewise from the memory the runtime added at the previous size), "
              "or the runtime failed (the run's log says why)."]
    return "\n".join(lines)


@user_command
def main(argv: list[str]) -> None:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=sorted(MODELS), choices=sorted(MODELS))
    parser.add_argument("--sizes", nargs="+", type=at_least(32))
    parser.add_argument("--runs", type=at_least(1), help="timed rounds (default %(default)s)")
    parser.add_argument("--budget", type=positive_float,
                        help="seconds per image above which a runtime stops at larger sizes (default %(default)s)")
    parser.add_argument("--sequential-from", type=at_least(32),
                        help="from this size on, time the runtimes one after another (memory), not interleaved")
    parser.add_argument("--threads", type=thread_count, default=default_threads(),
                        help="torch and ONNX Runtime threads (default: the physical cores available)")
    parser.add_argument("--engines", nargs="*", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow to build)")
    add_output_options(parser, Path("results"))
    parser.add_argument("--fresh", action="store_true",
                        help="with --overwrite: drop the cells of earlier runs in --out")
    add_debug_option(parser)
    set_command_defaults(parser, "bench", "inference")
    args = parser.parse_args(argv)
    check_tables(args.out, ["inference_time"], args.overwrite)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    console = Console(width=160)
    sizes = sorted(set(args.sizes))

    earlier = {} if args.fresh else read_cells(args.out / "inference_time.csv")
    versions = f"torch {torch.__version__}, onnxruntime {ort.__version__}"

    def save(table: Table) -> str:
        """Writes the table so far (with the earlier run's other cells): a crash loses only the current size."""
        merged, kept = with_earlier_cells(table, earlier)
        header = (f"Inference seconds per image (batch 1), {cpu_info().describe()}, {args.threads} threads, {versions}; "
                  f"median of {args.runs} rounds after a warm-up"
                  + (f"; {kept} cells kept from an earlier run in {args.out}" if kept else ""))
        text = markdown(merged, sorted({size for cells in merged.values() for size in cells}), header, args.budget)
        rows = [(name, runtime, size, "" if seconds is None else seconds)
                for (name, runtime), cells in merged.items() for size, seconds in sorted(cells.items())]
        save_table(args.out, "inference_time", text, ["model", "runtime", "size", "seconds_per_image"], rows)
        return text

    table: Table = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            torch.manual_seed(0)
            head = ProbabilityHead(create_model(name)).eval()
            int8 = int8_networks(head, args.engines)
            skipped: dict[str, str] = {}  # runtime -> why it no longer runs
            previous: dict[str, tuple[int, float, int | None]] = {}  # runtime -> (size, seconds, bytes added)
            for size in sizes:
                free = psutil.virtual_memory().available
                for runtime, (smaller, seconds, grown) in previous.items():
                    growth = (size / smaller) ** 2
                    if seconds * growth > args.budget:
                        skipped[runtime] = "time"
                    elif grown is not None and grown * growth > 0.9 * free:
                        skipped[runtime] = "memory"
                builders = runtimes(head, name, size, int8, Path(folder), args.threads, not args.no_compile)
                builders = {runtime: build for runtime, build in builders.items() if runtime not in skipped}
                measured: dict[str, tuple[float, int | None]] = {}
                if size < args.sequential_from:
                    built = {}
                    for runtime, build in builders.items():
                        try:
                            built[runtime] = build()
                        except Exception as error:  # one runtime failing (a compiler, an exporter) is a finding
                            console.print(f"{name}@{size} {runtime} failed: {error!r}", markup=False)
                            skipped[runtime] = "failed"
                    measured = {runtime: (seconds, None)
                                for runtime, seconds in interleaved_medians(built, args.runs, warmup=1).items()}
                else:  # one runtime alive at a time: four sessions at 1728 px need more than 24 GiB
                    for runtime, build in builders.items():
                        try:
                            measured[runtime] = timed_alone(runtime, build, args.runs)
                        except Exception as error:
                            console.print(f"{name}@{size} {runtime} failed: {error!r}", markup=False)
                            skipped[runtime] = "failed"
                for runtime in [*measured, *skipped]:
                    table.setdefault((name, runtime), {})[size] = measured[runtime][0] if runtime in measured else None
                previous = {runtime: (size, seconds, grown) for runtime, (seconds, grown) in measured.items()}
                reasons = f" (not run: {', '.join(f'{k} [{v}]' for k, v in sorted(skipped.items()))})" if skipped else ""
                console.print(f"{name}@{size}: " + ", ".join(f"{k} {v[0]:.4f}s" for k, v in measured.items())
                              + reasons, markup=False)
                save(table)
                if not measured:
                    break

    console.print(save(table), markup=False)


if __name__ == "__main__":
    main()
