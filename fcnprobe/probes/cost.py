"""The cost probe: parameters, MACs/FLOPs, latency, throughput and peak memory of
every family as the input grows, plus a same-run sgemm roofline.

Cells (``task`` says which):

* ``forward`` -- one model x input side ``size`` x ``batch``. Models are built at
  32 px (their default) and run at ``size``. MACs come from ``fcnprobe.flops``
  (fvcore + handles, 1 MAC = 2 FLOPs, cross-checked by FlopCounterMode); past
  the preset's count cap the forward is not run twice for counting and
  FlopCounterMode on the meta device stands in (``macs_source``). Cells within
  the time cap are timed with ``torch.utils.benchmark`` (explicit threads,
  warm-up per shape, eval + ``inference_mode``, CUDA synchronised by the timer
  and before it starts): median / IQR / p90 over blocks of back-to-back forwards.
  A model that rejects the size (cnn_fc's flatten) is the finding: an ``ok``
  record with ``forward_ok=False`` and ``error_message``. Out of memory halves
  the batch as timm's ``_try_run`` does (``batch_used``, ``oom_backoffs``); out
  of memory at batch 1 is recorded the same way with ``oom=True``.
* ``roofline`` (model ``sgemm``) -- a square fp32 matmul's GFLOP/s on the same
  device with the same threads. Each timed forward cell also times that sgemm
  in blocks interleaved with its own, so ``roofline_frac`` (achieved GFLOP/s
  over ``gemm_gflops_per_s_ref``) compares two numbers taken under the same load.

Peak memory: CUDA, ``max_memory_allocated`` after ``reset_peak_memory_stats``
around one forward (weights and input included). CPU, the profiler's memory
events (``profile_memory=True``): live-tensor bytes at op granularity plus the
resident weights and input, so the two devices measure the same thing;
transient buffers freed inside one op are not seen.

References: timm ``benchmark.py`` (``_try_run``, ``inference_mode``, sync);
torch.utils.benchmark; fvcore; Williams et al. 2009 (roofline).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from fcnprobe.config import RunConfig, resolve_device, synchronize
from fcnprobe.flops import MAC_FLOPS, count_flops, estimate_flops
from fcnprobe.probes.base import Cell, CellContext, CellOutput, Probe, register_probe

__all__ = ["CostProbe", "CostSettings", "count_flops", "gemm_gflops", "try_batches"]

BUILD_SIZE = 32  # every model is built for 32 px (its default) and evaluated at other sizes
IN_CHANNELS = 3
DEFAULT_MODELS = ("fcn", "fcn_encdec", "dilated", "cnn_fc", "fcn_gap", "attention", "nonlocal",
                  "coordconv", "seed_simple_fcn")  # the seed's three examples share one architecture
GEMM_MODEL, GEMM_TASK = "sgemm", "roofline"


@dataclasses.dataclass(frozen=True)
class CostSettings:
    """Per-preset settings of the cost probe."""

    models: tuple[str, ...] = DEFAULT_MODELS  # families measured unless --models says otherwise; () = all
    sizes: tuple[int, ...] = (32, 64, 128, 256, 512)  # input sides (px) on CPU
    sizes_cuda: tuple[int, ...] = (32, 64, 128, 256, 512, 1024)  # on CUDA, where large inputs are affordable
    throughput_batch: int = 8  # the batch besides 1, for samples/s
    throughput_sizes: tuple[int, ...] = (64,)  # sides at which the throughput batch runs (64: the cost table)
    count_cap_gmacs: float = 3.0  # fvcore counts (two real forwards) up to this; beyond, meta FlopCounterMode
    time_cap_gmacs: float = 3.0  # forwards above this many GMACs are counted, not timed (~0.1 s on 1 core)
    cuda_cap_scale: float = 100.0  # both caps are multiplied by this on CUDA
    warmup: int = 1  # untimed forwards per shape before the clock starts (plus the block-size probe)
    block_s: float = 0.005  # target seconds per timed block (fast forwards run several per block)
    min_run_time_s: float = 0.05  # timed seconds per cell, as blocked_autorange's min_run_time
    min_repeats: int = 3  # at least this many blocks, so IQR and p90 mean something
    max_repeats: int = 10  # at most this many blocks
    gemm_n: int = 512  # side of the fp32 sgemm roofline on CPU (one core reaches its peak at 512)
    gemm_n_cuda: int = 4096  # on CUDA a small matmul does not fill the device


@register_probe("cost", order=40)
class CostProbe(Probe):
    """Cost vs resolution per family, and the sgemm ceiling; see the module docstring."""

    settings_by_preset = {
        "smoke": CostSettings(models=("fcn", "attention", "cnn_fc"), sizes=(32, 64), sizes_cuda=(32, 64),
                              throughput_batch=4, count_cap_gmacs=1.0, time_cap_gmacs=1.0, block_s=0.002,
                              min_run_time_s=0.02, gemm_n=256, gemm_n_cuda=2048),
        "quick": CostSettings(),
        "full": CostSettings(models=(), sizes=(32, 64, 128, 256, 512, 1024),
                             sizes_cuda=(32, 64, 128, 256, 512, 1024, 2048), throughput_batch=32,
                             throughput_sizes=(64, 256), count_cap_gmacs=200.0, time_cap_gmacs=100.0, warmup=3,
                             block_s=0.01, min_run_time_s=0.5, min_repeats=7, max_repeats=50, gemm_n=1024),
    }

    def cells(self, cfg: RunConfig, settings: CostSettings) -> list[Cell]:
        from fcnprobe.models import list_models

        cuda = resolve_device(cfg.device).startswith("cuda")
        models = self.model_names(cfg, list(settings.models) or list_models())
        out = [Cell.make("cost", GEMM_MODEL, GEMM_TASK, seed=s) for s in cfg.seeds]
        for model in models:
            for size in settings.sizes_cuda if cuda else settings.sizes:
                batches = (1, settings.throughput_batch) if size in settings.throughput_sizes else (1,)
                out += [Cell.make("cost", model, "forward", seed=s, size=size, batch=b)
                        for b in batches for s in cfg.seeds]
        return out

    def run_cell(self, cell: Cell, ctx: CellContext) -> CellOutput:
        if cell.task == GEMM_TASK:
            n = _gemm_n(ctx.settings, ctx.device)
            return CellOutput(metrics={"gemm_gflops_per_s": gemm_gflops(n, ctx.device, ctx.settings),
                                       "gemm_n": n, **_machine(ctx.device)})
        return CellOutput(metrics=measure_forward(cell.model, cell.p["size"], cell.p["batch"], ctx))


def _caps(settings: CostSettings, device: str) -> tuple[float, float]:
    """(count cap, time cap) in MACs for this device."""
    scale = settings.cuda_cap_scale if device.startswith("cuda") else 1.0
    return settings.count_cap_gmacs * scale * 1e9, settings.time_cap_gmacs * scale * 1e9


def measure_forward(name: str, size: int, batch: int, ctx: CellContext) -> dict[str, Any]:
    """Every metric of one forward cell (see the module docstring)."""
    from fcnprobe.models import MODELS, create_model

    native = MODELS.meta(name)["native"]
    model = create_model(name, head=_head(native), in_channels=IN_CHANNELS, image_size=BUILD_SIZE).eval()
    base = {"params_count": sum(p.numel() for p in model.parameters()), "pixels": size * size,
            "build_size": BUILD_SIZE, **_machine(ctx.device)}
    shape = (batch, IN_CHANNELS, size, size)
    est_flops, failure = _estimate(model, shape, ctx.device)
    if failure is not None:
        return {**base, **_not_run(failure)}
    model.to(ctx.device)
    count_cap, time_cap = _caps(ctx.settings, ctx.device)
    counts = _counts(model, shape, est_flops, count_cap, ctx.device)
    out = {**base, "forward_ok": True, "error_message": None, "oom": False, **counts}
    if counts["macs"] > time_cap:
        return {**out, **_untimed()}
    return {**out, **_timed(model, shape, counts["macs"] // batch, ctx)}


def _head(native: tuple[str, ...]) -> str:
    """The head each family is costed with: dense when it has one (the segmentation setting)."""
    return "dense:4" if "dense" in native else ("box" if native[0] == "box" else f"{native[0]}:4")


def _estimate(model: nn.Module, shape: tuple[int, ...], device: str) -> tuple[int | None, Exception | None]:
    """(FLOPs on the meta device, None), or (None, the model's exception) when it rejects the input.

    A meta failure is confirmed by a real batch-1 forward; if that succeeds the
    meta device was the problem and the meta error propagates (a sweep error).
    """
    try:
        return estimate_flops(model, shape), None
    except Exception as meta_exc:  # noqa: BLE001 -- decided below
        try:
            with torch.inference_mode():
                model.to(device)(torch.zeros(1, *shape[1:], device=device))
        except Exception as exc:  # noqa: BLE001 -- the model's own rejection is the finding
            return None, exc
        raise meta_exc


def _message(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:500]


def _counts(model: nn.Module, shape: tuple[int, ...], est_flops: int, cap: float, device: str) -> dict:
    """MAC/FLOP metrics at the cell's batch: fvcore + cross-check within the cap, else meta."""
    c = None
    if est_flops / MAC_FLOPS <= cap:
        try:
            c = count_flops(model, torch.randn(*shape, device=device))
        except Exception as exc:  # noqa: BLE001 -- counting runs with grad, so it may OOM where inference fits
            if not is_oom(exc):
                raise
            _free(device)
    if c is None:
        return {"macs": est_flops // MAC_FLOPS, "flops": est_flops, "flops_fvcore": None, "flops_torch": est_flops,
                "flops_fvcore_stock": None, "flops_torch_stock": None, "flops_agree": None,
                "macs_source": "torch_meta", "unsupported_ops": None, "uncounted_ops": None,
                "macs_by_op_names": None, "macs_by_op": None}
    rows = c.rows()
    return {"macs": c.macs, "flops": c.flops, "flops_fvcore": c.flops, "flops_torch": c.flops_torch,
            "flops_fvcore_stock": MAC_FLOPS * c.macs_fvcore_stock, "flops_torch_stock": c.flops_torch_stock,
            "flops_agree": c.agree, "macs_source": "fvcore", "unsupported_ops": list(c.unsupported),
            "uncounted_ops": sorted(c.uncounted), "macs_by_op_names": [r[0] for r in rows],
            "macs_by_op": [r[1] for r in rows]}


_TIMING_KEYS = ("batch_used", "oom_backoffs", "latency_ms_median", "latency_ms_iqr", "latency_ms_p90",
                "timing_runs", "timing_block", "samples_per_s", "peak_mem_mb", "peak_mem_method",
                "achieved_gflops_per_s", "roofline_frac", "gemm_gflops_per_s_ref")


def _untimed() -> dict[str, Any]:
    return {"timed": False, **{k: None for k in _TIMING_KEYS}}


def _not_run(exc: Exception) -> dict[str, Any]:
    """A model that cannot take the input: the exception is the finding, every cost is None."""
    keys = ("macs", "flops", "flops_fvcore", "flops_torch", "flops_fvcore_stock", "flops_torch_stock",
            "flops_agree", "macs_source", "unsupported_ops", "uncounted_ops", "macs_by_op_names", "macs_by_op")
    return {"forward_ok": False, "error_message": _message(exc), "oom": is_oom(exc),
            **{k: None for k in keys}, **_untimed()}


def _timed(model: nn.Module, shape: tuple[int, ...], macs_per_sample: int, ctx: CellContext) -> dict:
    """Latency, memory and roofline at the largest batch <= the cell's that fits in memory."""
    n = _gemm_n(ctx.settings, ctx.device)
    gemm = _gemm_fn(n, ctx.device)

    def run(batch: int) -> dict:
        x = torch.randn(batch, *shape[1:], device=ctx.device)
        fn = _forward_fn(model, x)
        return {**latency(fn, ctx.settings, ctx.device, reference=gemm), **peak_memory(fn, model, x, ctx.device)}

    try:
        m, used, backoffs = try_batches(run, shape[0], ctx.device)
    except Exception as exc:  # noqa: BLE001 -- OOM at batch 1 is a finding; anything else propagates
        if not is_oom(exc):
            raise
        return {"forward_ok": False, "error_message": _message(exc), "oom": True, **_untimed()}
    sec = m["latency_ms_median"] / 1e3
    achieved = MAC_FLOPS * macs_per_sample * used / sec / 1e9
    ceiling = MAC_FLOPS * n**3 / (m.pop("reference_ms_median") / 1e3) / 1e9
    return {"timed": True, "batch_used": used, "oom_backoffs": backoffs, **m, "samples_per_s": used / sec,
            "achieved_gflops_per_s": achieved, "roofline_frac": achieved / ceiling,
            "gemm_gflops_per_s_ref": ceiling}


def _forward_fn(model: nn.Module, x: torch.Tensor) -> Callable[[], Any]:
    def fn() -> Any:
        with torch.inference_mode():
            return model(x)

    return fn


def is_oom(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator's 'can't allocate memory'."""
    text = str(exc).lower()
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


def _free(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def try_batches(fn: Callable[[int], Any], batch: int, device: str = "cpu") -> tuple[Any, int, int]:
    """``fn(batch)``, halving the batch on out-of-memory (timm's ``_try_run``).

    Returns (result, batch used, number of halvings); OOM at batch 1 re-raises.
    """
    backoffs = 0
    while True:
        try:
            return fn(batch), batch, backoffs
        except Exception as exc:  # noqa: BLE001 -- only OOM is retried
            if not is_oom(exc) or batch == 1:
                raise
            _free(device)
            batch, backoffs = max(1, batch // 2), backoffs + 1


def latency(fn: Callable[[], Any], settings: CostSettings, device: str,
            reference: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Median / IQR / p90 (ms per call) over blocks timed by torch.utils.benchmark.

    Each block runs ``fn`` back to back ``timing_block`` times (enough for
    ``block_s`` seconds); the statistics are over the per-call block means. A
    ``reference`` is timed in blocks interleaved with ``fn``'s, so both see the
    same machine load; its median is returned as ``reference_ms_median``.
    """
    timers = [_Timed(f, settings, device) for f in (fn, reference) if f is not None]
    t = timers[0]
    reps = min(settings.max_repeats,
               max(settings.min_repeats, math.ceil(settings.min_run_time_s / (t.first * t.block))))
    for _ in range(reps):
        for timer in timers:
            timer.run()
    out = t.stats()
    if reference is not None:
        out["reference_ms_median"] = timers[1].stats()["latency_ms_median"]
    return out


class _Timed:
    """One callable under a torch.utils.benchmark Timer: warmed up, block size chosen, blocks kept."""

    def __init__(self, fn: Callable[[], Any], settings: CostSettings, device: str) -> None:
        from torch.utils import benchmark

        self.timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
        for _ in range(settings.warmup):
            fn()
        synchronize(device)  # the Timer's own clock synchronises the accelerator at block ends
        self.first = self.timer.timeit(1).times[0]  # one more warm-up, and the block-size estimate
        self.block = max(1, math.ceil(settings.block_s / max(self.first, 1e-9)))
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


def _resident_bytes(model: nn.Module, x: torch.Tensor) -> int:
    tensors = [*model.parameters(), *model.buffers(), x]
    return sum(t.numel() * t.element_size() for t in tensors)


def peak_memory(fn: Callable[[], Any], model: nn.Module, x: torch.Tensor, device: str) -> dict[str, Any]:
    """Peak MiB during one forward, weights and input included (method named in the record)."""
    if device.startswith("cuda"):
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)  # weights, input and the sgemm operands live here
        fn()
        synchronize(device)
        extra = torch.cuda.max_memory_allocated(device) - base
        return {"peak_mem_mb": (_resident_bytes(model, x) + extra) / 2**20,
                "peak_mem_method": "cuda_max_memory_allocated_above_baseline+resident"}
    peak = _profiled_peak_bytes(fn)
    return {"peak_mem_mb": (_resident_bytes(model, x) + peak) / 2**20,
            "peak_mem_method": "cpu_profiler_memory_events_op_level+resident"}


def _profiled_peak_bytes(fn: Callable[[], Any]) -> int:
    """Highest running sum of the profiler's allocation events during ``fn`` (op granularity)."""
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # kineto prints start/stop lines otherwise; probes never print
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e.time_range.start, e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage)
                    for e in prof.events())
    running = np.cumsum([b for _, b in events if b])
    return int(max(running.max(initial=0), 0))


