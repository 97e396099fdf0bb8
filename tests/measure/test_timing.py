"""fcnprobe.measure.timing: the statistics it reports and the sgemm arithmetic (no timing is asserted)."""
from __future__ import annotations

import pytest
import torch

from fcnprobe.measure.timing import TimingConfig, gemm_gflops, gemm_gflops_from_ms, latency, time_ms_per_image

FAST = TimingConfig(warmup=1, block_s=0.001, min_run_time_s=0.005, min_repeats=3, max_repeats=4)


def test_gemm_rate_is_two_n_cubed_flops_per_call():
    assert gemm_gflops_from_ms(1000, 2.0) == pytest.approx(2 * 1000**3 / 2e-3 / 1e9)  # 1000 GFLOP/s


def test_latency_reports_ordered_statistics_over_the_blocks():
    a = torch.randn(64, 64)
    out = latency(lambda: a @ a, FAST, "cpu", reference=lambda: a + a)
    assert FAST.min_repeats <= out["timing_runs"] <= FAST.max_repeats and out["timing_block"] >= 1
    assert 0 < out["latency_ms_median"] <= out["latency_ms_p90"] and out["latency_ms_iqr"] >= 0
    assert out["reference_ms_median"] > 0


def test_warmup_calls_happen_before_the_clock():
    calls = []
    latency(lambda: calls.append(1), TimingConfig(warmup=3, block_s=1e-4, min_run_time_s=1e-4, min_repeats=1,
                                                   max_repeats=1), "cpu")
    assert len(calls) >= 3 + 1 + 1  # warm-up, the block-size probe, one block


def test_gemm_and_per_image_times_are_positive():
    assert gemm_gflops(32, FAST) > 0
    assert time_ms_per_image(lambda: torch.ones(8).sum(), 8, 0.001) > 0
