"""BiRefNet_lite time and memory: `python -m skinseg.bench.birefnet [--sizes 512 1024] [--train-size 512]`.

Full-size model (44.3M parameters, random weights). Rows:
- forward: eval mode, batch 1, `inference_mode`, PyTorch fp32 and bf16 autocast, and
  ONNX Runtime fp32 (the graph exported at that size beforehand, in its own process);
- train: one optimisation step (Adam, BiRefNetLoss, batch 2, since the ASPP pooling branch
  needs two images) in fp32 and bf16 autocast, with and without activation checkpointing;
- with CUDA: a training step and a forward pass at the GPU sizes, unsplit on cuda:0 and
  split (backbone on cuda:0, decoder on the CPU), with their peak GPU memory.

Each row runs in a fresh process, so that its peak resident memory (ru_maxrss: libraries,
weights, activations, allocator caches) is its own; "of which running" is the rise of that
peak from the process with its model and inputs built to the end of the runs; seconds are the median of `--runs` after one
warm-up. Ratios compare each row with its baseline: PyTorch fp32 at the same size for
forward rows, the fp32 step without checkpointing for training rows, unsplit for GPU rows.
The table, with the machine in its header, is printed and written to `results/`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import resource
import statistics
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from rich.console import Console

from skinseg.bench import add_output_options, check_tables, save_table
from skinseg.errors import ArgumentParser, add_debug_option, at_least, thread_count, user_command
from skinseg.hardware import cpu_info, default_threads
from skinseg.settings import set_command_defaults


@dataclass(frozen=True)
class Case:
    """One row: what runs, at which size, how."""

    task: str  # "forward", "onnx" or "train"
    size: int
    precision: str = "fp32"  # "fp32" or "bf16" (autocast)
    checkpointing: bool = False
    device: str = "cpu"  # the backbone's device; the decoder's too unless split
    split: bool = False  # decoder on the CPU

    @property
    def label(self) -> str:
        runtime = "ONNX Runtime" if self.task == "onnx" else "PyTorch"
        where = f"{self.device} + cpu decoder" if self.split else self.device
        extras = " + checkpointing" if self.checkpointing else ""
        return f"{'train step' if self.task == 'train' else 'forward'} {runtime} {self.precision} {where}{extras}"

    @property
    def baseline(self) -> Case:
        task = "train" if self.task == "train" else "forward"
        return Case(task, self.size, "fp32", False, self.device, False)


def build(case: Case) -> torch.nn.Module:
    from skinseg.models import create_model

    device_map = {"backbone": case.device, "decoder": "cpu"} if case.split else None
    model = create_model("birefnet_lite", device_map=device_map, activation_checkpointing=case.checkpointing)
    return model.to(case.device).place() if device_map else model.to(case.device)


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def measure(case: Case, runs: int, threads: int, onnx_path: str | None) -> dict:
    """Runs one case (in its own process): median seconds, peak RSS, peak GPU memory."""
    torch.set_num_threads(threads)
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    cuda = case.device.startswith("cuda")
    autocast = torch.autocast(case.device.split(":")[0], dtype=torch.bfloat16, enabled=case.precision == "bf16")
    if case.task == "onnx":
        import numpy as np
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
        images = np.random.rand(1, 3, case.size, case.size).astype(np.float32)

        def step() -> None:
            session.run(None, {session.get_inputs()[0].name: images})

    elif case.task == "forward":
        model = build(case).eval()
        images = torch.rand(1, 3, case.size, case.size, device=case.device)

        def step() -> None:
            with torch.inference_mode(), autocast:
                model(images)

    else:
        from skinseg.losses import BiRefNetLoss

        model = build(case).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=5e-5)
        loss_fn = BiRefNetLoss()
        images = torch.rand(2, 3, case.size, case.size, device=case.device)
        masks = (torch.rand(2, 1, case.size, case.size, device=case.device) > 0.5).float()

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                outputs = model(images)
            loss_fn(outputs, masks).backward()
            optimizer.step()

    before_running = peak_rss_bytes()  # the process with its model (or session) built and its inputs

    def timed() -> float:
        start = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    timed()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    seconds = [timed() for _ in range(runs)]
    return {
        "seconds": statistics.median(seconds),
        "peak_rss": peak_rss_bytes(),
        "built_rss": before_running,
        "peak_gpu": torch.cuda.max_memory_allocated() if cuda else None,
    }


def export(size: int, path: str) -> None:
    """Writes the fp32 ONNX graph of a random-weight BiRefNet_lite at `size` (in its own process)."""
    from skinseg.export.onnx import export_onnx
    from skinseg.models import create_model
    from skinseg.models.head import ProbabilityHead

    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    export_onnx(ProbabilityHead(create_model("birefnet_lite")), path, size)


def in_fresh_process(function, *args):
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, *args).result()


def cases(sizes: list[int], train_size: int | None, precisions: list[str], onnx: bool,
          gpu_sizes: list[int]) -> list[Case]:
    rows = []
    for size in sizes:
        rows += [Case("forward", size, precision) for precision in precisions]
        rows += [Case("onnx", size)] if onnx else []
    if train_size:
        rows += [Case("train", train_size, precision, checkpointing)
                 for precision in precisions for checkpointing in (False, True)]
    if torch.cuda.is_available():
        for size in gpu_sizes:
            for task in ("forward", "train"):
                rows += [Case(task, size, "fp32", False, "cuda:0", split) for split in (False, True)]
    return rows


def gib(value: float | None) -> str:
    return "" if value is None else f"{value / 2**30:.2f}"


def markdown(results: list[tuple[Case, dict]], header: str) -> str:
    lines = [header, "", "| row | size | s | vs baseline | peak RSS GiB | vs baseline | of which running GiB | "
             "peak GPU GiB | vs baseline |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    measured = dict(results)
    for case, result in results:
        base = measured.get(case.baseline, result)
        gpu_ratio = f"{result['peak_gpu'] / base['peak_gpu']:.2f}" if result["peak_gpu"] and base["peak_gpu"] else ""
        lines.append(
            f"| {case.label} | {case.size} | {result['seconds']:.3f} | {result['seconds'] / base['seconds']:.2f} | "
            f"{gib(result['peak_rss'])} | {result['peak_rss'] / base['peak_rss']:.2f} | "
            f"{gib(result['peak_rss'] - result['built_rss'])} | {gib(result['peak_gpu'])} | "
            f"{gpu_ratio} |"
        )
    return "\n".join(lines)


@user_command
def main(argv: list[str]) -> None:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=at_least(32), help="forward sizes")
    parser.add_argument("--train-size", type=at_least(0), help="training-step size (0: none)")
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"])
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime rows")
    parser.add_argument("--gpu-sizes", nargs="*", type=at_least(32), help="sizes of the CUDA rows")
    parser.add_argument("--runs", type=at_least(1), help="timed runs per row after one warm-up")
    parser.add_argument("--threads", type=thread_count, default=default_threads(),
                        help="torch and ONNX Runtime threads (default: the physical cores available)")
    add_output_options(parser, Path("results"))
    add_debug_option(parser)
    set_command_defaults(parser, "bench", "birefnet")
    args = parser.parse_args(argv)
    check_tables(args.out, ["birefnet_memory"], args.overwrite)
    console = Console(width=160)
    if "fp32" not in args.precisions:
        parser.error("--precisions must include fp32, the baseline")

    results: list[tuple[Case, dict]] = []
    with tempfile.TemporaryDirectory() as folder:
        for case in cases(args.sizes, args.train_size, args.precisions, not args.no_onnx, args.gpu_sizes):
            onnx_path = None
            if case.task == "onnx":
                onnx_path = str(Path(folder) / f"birefnet_lite_{case.size}.onnx")
                in_fresh_process(export, case.size, onnx_path)
            result = in_fresh_process(measure, case, args.runs, args.threads, onnx_path)
            results.append((case, result))
            console.print(f"{case.label} @{case.size}: {result['seconds']:.3f} s, peak RSS {gib(result['peak_rss'])} GiB"
                          + (f", peak GPU {gib(result['peak_gpu'])} GiB" if result["peak_gpu"] else ""))

    header = (f"BiRefNet_lite (44,313,720 parameters, random weights), {cpu_info().describe()}, {args.threads} threads, "
              f"torch {torch.__version__}"
              + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU")
              + f"; median of {args.runs} runs after a warm-up, each row in a fresh process; forward batch 1, "
              "train step batch 2 (Adam, BiRefNetLoss)")
    text = markdown(results, header)
    console.print(text, markup=False)
    save_table(args.out, "birefnet_memory", text,
               [*Case.__dataclass_fields__, "seconds", "peak_rss_bytes", "built_rss_bytes", "peak_gpu_bytes"],
               ([*asdict(case).values(), r["seconds"], r["peak_rss"], r["built_rss"], r["peak_gpu"]]
                for case, r in results))


if __name__ == "__main__":
    main()
