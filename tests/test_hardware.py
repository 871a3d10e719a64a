"""Defaults chosen from the hardware: CPU flags, precision, threads, loader workers, the shipped model's runtime.

The machine is faked (CPU flags, CUDA, cgroup files, sysfs topology, timings), so these tests
check the rules on every CPU and never depend on how fast bf16 or int8 runs here.
"""

from __future__ import annotations

import json
import logging

import pytest
import torch

from skinseg import hardware
from skinseg.hardware import (
    CpuInfo,
    autocast_dtype,
    cgroup_cpu_limit,
    default_loader_workers,
    parse_cpuinfo,
    physical_cores,
    resolve_precision,
)

from .conftest import exit_2_message

ZEN3 = CpuInfo("AMD EPYC 7B13", frozenset({"sse4_2", "avx", "avx2", "fma"}))
ZEN4 = CpuInfo("AMD EPYC 9B14", frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}))
SAPPHIRE_RAPIDS = CpuInfo("Intel Xeon Platinum 8481C", frozenset({"avx2", "avx512f", "avx512_vnni", "amx_tile",
                                                                   "amx_bf16", "amx_int8"}))
SKYLAKE = CpuInfo("Intel Xeon Gold 6148", frozenset({"avx2", "avx512f"}))  # AVX-512 without bf16

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
flags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni

processor\t: 1
model name\t: another name that must not be read
"""


def test_cpuinfo_is_parsed_from_the_first_processor():
    cpu = parse_cpuinfo(CPUINFO)
    assert cpu.name == "AMD EPYC (family 25, model 17)"  # a generic name gets family and model
    assert {"avx2", "avx512_bf16"} <= cpu.flags and cpu.native_bf16 == "AVX512-BF16"
    assert cpu.features() == {"AVX2": True, "AVX-512": True, "VNNI": True, "AVX512-BF16": True, "AMX-BF16": False}
    assert cpu.describe() == "AMD EPYC (family 25, model 17) (AVX2, AVX-512, VNNI, AVX512-BF16)"
    named = parse_cpuinfo("model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz\ncpu family\t: 6\n"
                          "model\t\t: 143\nflags\t\t: avx2 amx_bf16\n")
    assert named.name == "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz" and named.native_bf16 == "AMX-BF16"
    arm = parse_cpuinfo("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert "bf16" in arm.flags and arm.native_bf16 is None  # ARM bf16 is not trusted to be faster


@pytest.mark.parametrize(("cpu", "expected", "reason"), [
    (ZEN3, "32-true", "no native bf16"),
    (SKYLAKE, "32-true", "no native bf16"),
    (ZEN4, "bf16-mixed", "AVX512-BF16 present"),
    (SAPPHIRE_RAPIDS, "bf16-mixed", "AMX-BF16 present"),
])
def test_auto_precision_on_a_cpu_follows_native_bf16(cpu, expected, reason):
    choice = resolve_precision("auto", "cpu", cpu=cpu)
    assert choice.precision == expected and reason in choice.reason
    assert str(choice).startswith(f"{expected}: ")
    assert resolve_precision(None, "cpu", cpu=cpu).precision == expected  # unset is auto


@pytest.mark.parametrize("accelerator", ["gpu", "cuda"])
def test_auto_precision_on_cuda_follows_bf16_support(accelerator):
    assert resolve_precision("auto", accelerator, cuda_bf16=True).precision == "bf16-mixed"
    older = resolve_precision("auto", accelerator, cuda_bf16=False)
    assert older.precision == "16-mixed" and "no bf16" in older.reason


def test_auto_accelerator_uses_cuda_only_where_there_is_one():
    assert resolve_precision("auto", "auto", cuda=True, cuda_bf16=True).precision == "bf16-mixed"
    assert resolve_precision("auto", "auto", cuda=False, cpu=ZEN3).precision == "32-true"
    assert resolve_precision("auto", "auto", cuda=False, cpu=ZEN4).precision == "bf16-mixed"
    assert resolve_precision("auto", "mps").precision == "32-true"


@pytest.mark.parametrize("explicit", ["32-true", "bf16-mixed", "16-mixed", 32])
def test_an_explicit_precision_always_wins(explicit):
    for cpu in (ZEN3, ZEN4):
        choice = resolve_precision(explicit, "cpu", cpu=cpu, fp32_reason="QAT")
        assert choice.precision == str(explicit) and choice.reason == "set explicitly"
    assert resolve_precision(explicit, "gpu", cuda_bf16=False).precision == str(explicit)


def test_a_run_that_needs_fp32_gets_it_from_auto():
    choice = resolve_precision("auto", "cpu", cpu=ZEN4, fp32_reason="quantization-aware training")
    assert choice.precision == "32-true" and choice.reason == "quantization-aware training"


def test_autocast_dtype_per_device():
    assert autocast_dtype("cpu", cpu=ZEN3) == "fp32" and autocast_dtype("cpu", cpu=SAPPHIRE_RAPIDS) == "bf16"
    assert autocast_dtype("cuda", cuda_bf16=True) == "bf16" and autocast_dtype("cuda", cuda_bf16=False) == "fp16"
    assert autocast_dtype("mps") == "fp32"


def test_cgroup_quota_v2_and_v1(tmp_path):
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(v2) is None
    (v2 / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_limit(v2) == 1.5
    v1 = tmp_path / "v1" / "cpu"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(v1.parent) is None
    (v1 / "cpu.cfs_quota_us").write_text("400000\n")
    assert cgroup_cpu_limit(v1.parent) == 4.0
    assert cgroup_cpu_limit(tmp_path / "none") is None


def test_hyperthreads_count_once(tmp_path):
    # 4 logical CPUs: 0 and 2 share core 0, 1 and 3 share core 1; cpu 9 has no topology
    for cpu, core in ((0, 0), (1, 1), (2, 0), (3, 1)):
        topology = tmp_path / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "physical_package_id").write_text("0\n")
        (topology / "core_id").write_text(f"{core}\n")
    assert physical_cores({0, 1, 2, 3}, tmp_path) == 2
    assert physical_cores({0, 2}, tmp_path) == 1  # affinity to one core's two threads
    assert physical_cores({0, 1, 9}, tmp_path) == 3


def test_default_threads_take_the_smaller_of_cores_and_quota(monkeypatch):
    hardware.default_threads.cache_clear()
    monkeypatch.delenv("SKINSEG_THREADS", raising=False)
    monkeypatch.setattr(hardware, "physical_cores", lambda: 64)
    monkeypatch.setattr(hardware, "cgroup_cpu_limit", lambda: 1.5)
    try:
        assert hardware.default_threads() == 2  # a 1.5-CPU quota on a 64-core host
        hardware.default_threads.cache_clear()
        monkeypatch.setattr(hardware, "cgroup_cpu_limit", lambda: None)
        assert hardware.default_threads() == 64
        hardware.default_threads.cache_clear()
        monkeypatch.setenv("SKINSEG_THREADS", "3")
        assert hardware.default_threads() == 3
    finally:
        hardware.default_threads.cache_clear()


def test_loader_workers_by_cores():
    assert default_loader_workers(1) == 0 and default_loader_workers(2) == 0
    assert default_loader_workers(4) == 1 and default_loader_workers(16) == 2


def test_train_resolves_auto_and_says_why(cfg_factory, monkeypatch, caplog):
    """On a CPU without native bf16, `trainer.precision=auto` trains in fp32 and the log and summary say so."""
    from skinseg import training
    from skinseg.training import train

    monkeypatch.setattr(hardware, "cpu_info", lambda: ZEN3)
    monkeypatch.setattr(training, "cpu_info", lambda: ZEN3)
    cfg = cfg_factory(["trainer.precision=auto", "debug=fdr", "data.demo.num_train=8", "data.demo.num_val=4",
                       "model.input_size=64", "data.batch_size=4", "threads=1", "data.num_workers=auto"])
    threads = torch.get_num_threads()
    try:
        with caplog.at_level(logging.INFO, logger="skinseg.training"):
            summary = train(cfg)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert summary["precision"].startswith("32-true: no native bf16 on this CPU")
    assert summary["threads"] == "1: set explicitly"
    assert summary["loader workers"].startswith(f"{default_loader_workers()}: auto")
    assert summary["cpu"].startswith("AMD EPYC 7B13 (AVX2)")
    first_lines = [record.getMessage() for record in caplog.records][:4]
    assert "precision: 32-true: no native bf16 on this CPU" in " ".join(first_lines)


@pytest.mark.parametrize(("cpu", "overrides", "expected"), [
    (ZEN4, [], "bf16-mixed: AVX512-BF16 present"),
    (SAPPHIRE_RAPIDS, [], "bf16-mixed: AMX-BF16 present"),
    (ZEN3, [], "32-true: no native bf16"),
    (ZEN4, ["qat=x86"], "32-true: quantization-aware training"),
    (ZEN4, ["trainer.precision=16-mixed"], "16-mixed: set explicitly"),
    (ZEN3, ["trainer.precision=bf16-mixed"], "bf16-mixed: set explicitly"),
])
def test_every_config_resolves_before_the_trainer_is_built(cfg_factory, monkeypatch, cpu, overrides, expected):
    from hydra.utils import instantiate

    from skinseg.training import resolve_hardware

    monkeypatch.setattr(hardware, "cpu_info", lambda: cpu)
    cfg = cfg_factory([*(overrides or ["trainer.precision=auto"])])
    threads = torch.get_num_threads()
    try:
        decisions = resolve_hardware(cfg)
    finally:
        torch.set_num_threads(threads)
    assert decisions["precision"].startswith(expected)
    assert cfg.trainer.precision == expected.split(":")[0] and cfg.threads == hardware.default_threads()
    if cfg.trainer.precision != "16-mixed":  # 16-mixed needs a GPU
        instantiate(cfg.trainer, _convert_="all")


def test_bad_threads_and_workers_are_refused(cfg_factory):
    from skinseg.data import SkinDataModule
    from skinseg.training import resolve_hardware

    for threads in (0, 100_000):
        with pytest.raises(ValueError, match="threads must be 'auto' or 1 to"):
            resolve_hardware(cfg_factory([f"threads={threads}"]))
    with pytest.raises(ValueError, match="data.num_workers must be 'auto' or an integer >= 0"):
        SkinDataModule("unused", num_workers="many")
    assert SkinDataModule("unused", num_workers=3).num_workers == 3


def test_birefnet_auto_stage_dtypes_follow_each_device(monkeypatch):
    from skinseg.models.birefnet_lite import BiRefNetLite

    model = BiRefNetLite(embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1), decoder_channels=(16, 16, 16, 8),
                         block_channels=8, aspp_channels=8, gradient_channels=4,
                         stage_dtypes={"backbone": "auto", "decoder": "fp32"})
    cpu = torch.device("cpu")
    monkeypatch.setattr(hardware, "cpu_info", lambda: ZEN4)
    assert model.part_dtype("backbone", cpu) == torch.bfloat16
    monkeypatch.setattr(hardware, "cpu_info", lambda: ZEN3)
    assert model.part_dtype("backbone", cpu) == torch.float32
    assert model.part_dtype("decoder", cpu) == torch.float32
    with pytest.raises(ValueError, match="auto"):
        model.stage_dtypes = {"backbone": "int4"}


class FakeTimer:
    """Stands in for `time_models`: fixed seconds per model file, and a count of measurements."""

    def __init__(self, fp32: float, int8: float) -> None:
        self.seconds, self.calls = [fp32, int8], 0

    def __call__(self, paths, size, threads, rounds=3):
        self.calls += 1
        from skinseg.inference.session import shipped_card

        assert [path.name for path in paths] == ["unet_skin.onnx", "unet_skin.int8.onnx"]
        assert size == shipped_card()["input"]["size"]  # timed at the shipped model's input size
        return list(self.seconds)


@pytest.fixture
def runtime_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SKINSEG_CACHE", str(tmp_path))
    return tmp_path / "runtime_choice.json"


def test_shipped_int8_runs_where_it_is_faster_and_agrees(runtime_cache, monkeypatch):
    from skinseg.inference import session as session_module

    timer = FakeTimer(fp32=0.336, int8=0.183)  # the Zen 3 figures at 320 px
    monkeypatch.setattr(session_module, "time_models", timer)
    choice = session_module.choose_shipped_precision(threads=2)
    shipped = session_module.shipped_card()["validation_at_full_resolution"]["scores"]["int8 x86"]
    agreement = f"agrees with fp32 on {shipped['same_decision']:.1%}"
    assert choice.precision == "int8" and "1.84x" in choice.reason and agreement in choice.reason
    assert session_module.choose_shipped_precision(threads=2).precision == "int8"
    assert timer.calls == 1 and runtime_cache.is_file()  # measured once per machine, threads and files
    session_module.choose_shipped_precision(threads=1)
    assert timer.calls == 2 and len(json.loads(runtime_cache.read_text())) == 2

    session = session_module.Session(threads=2)
    assert session.description.startswith("shipped unet_skin int8 (int8 at 1.84x")


def test_shipped_fp32_runs_where_int8_is_slower(runtime_cache, monkeypatch):
    from skinseg.inference import session as session_module

    monkeypatch.setattr(session_module, "time_models", FakeTimer(fp32=0.10, int8=0.12))
    choice = session_module.choose_shipped_precision(threads=2)
    assert choice.precision == "fp32" and "int8 only 0.83x fp32's speed" in choice.reason


def test_shipped_fp32_runs_where_int8_disagrees(runtime_cache, monkeypatch):
    from skinseg.inference import session as session_module

    card = session_module.shipped_card()
    scores = card["validation_at_full_resolution"]["scores"]["int8 x86"]
    scores["same_decision"] = 0.95
    assert session_module.int8_agreement(card) == (
        False, f"int8 only agrees with fp32 on 95.0% of pixels, mean |Δp| {scores['mean_abs_diff']:.4f}, outside "
        "export's tolerance")
    monkeypatch.setattr(session_module, "shipped_card", lambda: card)
    timer = FakeTimer(fp32=1.0, int8=0.1)
    monkeypatch.setattr(session_module, "time_models", timer)
    choice = session_module.choose_shipped_precision()
    assert choice.precision == "fp32" and "outside export's tolerance" in choice.reason and timer.calls == 0
    del card["shipped"]
    assert session_module.int8_agreement(card) == (False, "the model card has no int8-vs-fp32 figures")


def test_explicit_shipped_precision(runtime_cache):
    from skinseg.inference.session import Session

    assert Session(precision="fp32").description == "shipped unet_skin fp32 (set explicitly)"
    assert Session(precision="int8").description == "shipped unet_skin int8 (set explicitly)"
    with pytest.raises(ValueError, match="precision must be one of"):
        Session(precision="fp16")
    with pytest.raises(ValueError, match="pass the .onnx file of that precision"):
        Session("model.onnx", precision="int8")


def test_time_models_measures_real_sessions():
    from skinseg.inference.session import default_model_path, time_models

    seconds = time_models([default_model_path("fp32"), default_model_path("int8")], size=64, threads=1, rounds=1)
    assert len(seconds) == 2 and all(0 < value < 10 for value in seconds)


def test_predict_names_the_shipped_file_it_chose(tmp_path, runtime_cache, monkeypatch, capsys):
    import numpy as np
    from PIL import Image

    from skinseg.inference import session as session_module
    from skinseg.predict import main as predict_main

    monkeypatch.setattr(session_module, "time_models", FakeTimer(fp32=0.3, int8=0.1))
    Image.fromarray(np.full((40, 30, 3), 180, np.uint8)).save(tmp_path / "photo.png")
    assert predict_main([str(tmp_path / "photo.png"), str(tmp_path / "out")]) == 0
    output = capsys.readouterr().out
    assert "model: shipped unet_skin int8 (int8 at 3.00x" in output
    assert "1 written to" in output and "by shipped unet_skin int8" in output
    assert predict_main([str(tmp_path / "photo.png"), str(tmp_path / "fp32"), "--precision", "fp32"]) == 0
    assert "shipped unet_skin fp32 (set explicitly)" in capsys.readouterr().out
    error = exit_2_message(predict_main, [str(tmp_path / "photo.png"), str(tmp_path / "x"), "--precision", "int8",
                         "--model", "ycbcr"], capsys)
    assert "--precision int8 picks the shipped model's file" in error
