"""What this machine offers, and the defaults chosen from it: precision, threads, loader workers.

Every default that depends on the hardware is decided here, from what the process can
see (CPU flags, its CPU affinity and cgroup quota, CUDA), and each decision carries the
reason it was made, so that a run can say why it trains in bf16 or fp32.

This module imports no torch at import time (`Session` uses it in deployments without
torch); the CUDA queries import torch when they are asked.
"""

from __future__ import annotations

import functools
import math
import os
import platform
from dataclasses import dataclass
from pathlib import Path

AUTO = "auto"

# Instruction-set features that decide the speed of training and inference on a CPU,
# as (label, the /proc/cpuinfo flags that provide it).
CPU_FEATURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("AVX2", ("avx2",)),
    ("AVX-512", ("avx512f",)),
    ("VNNI", ("avx512_vnni", "avx_vnni")),
    ("AVX512-BF16", ("avx512_bf16",)),
    ("AMX-BF16", ("amx_bf16",)),
)
# Flags that mean bf16 matrix arithmetic in hardware; without them torch emulates bf16
# through fp32 and bf16 autocast is several times slower (0.12x fp32 on an AMD Zen 3).
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@dataclass(frozen=True)
class CpuInfo:
    """The processor as /proc/cpuinfo describes it.

    Attributes:
        name: the model name, e.g. "AMD EPYC 7B13" (with family/model where the name
            is generic, e.g. "AMD EPYC (family 25, model 17)").
        flags: instruction-set flags (x86 "flags", ARM "Features"), lower case.
    """

    name: str
    flags: frozenset[str]

    @property
    def native_bf16(self) -> str | None:
        """The label of the first native-bf16 feature present (e.g. "AMX-BF16"), else None."""
        for flag in NATIVE_BF16_FLAGS:
            if flag in self.flags:
                return next(label for label, flags in CPU_FEATURES if flag in flags)
        return None

    def features(self) -> dict[str, bool]:
        """Each feature of `CPU_FEATURES` -> present."""
        return {label: any(flag in self.flags for flag in flags) for label, flags in CPU_FEATURES}

    def describe(self) -> str:
        """One line for table headers: the name and the features present, e.g. "AMD EPYC (AVX2, AVX-512)"."""
        present = [label for label, found in self.features().items() if found]
        return f"{self.name} ({', '.join(present) if present else 'no AVX2'})"


def parse_cpuinfo(text: str) -> CpuInfo:
    """Reads the first processor's name and flags from /proc/cpuinfo's text."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor's block is enough
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    name = fields.get("model name") or fields.get("hardware") or platform.processor() or platform.machine()
    if name.split()[-1].isalpha() and "cpu family" in fields and "model" in fields:
        name = f"{name} (family {fields['cpu family']}, model {fields['model']})"  # e.g. a bare "AMD EPYC"
    flags = fields.get("flags") or fields.get("features") or ""
    return CpuInfo(name=name, flags=frozenset(flags.lower().split()))


@functools.cache
def cpu_info() -> CpuInfo:
    """This machine's processor (Linux /proc/cpuinfo; elsewhere the name only, no flags)."""
    try:
        return parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:
        return CpuInfo(name=platform.processor() or platform.machine(), flags=frozenset())


