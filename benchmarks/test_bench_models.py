"""pytest-benchmark: one forward pass per registered family at a fixed size, plus an
sgemm reference timed in the same session.

Each model is built *at* the benchmark size (so cnn_fc, which only takes its build
size, runs too), in eval mode, and timed under ``inference_mode`` after one
warm-up call. ``extra_info`` carries size, batch, params, MACs and FLOPs (1 MAC =
2 FLOPs, from ``fcnprobe.count_flops``), so a saved run can be turned into
GFLOP/s. Shared machines swing by 20-50%: compare a model's time with the
``sgemm`` reference of the *same* run rather than with another day's run.

Run (timed): ``pytest benchmarks/test_bench_models.py --benchmark-enable``;
CI runs each once with ``--benchmark-disable`` (pyproject's addopts) as a smoke test.
"""
from __future__ import annotations

import pytest
import torch

from fcnprobe.measure.flops import count_flops
from fcnprobe.models import MODELS, create_model, list_models

BENCH_SIZE = 64  # px; the cost table's size, small enough for a 2-core CI box
BENCH_BATCH = 4  # a small throughput batch
GEMM_N = 512  # the sgemm reference: (512, 512) @ (512, 512) fp32, 2 * 512^3 FLOPs


def _head(name: str) -> str:
    native = MODELS.meta(name)["native"]
    return "dense:4" if "dense" in native else ("box" if native[0] == "box" else f"{native[0]}:4")


@pytest.mark.parametrize("name", list_models())
def test_forward(benchmark, name):
    model = create_model(name, head=_head(name), image_size=BENCH_SIZE).eval()
    x = torch.randn(BENCH_BATCH, 3, BENCH_SIZE, BENCH_SIZE)  # (B, C, H, W)
    counted = count_flops(model, x, cross_check=False)
    benchmark.extra_info.update(size=BENCH_SIZE, batch=BENCH_BATCH, macs=counted.macs, flops=counted.flops,
                                params=sum(p.numel() for p in model.parameters()),
                                threads=torch.get_num_threads())

    def forward():
        with torch.inference_mode():
            return model(x)

    forward()  # warm-up for this shape
    out = benchmark(forward)
    assert out.shape[0] == BENCH_BATCH


def test_sgemm_reference(benchmark):
    a, b = torch.randn(GEMM_N, GEMM_N), torch.randn(GEMM_N, GEMM_N)  # (n, n) each
    benchmark.extra_info.update(n=GEMM_N, flops=2 * GEMM_N**3, threads=torch.get_num_threads())
    torch.mm(a, b)  # warm-up
    out = benchmark(torch.mm, a, b)
    assert out.shape == (GEMM_N, GEMM_N)
