"""pytest-benchmark: training samples/s per family at the quick settings (32 px, width
16, batch 16, one thread), the fraction of the machine's sgemm rate it reaches, the
engine options against plain eager training, and grouped (vmap) against sequential
training of G = 3 seeds and G = 6 learning rates.

Every comparison is timed inside the test with ``fcnprobe.train_speed.interleaved``
(blocks of A and B alternated, medians, IQR as noise), so it holds on a shared box;
the numbers go to ``benchmark.extra_info``. The ``benchmark`` fixture itself times
the default engine's step. MACs per training sample are 3x the forward's (1 MAC =
2 FLOPs), over the GFLOP/s of the cost probe's sgemm, timed interleaved with the steps.

Run (timed): ``pytest benchmarks/test_bench_train.py --benchmark-enable``; CI runs
each once with ``--benchmark-disable`` (pyproject's addopts) as a smoke test, with one
interleaved repetition. The full table for a report: ``python benchmarks/test_bench_train.py``.
"""
from __future__ import annotations

import dataclasses
import sys
import warnings

import pytest
import torch

from fcnprobe.measure.flops import MAC_FLOPS
from fcnprobe.measure.timing import gemm_fn
from fcnprobe.probes.cost import CostSettings
from fcnprobe.train import ENGINE, PLAIN
from fcnprobe.train_speed import QUICK, interleaved, make_step, ratio, train_macs_per_sample

FAMILIES = ("fcn", "dilated", "fcn_gap", "cnn_fc", "attention")
GROUPS = {"seeds": 3, "lrs": 6}  # G of a cell's seeds, and of a learning-rate grid


def _reps(benchmark) -> dict:
    """One short repetition when the suite runs disabled (CI smoke), seven when timed."""
    return {"reps": 1, "block_s": 0.0, "warmup": 0} if benchmark.disabled else {"reps": 7, "block_s": 0.3}


GEMM_N = CostSettings().gemm_n  # the cost probe's CPU roofline matmul, (512, 512) @ (512, 512) fp32


def _with_sgemm(steps: dict) -> dict:
    """``steps`` plus the cost probe's sgemm, so the roofline is timed interleaved with them."""
    return {**steps, "sgemm": gemm_fn(GEMM_N, "cpu")}


def _gflops(stats: dict) -> float:
    return MAC_FLOPS * GEMM_N**3 / stats["sgemm"]["s_per_call_median"] / 1e9


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():  # vmap's batching fallback for CPU SDPA warns on every call
        warnings.filterwarnings("ignore", message=".*batching rule.*")
        yield


@pytest.mark.parametrize("name", FAMILIES)
def test_train_step(benchmark, name):
    steps = {"engine": make_step(name, QUICK, ENGINE), "plain": make_step(name, QUICK, PLAIN)}
    st = interleaved(_with_sgemm(steps), samples={k: QUICK.batch_size for k in steps}, **_reps(benchmark))
    sgemm = _gflops(st)
    macs = train_macs_per_sample(name, QUICK)
    rate = st["engine"]["samples_per_s_median"]
    benchmark.extra_info.update(
        family=name, image_size=QUICK.image_size, width=QUICK.width, batch=QUICK.batch_size,
        threads=torch.get_num_threads(), train_macs_per_sample=macs, samples_per_s=rate,
        samples_per_s_plain=st["plain"]["samples_per_s_median"], engine_speedup=ratio(st, "engine", "plain"),
        noise_iqr_frac=st["engine"]["s_per_call_iqr"] / st["engine"]["s_per_call_median"],
        sgemm_gflops_per_s=sgemm, sgemm_frac=MAC_FLOPS * macs * rate / 1e9 / sgemm, engine=repr(ENGINE))
    benchmark(steps["engine"])
    assert 0 < benchmark.extra_info["sgemm_frac"] < 2  # above 1 would mean a wrong MAC count or clock


BF16 = dataclasses.replace(ENGINE, bf16_autocast=True)


@pytest.mark.parametrize("name", FAMILIES)
def test_bf16_autocast(benchmark, name):
    """bfloat16 autocast on top of the engine: measured, not kept (``train.EngineOptions``)."""
    steps = {"engine": make_step(name, QUICK, ENGINE), "bf16": make_step(name, QUICK, BF16)}
    st = interleaved(steps, samples={k: QUICK.batch_size for k in steps}, **_reps(benchmark))
    benchmark.extra_info.update(family=name, threads=torch.get_num_threads(), bf16_speedup=ratio(st, "bf16", "engine"),
                                native_bf16=bool(torch.backends.mkldnn.is_available()
                                                 and torch.ops.mkldnn._is_mkldnn_bf16_supported()))
    benchmark(steps["bf16"])


@pytest.mark.parametrize("grid", GROUPS)
@pytest.mark.parametrize("name", FAMILIES)
def test_grouped_vs_sequential(benchmark, name, grid):
    g = GROUPS[grid]
    steps = {"sequential": make_step(name, QUICK, ENGINE, group=g, strategy="loop"),
             "vmap": make_step(name, QUICK, ENGINE, group=g, strategy="vmap")}
    st = interleaved(steps, samples={k: g * QUICK.batch_size for k in steps}, **_reps(benchmark))
    benchmark.extra_info.update(
        family=name, grid=grid, group=g, threads=torch.get_num_threads(),
        sequential_samples_per_s=st["sequential"]["samples_per_s_median"],
        vmap_samples_per_s=st["vmap"]["samples_per_s_median"], vmap_speedup=ratio(st, "vmap", "sequential"))
    benchmark(steps["vmap"])


def main(reps: int = 7) -> None:
    """Print the table of every comparison (markdown), for a closing note."""
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message=".*batching rule.*")
    print("| family | train MMAC/sample | plain samples/s | engine samples/s | engine x | sgemm GFLOP/s "
          "| sgemm frac | bf16 x | vmap x (G=3) | vmap x (G=6) | worst IQR/median |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in FAMILIES:
        pair = {"engine": make_step(name, QUICK, ENGINE), "plain": make_step(name, QUICK, PLAIN)}
        one = interleaved(_with_sgemm(pair), reps=reps, samples={"engine": 16, "plain": 16})
        macs, rate, gemm = train_macs_per_sample(name, QUICK), one["engine"]["samples_per_s_median"], _gflops(one)
        row = [f"{macs / 1e6:.1f}", f"{one['plain']['samples_per_s_median']:.0f}", f"{rate:.0f}",
               f"{ratio(one, 'engine', 'plain'):.2f}", f"{gemm:.0f}", f"{MAC_FLOPS * macs * rate / 1e9 / gemm:.2f}"]
        bf = interleaved({"engine": pair["engine"], "bf16": make_step(name, QUICK, BF16)}, reps=reps,
                         samples={"engine": 16, "bf16": 16})
        row.append(f"{ratio(bf, 'bf16', 'engine'):.2f}")
        noise = [v["s_per_call_iqr"] / v["s_per_call_median"] for v in (*one.values(), *bf.values())]
        for g in GROUPS.values():
            st = interleaved({s: make_step(name, QUICK, ENGINE, group=g, strategy=s) for s in ("loop", "vmap")},
                             reps=reps, samples={"loop": 16 * g, "vmap": 16 * g})
            row.append(f"{ratio(st, 'vmap', 'loop'):.2f}")
            noise += [v["s_per_call_iqr"] / v["s_per_call_median"] for v in st.values()]
        print(f"| {name} | " + " | ".join(row) + f" | {max(noise):.2f} |", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