def _gemm_n(settings: CostSettings, device: str) -> int:
    return settings.gemm_n_cuda if device.startswith("cuda") else settings.gemm_n


def _gemm_fn(n: int, device: str) -> Callable[[], Any]:
    a, b = (torch.randn(n, n, device=device) for _ in range(2))  # (n, n) fp32 each
    return lambda: torch.mm(a, b)


def gemm_gflops(n: int, device: str, settings: CostSettings) -> float:
    """GFLOP/s of an (n, n) @ (n, n) fp32 matmul (2 n^3 FLOPs): the roofline ceiling."""
    stats = latency(_gemm_fn(n, device), settings, device)
    return MAC_FLOPS * n**3 / (stats["latency_ms_median"] / 1e3) / 1e9


def _machine(device: str) -> dict[str, Any]:
    """Threads and device; on CUDA also whether TF32 is on (cuDNN convs default to it, sgemm does not)."""
    cuda = device.startswith("cuda")
    return {"threads_count": torch.get_num_threads(), "device_name": device_name(device),
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32 if cuda else None,
            "tf32_cudnn": torch.backends.cudnn.allow_tf32 if cuda else None}


@functools.lru_cache(maxsize=None)
def device_name(device: str) -> str:
    """The GPU's name, or the CPU's model name from /proc/cpuinfo (platform's guess elsewhere)."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        import platform

        return platform.processor() or platform.machine()
