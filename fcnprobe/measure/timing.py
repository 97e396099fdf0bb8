"""Wall-clock timing of a callable with ``torch.utils.benchmark``, and the sgemm roofline.

Conventions (timm ``benchmark.py``): warm up before the clock starts, run under
``inference_mode`` (the caller's callable does that), synchronise CUDA before
the first block (the Timer synchronises at block ends). ``latency`` reports the
median, IQR and 90th percentile, in ms per call, over blocks of back-to-back
calls; each statistic is over the per-call block means. A reference callable
can be timed in blocks interleaved with the measured one, so both see the same
machine load. ``gemm_gflops`` is a square fp32 matmul's rate, 2 n^3 FLOPs per
call (one multiply-add = 2 FLOPs).

Example::

    >>> import torch
    >>> from fcnprobe.measure.timing import TimingConfig, latency
    >>> a = torch.randn(256, 256)
    >>> latency(lambda: a @ a, TimingConfig())["latency_ms_median"] > 0
    True
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import numpy as np
import torch

from fcnprobe.device import synchronize
from fcnprobe.measure.flops import MAC_FLOPS


@dataclasses.dataclass(frozen=True)
class TimingConfig:
    """How long and how often to time one callable."""

    warmup: int = 1  # untimed calls before the clock starts (plus the block-size probe)
    block_s: float = 0.005  # target seconds per timed block (fast callables run several per block)
    min_run_time_s: float = 0.05  # timed seconds in all, as blocked_autorange's min_run_time
    min_repeats: int = 3  # at least this many blocks, so IQR and p90 mean something
    max_repeats: int = 10  # at most this many blocks


class _Timed:
    """One callable under a torch.utils.benchmark Timer: warmed up, block size chosen, blocks kept."""

    def __init__(self, fn: Callable[[], Any], cfg: TimingConfig, device: str) -> None:
        from torch.utils import benchmark

        self.timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
        for _ in range(cfg.warmup):
            fn()
        synchronize(device)  # the Timer's own clock synchronises the accelerator at block ends
        self.first = self.timer.timeit(1).times[0]  # one more warm-up, and the block-size estimate
        self.block = max(1, math.ceil(cfg.block_s / max(self.first, 1e-9)))
        self.runs: list = []

    def run(self) -> None:
        self.runs.append(self.timer.timeit(self.block))

    def stats(self) -> dict[str, Any]:
        from torch.utils import benchmark

        m = benchmark.Measurement.merge(self.runs)[0]
        times_ms = np.asarray(m.times) * 1e3
        return {"latency_ms_median": m.median * 1e3, "latency_ms_iqr": m.iqr * 1e3,
                "latency_ms_p90": float(np.percentile(times_ms, 90)), "timing_runs": len(self.runs),
                "timing_block": self.block}


def latency(fn: Callable[[], Any], cfg: TimingConfig, device: str = "cpu",
            reference: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Median / IQR / p90 (ms per call) over blocks timed by torch.utils.benchmark.

    Each block runs ``fn`` back to back ``timing_block`` times (enough for
    ``block_s`` seconds). A ``reference`` is timed in blocks interleaved with
    ``fn``'s; its median is returned as ``reference_ms_median``.
    """
    timers = [_Timed(f, cfg, device) for f in (fn, reference) if f is not None]
    t = timers[0]
    reps = min(cfg.max_repeats, max(cfg.min_repeats, math.ceil(cfg.min_run_time_s / (t.first * t.block))))
    for _ in range(reps):
        for timer in timers:
            timer.run()
    out = t.stats()
    if reference is not None:
        out["reference_ms_median"] = timers[1].stats()["latency_ms_median"]
    return out


def time_ms_per_image(fn: Callable[[], Any], n: int, min_s: float) -> float:
    """Median of ``blocked_autorange`` (CUDA-synchronised) under ``inference_mode``, per image, in ms."""
    from torch.utils.benchmark import Timer

    def run() -> Any:
        with torch.inference_mode():
            return fn()

    t = Timer("run()", globals={"run": run}, num_threads=torch.get_num_threads())
    return t.blocked_autorange(min_run_time=min_s).median / n * 1e3


def gemm_fn(n: int, device: str = "cpu") -> Callable[[], Any]:
    """A callable computing an (n, n) @ (n, n) fp32 matmul on ``device``."""
    a, b = (torch.randn(n, n, device=device) for _ in range(2))  # (n, n) fp32 each
    return lambda: torch.mm(a, b)


def gemm_gflops_from_ms(n: int, ms: float) -> float:
    """GFLOP/s of one (n, n) @ (n, n) matmul that took ``ms`` milliseconds (2 n^3 FLOPs)."""
    return MAC_FLOPS * n**3 / (ms / 1e3) / 1e9


def gemm_gflops(n: int, cfg: TimingConfig, device: str = "cpu") -> float:
    """GFLOP/s of an (n, n) @ (n, n) fp32 matmul: the roofline ceiling."""
    return gemm_gflops_from_ms(n, latency(gemm_fn(n, device), cfg, device)["latency_ms_median"])