def cpu_name() -> str:
    """The processor's model name, for table headers."""
    return cpu_info().name


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPUs this process's cgroup may use (quota / period), or None when unlimited.

    Reads cgroup v2 `cpu.max` ("max 100000" or "200000 100000"), else cgroup v1
    `cpu.cfs_quota_us` / `cpu.cfs_period_us` (quota -1: unlimited).
    """
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us


def physical_cores(cpus: set[int] | None = None, sys_cpu: Path = Path("/sys/devices/system/cpu")) -> int:
    """The physical cores among `cpus` (default: this process's CPU affinity).

    Hyper-threads of one core count once (by package and core id from sysfs); where sysfs
    has no topology, each logical CPU counts as a core.
    """
    if cpus is None:
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    cores = set()
    for cpu in cpus:
        topology = sys_cpu / f"cpu{cpu}" / "topology"
        try:
            cores.add(((topology / "physical_package_id").read_text().strip(),
                       (topology / "core_id").read_text().strip()))
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))


@functools.cache
def default_threads() -> int:
    """Intra-op threads for torch and ONNX Runtime: the physical cores this process may use.

    The smaller of the physical cores in the CPU affinity mask and the cgroup CPU quota
    (rounded up): in a container limited to 2 CPUs of a 64-core host, 2, where OpenMP and
    ONNX Runtime on their own would start 64 threads. `SKINSEG_THREADS` overrides it.
    """
    if os.environ.get("SKINSEG_THREADS"):
        return max(1, int(os.environ["SKINSEG_THREADS"]))
    cores = physical_cores()
    limit = cgroup_cpu_limit()
    return max(1, min(cores, math.ceil(limit))) if limit else cores


def default_loader_workers(cores: int | None = None) -> int:
    """DataLoader worker processes that keep training fed without taking its cores.

    Decoding, resizing and flipping a training image costs a few percent of what a training
    step spends on it (`python -m skinseg.bench.train`: the loader alone runs 14-150x faster
    than training). On 2 cores a worker process only competes with the two training threads:
    DLMV at 256 px, the fastest model, trained at 13.1 images/s loading in the main process
    and 11.6 with 1 or 2 workers (docs/speed.md), so 0 there. With more cores a
    worker has a core of its own: 1 below 8 cores, 2 from 8 on, so that a slow file (a large
    PNG) does not stall a step.
    """
    cores = cores or default_threads()
    if cores <= 2:
        return 0
    return 1 if cores < 8 else 2


@dataclass(frozen=True)
class PrecisionChoice:
    """A resolved training precision (a Lightning name) and why it was chosen."""

    precision: str
    reason: str

    def __str__(self) -> str:
        return f"{self.precision}: {self.reason}"


def cuda_bf16_supported() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_precision(
    requested: str | int | None,
    accelerator: str = "cpu",
    *,
    fp32_reason: str | None = None,
    cpu: CpuInfo | None = None,
    cuda: bool | None = None,
    cuda_bf16: bool | None = None,
) -> PrecisionChoice:
    """Turns `trainer.precision` ("auto" or a Lightning value) into a Lightning precision.

    "auto" (or None) becomes:
    - `fp32_reason` given (e.g. quantization-aware training): "32-true";
    - CUDA: "bf16-mixed" where the GPU supports bf16, else "16-mixed";
    - CPU: "bf16-mixed" where the CPU has native bf16 (AMX-BF16 or AVX512-BF16 flags),
      else "32-true": without them bf16 autocast is emulated and several times slower;
    - another accelerator (MPS, TPU...): "32-true".
    Any other value is returned as it is: an explicit setting always wins.

    Args:
        requested: the configured precision.
        accelerator: the trainer's accelerator ("cpu", "gpu", "cuda", "auto", "mps"...).
        fp32_reason: why this run must train in fp32, if it must.
        cpu, cuda, cuda_bf16: the hardware (default: this machine's); tests fake them.
    """
    if requested is not None and str(requested) != AUTO:
        return PrecisionChoice(str(requested), "set explicitly")
    if fp32_reason:
        return PrecisionChoice("32-true", fp32_reason)
    accelerator = str(accelerator).lower()
    if accelerator == AUTO:
        accelerator = "cuda" if (cuda_available() if cuda is None else cuda) else "cpu"
    if accelerator in ("gpu", "cuda"):
        if cuda_bf16_supported() if cuda_bf16 is None else cuda_bf16:
            return PrecisionChoice("bf16-mixed", "this GPU supports bf16")
        return PrecisionChoice("16-mixed", "this GPU has no bf16 (pre-Ampere)")
    if accelerator != "cpu":
        return PrecisionChoice("32-true", f"no mixed-precision default for accelerator {accelerator!r}")
    cpu = cpu or cpu_info()
    native = cpu.native_bf16
    if native:
        return PrecisionChoice("bf16-mixed", f"{native} present")
    return PrecisionChoice("32-true", "no native bf16 on this CPU (bf16 would be emulated, several times slower)")


def autocast_dtype(device_type: str, cpu: CpuInfo | None = None, cuda_bf16: bool | None = None) -> str:
    """The low precision worth autocasting to on a device: "bf16", "fp16" or "fp32" (none).

    The same rule as `resolve_precision`, for one part of a model placed on `device_type`.
    """
    if device_type == "cuda":
        return "bf16" if (cuda_bf16_supported() if cuda_bf16 is None else cuda_bf16) else "fp16"
    if device_type == "cpu":
        return "bf16" if (cpu or cpu_info()).native_bf16 else "fp32"
    return "fp32"
