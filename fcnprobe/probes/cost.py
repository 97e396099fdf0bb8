"""The cost probe: parameters, MACs/FLOPs, latency, throughput and peak memory of
every family as the input grows, plus a same-run sgemm roofline.

Cells (the ``variant`` says which; neither runs a registered task):

* ``forward`` -- one model x input side ``size`` x ``batch``. Models are built at
  32 px (their default) and run at ``size`` (``--image-size`` replaces the preset's
  sizes; plain builders without ``head`` are measured on their own output). One
  convention in one table (``fcnprobe.measure.flops``): ``macs`` counts the
  multiply-accumulates of conv, linear, matmul and attention only (1 MAC = 2
  FLOPs: ``flops``); norms, pooling, resampling and activations are
  ``other_flops``. The count runs the real forward up to the preset's count cap
  (``flops_path`` real, fvcore cross-checks: ``flops_fvcore``, ``flops_agree``)
  and on the meta device above it (``flops_path`` meta: the same counter and
  convention, shapes only, no cross-check). Cells within
  the time cap are timed with ``torch.utils.benchmark`` (explicit threads,
  warm-up per shape, eval + ``inference_mode``, CUDA synchronised by the timer
  and before it starts): median / IQR / p90 over blocks of back-to-back forwards.
  A model that rejects the size (cnn_fc's flatten) is the finding: an ``ok``
  record with ``forward_ok=False`` and ``error_message``. Out of memory halves
  the batch as timm's ``_try_run`` does (``batch_used``, ``oom_backoffs``); out
  of memory at batch 1 is recorded the same way with ``oom=True``.
* ``trained`` -- the MACs per sample of every configuration the context probe
  trains in this preset (model, head, size, width, depth, input channels, read
  from its plan), for the report's compute-matched view (issue 13): ``macs``
  per forward of one sample, and ``train_macs_per_sample`` = 3 x ``macs`` (a
  backward costs about two forwards; Kaplan et al. 2020). Counted, not timed.
* ``roofline`` (model ``none``) -- a square fp32 matmul's GFLOP/s on the same
  device with the same threads. Each timed forward cell also times that sgemm
  in blocks interleaved with its own, so ``roofline_frac`` (achieved GFLOP/s
  over ``gemm_gflops_per_s_ref``) compares two numbers taken under the same load.

Timing, memory and the OOM back-off come from ``fcnprobe.measure`` (``timing``,
``memory``); FLOPs from ``fcnprobe.measure.flops``. Torch is imported inside
the functions that run cells, so the declarations can be read without it.

References: timm ``benchmark.py`` (``_try_run``, ``inference_mode``, sync);
torch.utils.benchmark; fvcore; Williams et al. 2009 (roofline).
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable

from fcnprobe.config import RunConfig
from fcnprobe.metrics import declare, metric
from fcnprobe.probes.base import NO_TASK, Cell, CellContext, CellOutput, Probe, register_probe
from fcnprobe.utils import default_head, one_line, param_count

if TYPE_CHECKING:
    import torch.nn as nn

    from fcnprobe.measure.timing import TimingConfig

__all__ = ["CostProbe", "CostSettings", "measure_forward"]

BUILD_SIZE = 32  # every model is built for 32 px (its default) and evaluated at other sizes
IN_CHANNELS = 3
DEFAULT_MODELS = ("fcn", "fcn_encdec", "dilated", "cnn_fc", "fcn_gap", "attention", "nonlocal",
                  "coordconv", "seed_simple_fcn")  # the seed's three examples share one architecture
FORWARD, ROOFLINE, TRAINED = "forward", "roofline", "trained"  # the variants
_MACHINE = [metric("threads_count", "torch threads", unit="count"), metric("device_name", "device"),
            metric("tf32_matmul", "TF32 matmul on"), metric("tf32_cudnn", "TF32 cuDNN on")]
_COUNTS = [metric("macs", "multiply-adds per forward", "lower"), metric("flops", "FLOPs per forward", "lower"),
           metric("flops_fvcore", "FLOPs (fvcore + handles)"), metric("flops_torch", "FLOPs (FlopCounterMode)"),
           metric("flops_fvcore_stock", "FLOPs (stock fvcore)"), metric("flops_torch_stock",
                                                                        "FLOPs (stock FlopCounterMode)"),
           metric("flops_agree", "fvcore and FlopCounterMode agree"), metric("macs_source", "MACs counted by"),
           metric("other_flops", "other FLOPs (norms, pooling, resampling, activations)", "lower", unit="FLOPs"),
           metric("flops_path", "counted on (real | meta)"), metric("built_head", "head the model was built with"),
           metric("unsupported_ops", "ops fvcore skipped", is_array=True),
           metric("uncounted_ops", "ops counted by neither", is_array=True),
           metric("macs_by_op_names", "operators", is_array=True, unit=""),
           metric("macs_by_op", "MACs per operator", is_array=True, unit="MACs")]
_TIMING = [metric("batch_used", "batch timed", unit="count"), metric("oom_backoffs", "OOM batch halvings",
                                                                       unit="count"),
           metric("latency_ms_median", "latency, median", "lower"), metric("latency_ms_iqr", "latency IQR", "lower"),
           metric("latency_ms_p90", "latency, 90th percentile", "lower"),
           metric("timing_runs", "timed blocks", unit="count"), metric("timing_block", "calls per block",
                                                                         unit="count"),
           metric("samples_per_s", "throughput", "higher"), metric("peak_mem_mb", "peak memory", "lower"),
           metric("peak_mem_method", "peak memory measured by"),
           metric("achieved_gflops_per_s", "achieved rate", "higher"),
           metric("roofline_frac", "fraction of the sgemm rate", "higher"),
           metric("gemm_gflops_per_s_ref", "sgemm rate beside this cell")]
COST_METRICS = declare(_MACHINE, _COUNTS, _TIMING, [
    metric("params_count", "parameters"), metric("pixels", "input pixels", unit="count"),
    metric("build_size", "side the model was built for", unit="px"), metric("forward_ok", "forward ran"),
    metric("error_message", "why the forward failed"), metric("oom", "out of memory"),
    metric("timed", "timed"), metric("gemm_gflops_per_s", "sgemm rate", "higher"),
    metric("gemm_n", "sgemm side", unit="count"),
    metric("train_macs_per_sample", "MACs per training sample (3 x forward)", "lower", unit="MACs")])


@dataclasses.dataclass(frozen=True)
class CostSettings:
    """Per-preset settings of the cost probe."""

    models: tuple[str, ...] = DEFAULT_MODELS  # families measured unless --models says otherwise; () = all
    sizes: tuple[int, ...] = (32, 64, 128, 256, 512)  # input sides (px) on CPU
    sizes_cuda: tuple[int, ...] = (32, 64, 128, 256, 512, 1024)  # on CUDA, where large inputs are affordable
    throughput_batch: int = 8  # the batch besides 1, for samples/s
    throughput_sizes: tuple[int, ...] = (64,)  # sides at which the throughput batch runs (64: the cost table)
    count_cap_gmacs: float = 3.0  # real-forward counts (+ fvcore cross-check) up to this; beyond, the meta path
    time_cap_gmacs: float = 3.0  # forwards above this many GMACs are counted, not timed (~0.1 s on 1 core)
    cuda_cap_scale: float = 100.0  # both caps are multiplied by this on CUDA
    warmup: int = 1  # untimed forwards per shape before the clock starts (plus the block-size probe)
    block_s: float = 0.005  # target seconds per timed block (fast forwards run several per block)
    min_run_time_s: float = 0.05  # timed seconds per cell, as blocked_autorange's min_run_time
    min_repeats: int = 3  # at least this many blocks, so IQR and p90 mean something
    max_repeats: int = 10  # at most this many blocks
    gemm_n: int = 512  # side of the fp32 sgemm roofline on CPU (one core reaches its peak at 512)
    gemm_n_cuda: int = 4096  # on CUDA a small matmul does not fill the device


@register_probe("cost", order=40, help="parameters, FLOPs, latency and memory against input size")
class CostProbe(Probe):
    """Cost vs resolution per family, and the sgemm ceiling; see the module docstring."""

    metrics = COST_METRICS
    version = 2  # 2: one MAC convention, other_flops, flops_path
    variants = (FORWARD, ROOFLINE, TRAINED)

    settings_by_preset = {
        "smoke": CostSettings(models=("fcn", "attention", "cnn_fc"), sizes=(32, 64), sizes_cuda=(32, 64),
                              throughput_batch=4, count_cap_gmacs=1.0, time_cap_gmacs=1.0, block_s=0.002,
                              min_run_time_s=0.02, gemm_n=256, gemm_n_cuda=2048),
        "quick": CostSettings(),
        "standard": CostSettings(),  # no training: the quick sizes already fit the standard budget
        "full": CostSettings(models=(), sizes=(32, 64, 128, 256, 512, 1024),
                             sizes_cuda=(32, 64, 128, 256, 512, 1024, 2048), throughput_batch=32,
                             throughput_sizes=(64, 256), count_cap_gmacs=200.0, time_cap_gmacs=100.0, warmup=3,
                             block_s=0.01, min_run_time_s=0.5, min_repeats=7, max_repeats=50, gemm_n=1024),
    }

    def cells(self, cfg: RunConfig, settings: CostSettings) -> list[Cell]:
        from fcnprobe.device import resolve_device
        from fcnprobe.models import list_models

        cuda = resolve_device(cfg.device).startswith("cuda")
        models = self.model_names(cfg, list(settings.models) or list_models())
        out = [self.variant_cell(NO_TASK, ROOFLINE, seed=s) for s in cfg.seeds if self.wants_variant(cfg, ROOFLINE)]
        sizes = cfg.image_sizes or (settings.sizes_cuda if cuda else settings.sizes)
        pick = {} if cfg.output is None else {"output": cfg.output}
        for model in models if self.wants_variant(cfg, FORWARD) else ():
            for size in sizes:
                batches = (1, settings.throughput_batch) if size in settings.throughput_sizes else (1,)
                out += [self.variant_cell(model, FORWARD, seed=s, size=size, batch=b, **pick)
                        for b in batches for s in cfg.seeds]
        if self.wants_variant(cfg, TRAINED) and not pick:
            from fcnprobe.probes.cost_trained import trained_cells

            out += trained_cells(self, cfg)
        return out

    def run_cell(self, cell: Cell, ctx: CellContext) -> CellOutput:
        from fcnprobe.device import machine
        from fcnprobe.measure.timing import gemm_gflops

        if cell.p["variant"] == ROOFLINE:
            n = _gemm_n(ctx.settings, ctx.device)
            return CellOutput(metrics={"gemm_gflops_per_s": gemm_gflops(n, _timing(ctx.settings), ctx.device),
                                       "gemm_n": n, **machine(ctx.device)})
        if cell.p["variant"] == TRAINED:
            from fcnprobe.probes.cost_trained import trained_macs

            return CellOutput(metrics=trained_macs(cell, ctx.device))
        return CellOutput(metrics=measure_forward(cell.model, cell.p["size"], cell.p["batch"], ctx,
                                                  cell.p.get("output")))


def _timing(settings: CostSettings) -> "TimingConfig":
    """The preset's timing knobs as the measurement library takes them."""
    from fcnprobe.measure.timing import TimingConfig

    return TimingConfig(settings.warmup, settings.block_s, settings.min_run_time_s, settings.min_repeats,
                        settings.max_repeats)


