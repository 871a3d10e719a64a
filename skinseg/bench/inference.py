"""Inference speed per runtime: `python -m skinseg.bench.inference [--models u2netp dlmv] [--sizes ...]`.

For each model and input size, seconds per image (batch 1) of: torch eager (no_grad),
torch `inference_mode`, `torch.compile` (inductor, weights frozen), ONNX Runtime fp32 and
ONNX Runtime int8 (QDQ, one row per quantization engine). The runtimes are timed in
interleaved rounds (one run of each per round, after warm-up), so that a noisy, shared
machine slows them alike; the table gives the median over rounds and each row's ratio
to ONNX Runtime fp32. Random weights: speed does not depend on the values (int8 scales
are calibrated on random images; accuracy is what `export.py --quantize` measures).
The table, with the machine in its header, is printed and written to `results/` as
Markdown and CSV.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from rich.console import Console

from skinseg.bench import save_table
from skinseg.bench.train import cpu_name
from skinseg.export.onnx import INPUT_NAME, export_onnx
from skinseg.models import create_model
from skinseg.models.head import ProbabilityHead
from skinseg.quant.fx import ENGINES, calibrate, convert, prepare_ptq, quantized_engine, quiet_quantization

DEFAULT_SIZES = {"u2netp": 512, "u2net": 1024, "dlmv": 256}
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


def runtimes(name: str, size: int, engines: list[str], folder: Path, threads: int,
             compile_model: bool) -> dict[str, Callable[[], object]]:
    """The runtimes to time for one model and size, as zero-argument callables (batch 1)."""
    torch.manual_seed(0)
    head = ProbabilityHead(create_model(name)).eval()
    image = torch.rand(1, 3, size, size)
    array = image.numpy()
    runners: dict[str, Callable[[], object]] = {
        "torch eager": within(torch.no_grad, lambda: head(image)),
        "torch inference_mode": within(torch.inference_mode, lambda: head(image)),
    }
    if compile_model:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True  # constant-fold the weights: what makes CPU inference fast
        compiled = torch.compile(head)
        runners["torch.compile (inductor, frozen)"] = within(torch.inference_mode, lambda: compiled(image))
    fp32 = ort_session(export_onnx(head, folder / f"{name}.onnx", size), threads)
    runners[REFERENCE] = lambda: fp32.run(None, {INPUT_NAME: array})
    for engine in engines:
        prepared = prepare_ptq(head.net, engine, size)
        calibrate(prepared, [torch.rand(1, 3, size, size) for _ in range(2)])
        int8 = ProbabilityHead(convert(prepared, engine))
        with quantized_engine(engine), quiet_quantization():
            path = export_onnx(int8, folder / f"{name}.{engine}.int8.onnx", size)
        session = ort_session(path, threads)
        runners[f"ONNX Runtime int8 QDQ ({engine})"] = lambda session=session: session.run(None, {INPUT_NAME: array})
    return runners


def markdown(table: list[tuple[str, int, str, float]], header: str) -> str:
    lines = [header, "", "| model | size | runtime | s / image | vs ONNX Runtime fp32 |", "|---|---:|---|---:|---:|"]
    for name, size, runtime, seconds in table:
        reference = next(s for n, z, r, s in table if n == name and z == size and r == REFERENCE)
        lines.append(f"| {name} | {size} | {runtime} | {seconds:.4f} | {seconds / reference:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["u2netp", "dlmv"], choices=sorted(DEFAULT_SIZES))
    parser.add_argument("--sizes", nargs="+", type=int, help="default: 512 for u2netp, 1024 u2net, 256 dlmv")
    parser.add_argument("--runs", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--engines", nargs="*", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow to build)")
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    console = Console(width=160)

    table: list[tuple[str, int, str, float]] = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            for size in args.sizes or [DEFAULT_SIZES[name]]:
                runners = runtimes(name, size, args.engines, Path(folder), args.threads, not args.no_compile)
                medians = interleaved_medians(runners, args.runs)
                table += [(name, size, runtime, seconds) for runtime, seconds in medians.items()]
                console.print(f"{name}@{size}: " + ", ".join(f"{k} {v:.4f}s" for k, v in medians.items()))

    header = (f"Inference seconds per image (batch 1), {cpu_name()}, {args.threads} threads, torch {torch.__version__}, "
              f"onnxruntime {ort.__version__}; median of {args.runs} interleaved rounds after warm-up")
    text = markdown(table, header)
    console.print(text, markup=False)
    save_table(args.out, "inference_speed", text, ["model", "size", "runtime", "seconds_per_image"], table)


if __name__ == "__main__":
    main()
