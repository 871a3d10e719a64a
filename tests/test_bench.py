"""The benchmark scripts run (their figures are read by people, not asserted)."""

from __future__ import annotations

from skinseg.bench import train as bench_train


def test_training_benchmark_smoke(tmp_path, capsys, cache_dir):
    bench_train.main(
        ["--models", "dlmv", "--size", "64", "--batch-size", "2", "--steps", "1", "--warmup", "1",
         "--repeats", "1", "--workers", "0", "--data-batches", "2", "--data", str(tmp_path),
         "--cache", str(cache_dir)]
    )
    output = capsys.readouterr().out
    assert "skinseg / plain" in output and "bf16-mixed" in output and "demo data" in output