def _caps(settings: CostSettings, device: str) -> tuple[float, float]:
    """(count cap, time cap) in MACs for this device."""
    scale = settings.cuda_cap_scale if device.startswith("cuda") else 1.0
    return settings.count_cap_gmacs * scale * 1e9, settings.time_cap_gmacs * scale * 1e9


def measure_forward(name: str, size: int, batch: int, ctx: CellContext,
                    output: str | None = None) -> dict[str, Any]:
    """Every metric of one forward cell (see the module docstring)."""
    from fcnprobe.device import machine
    from fcnprobe.measure.trf_graph import model_in_channels
    from fcnprobe.models import MODELS
    from fcnprobe.user import build_probe_model

    model, head = build_probe_model(name, default_head(MODELS.meta(name)["native"]), BUILD_SIZE)
    model.eval()
    base = {"params_count": param_count(model), "pixels": size * size, "build_size": BUILD_SIZE,
            "built_head": head, **machine(ctx.device)}
    shape = (batch, model_in_channels(model), size, size)
    _, failure = _estimate(model, shape, ctx.device)  # a model that rejects the size is the finding
    if failure is not None:
        return {**base, **_not_run(failure)}
    model.to(ctx.device)
    count_cap, time_cap = _caps(ctx.settings, ctx.device)
    counts = _counts(model, shape, count_cap, ctx.device)
    out = {**base, "forward_ok": True, "error_message": None, "oom": False, **counts}
    if counts["macs"] > time_cap:
        return {**out, **_untimed()}
    return {**out, **_timed(model, shape, counts["macs"] // batch, ctx, output)}


def _estimate(model: "nn.Module", shape: tuple[int, ...], device: str) -> tuple[int | None, Exception | None]:
    """(FLOPs on the meta device, None), or (None, the model's exception) when it rejects the input.

    A meta failure is confirmed by a real batch-1 forward; if that succeeds the
    meta device was the problem and the meta error propagates (a sweep error).
    """
    import torch

    from fcnprobe.measure.flops import estimate_flops

    try:
        return estimate_flops(model, shape), None
    except Exception as meta_exc:  # noqa: BLE001 -- decided below
        try:
            with torch.inference_mode():
                model.to(device)(torch.zeros(1, *shape[1:], device=device))
        except Exception as exc:  # noqa: BLE001 -- the model's own rejection is the finding
            return None, exc
        raise meta_exc


def _counts(model: "nn.Module", shape: tuple[int, ...], cap: float, device: str) -> dict:
    """MAC/FLOP metrics at the cell's batch: one counter and convention, real forward up to ``cap`` MACs, else meta."""
    import torch

    from fcnprobe.device import release_cuda
    from fcnprobe.measure.flops import MAC_FLOPS, count_flops
    from fcnprobe.measure.memory import is_oom

    try:
        c = count_flops(model, torch.randn(*shape, device=device), meta_above_macs=cap)
    except Exception as exc:  # noqa: BLE001 -- counting runs with grad, so it may OOM where inference fits
        if not is_oom(exc):
            raise
        release_cuda(device)
        c = count_flops(model, torch.randn(*shape, device=device), meta_above_macs=-1)  # always the meta path
    rows = c.rows()
    real = c.path == "real"
    return {"macs": c.macs, "flops": c.flops, "other_flops": c.other_flops, "flops_path": c.path,
            "flops_fvcore": MAC_FLOPS * c.macs_fvcore if c.macs_fvcore is not None else None,
            "flops_torch": c.flops_torch, "flops_torch_stock": c.flops_torch_stock,
            "flops_fvcore_stock": MAC_FLOPS * c.macs_fvcore_stock if c.macs_fvcore_stock is not None else None,
            "flops_agree": c.agree, "macs_source": "torch+fvcore" if real else "torch_meta",
            "unsupported_ops": list(c.unsupported) if real else None, "uncounted_ops": sorted(c.uncounted) if real
            else None, "macs_by_op_names": [r[0] for r in rows], "macs_by_op": [r[1] for r in rows]}


_TIMING_KEYS = ("batch_used", "oom_backoffs", "latency_ms_median", "latency_ms_iqr", "latency_ms_p90",
                "timing_runs", "timing_block", "samples_per_s", "peak_mem_mb", "peak_mem_method",
                "achieved_gflops_per_s", "roofline_frac", "gemm_gflops_per_s_ref")


def _untimed() -> dict[str, Any]:
    return {"timed": False, **{k: None for k in _TIMING_KEYS}}


def _not_run(exc: Exception) -> dict[str, Any]:
    """A model that cannot take the input: the exception is the finding, every cost is None."""
    from fcnprobe.measure.memory import is_oom

    keys = ("macs", "flops", "flops_fvcore", "flops_torch", "flops_fvcore_stock", "flops_torch_stock",
            "flops_agree", "macs_source", "unsupported_ops", "uncounted_ops", "macs_by_op_names", "macs_by_op",
            "other_flops", "flops_path")
    return {"forward_ok": False, "error_message": one_line(exc), "oom": is_oom(exc),
            **{k: None for k in keys}, **_untimed()}


def _timed(model: "nn.Module", shape: tuple[int, ...], macs_per_sample: int, ctx: CellContext,
           output: str | None = None) -> dict:
    """Latency, memory and roofline at the largest batch <= the cell's that fits in memory."""
    import torch

    from fcnprobe.measure.flops import MAC_FLOPS
    from fcnprobe.measure.memory import is_oom, peak_memory, try_batches
    from fcnprobe.measure.timing import gemm_fn, gemm_gflops_from_ms, latency

    n = _gemm_n(ctx.settings, ctx.device)
    gemm = gemm_fn(n, ctx.device)

    def run(batch: int) -> dict:
        x = torch.randn(batch, *shape[1:], device=ctx.device)
        fn = _forward_fn(model, x, output)
        return {**latency(fn, _timing(ctx.settings), ctx.device, reference=gemm),
                **peak_memory(fn, model, x, ctx.device)}

    try:
        m, used, backoffs = try_batches(run, shape[0], ctx.device)
    except Exception as exc:  # noqa: BLE001 -- OOM at batch 1 is a finding; anything else propagates
        if not is_oom(exc):
            raise
        return {"forward_ok": False, "error_message": one_line(exc), "oom": True, **_untimed()}
    sec = m["latency_ms_median"] / 1e3
    achieved = MAC_FLOPS * macs_per_sample * used / sec / 1e9
    ceiling = gemm_gflops_from_ms(n, m.pop("reference_ms_median"))
    return {"timed": True, "batch_used": used, "oom_backoffs": backoffs, **m, "samples_per_s": used / sec,
            "achieved_gflops_per_s": achieved, "roofline_frac": achieved / ceiling,
            "gemm_gflops_per_s_ref": ceiling}


def _forward_fn(model: "nn.Module", x: Any, output: str | None = None) -> Callable[[], Any]:
    """One forward under inference_mode; a NaN or inf in the probed output is a CellError at stage 'forward'."""
    import torch

    from fcnprobe.measure.outputs import select_output
    from fcnprobe.utils import check_finite

    def fn() -> Any:
        with torch.inference_mode():
            return model(x)

    check_finite(select_output(fn(), output), "forward")  # a dict / tuple / ModelOutput: the chosen tensor
    return fn


def _gemm_n(settings: CostSettings, device: str) -> int:
    return settings.gemm_n_cuda if device.startswith("cuda") else settings.gemm_n
