"""The realarch probe: the suite's untrained measurements on real architectures at random init.

One cell per architecture of ``fcnprobe.models.hf.REAL_ARCHS`` (SegFormer-B0,
ResNet-18/50, ViT-Ti, Swin-T, MobileViT-S, UperNet-ConvNeXt from transformers
configs; torchvision's FCN, DeepLabv3 and LR-ASPP where torchvision imports).
At each input side (the architecture's own sizes, or ``--image-size``):

* the graph TRF of the centre unit of the probed output
  (``fcnprobe.measure.trf_graph``: finite, global, or unknown with the op that
  stopped it), and whether it covers the image;
* the native output size and stride (input side / output side);
* MACs and other FLOPs (``fcnprobe.measure.flops``: real forward up to
  ``count_cap_gmacs``, the meta device above, ``flops_path`` says which) and the
  median batch-1 latency (``torch.utils.benchmark``) up to ``time_cap_gmacs``.

At the smallest side it also measures the ERF at init (``erf_inputs`` white-noise
inputs): its 50% square's share of the image (``erf_cover50_frac``) and the
graph/numeric TRF check (``trf_check``, ``warnings``). Growth exponents against
the side come from ``fcnprobe.analysis.common.loglog_slope``.

A source that cannot import (torchvision here: its wheels are CUDA builds) gives
an ``ok`` record with ``skipped_reason`` set and every measurement None, so the
report shows the row and the reason; build and forward failures are error records.
Torch is imported inside the functions that run cells.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from fcnprobe.metrics import declare, metric
from fcnprobe.probes.base import Cell, CellContext, CellOutput, Probe, register_probe

if TYPE_CHECKING:
    import torch.nn as nn

REAL = "real"  # the variant: untrained, no registered task
REALARCH_METRICS = declare([
    metric("arch_label", "architecture"), metric("source", "built with"), metric("output_key", "probed output"),
    metric("skipped_reason", "why the row was not measured"), metric("params_count", "parameters"),
    metric("sizes_px", "input sides", is_array=True, unit="px"),
    metric("trf_kind_by_size", "TRF kind per side", is_array=True, unit=""),
    metric("trf_px_by_size", "TRF side per input side (None unless finite)", is_array=True, unit="px"),
    metric("trf_reason", "why the TRF is global or unknown"),
    metric("trf_covers_image", "TRF covers the largest image"), metric("output_shape", "native output shape",
                                                                           is_array=True, unit=""),
    metric("output_stride", "input side / output side", unit=""),
    metric("macs_by_size", "MACs per side", is_array=True, unit="MACs"),
    metric("other_flops_by_size", "other FLOPs per side", is_array=True, unit="FLOPs"),
    metric("flops_path_by_size", "counted on (real | meta)", is_array=True, unit=""),
    metric("latency_ms_by_size", "batch-1 latency per side (None above the time cap)", is_array=True, unit="ms"),
    metric("macs_slope", "MACs growth exponent vs side", unit=""),
    metric("latency_slope", "latency growth exponent vs side", unit=""),
    metric("erf_size_px", "ERF measured at"), metric("erf_cover50_frac", "ERF 50% square / image"),
    metric("erf_std_px", "ERF std at init"), metric("trf_check", "graph vs numeric TRF (agree|disagree|n/a)"),
    metric("warnings", "warnings", is_array=True, unit=""),
])


@dataclasses.dataclass(frozen=True)
class RealArchSettings:
    """Per-preset settings of the realarch probe."""

    archs: tuple[str, ...] | None  # registered architectures to run; None = all
    max_sizes: int  # the first this many of each architecture's sides (2 gives a slope)
    erf_inputs: int  # white-noise inputs per ERF map at init (coverage to ~10%)
    count_cap_gmacs: float = 5.0  # real-forward MAC counts up to here; the meta path above
    time_cap_gmacs: float = 5.0  # batch-1 forwards above this are counted, not timed (~0.1 s at 150 GFLOP/s)
    min_run_time_s: float = 0.05  # timed seconds per side (torch.utils.benchmark)


SMOKE = RealArchSettings(archs=("resnet18", "tv_fcn_resnet50"), max_sizes=2, erf_inputs=1, min_run_time_s=0.01)
QUICK = RealArchSettings(archs=None, max_sizes=2, erf_inputs=2)
FULL = RealArchSettings(archs=None, max_sizes=2, erf_inputs=16, count_cap_gmacs=50.0, time_cap_gmacs=50.0,
                        min_run_time_s=0.5)


@register_probe("realarch", order=45, help="TRF, output stride, ERF at init and cost slopes of real architectures")
class RealArchProbe(Probe):
    """Untrained measurements of real architectures; see the module docstring."""

    settings_by_preset = {"smoke": SMOKE, "quick": QUICK, "standard": QUICK, "full": FULL}
    metrics = REALARCH_METRICS
    variants = (REAL,)

    def cells(self, cfg, settings: RealArchSettings) -> list[Cell]:
        import fnmatch

        from fcnprobe.models.hf import REAL_ARCHS

        if cfg.user_models and not cfg.models:
            return []  # a user-only run measures the user's models, nothing else
        names = [n for n in REAL_ARCHS.names() if settings.archs is None or n in settings.archs]
        if cfg.models:
            names = [n for n in REAL_ARCHS.names() if any(fnmatch.fnmatchcase(n, p) for p in cfg.models)]
        if not self.wants_variant(cfg, REAL):
            return []
        return [self.variant_cell(n, REAL, seed, sizes=list(cfg.image_sizes or
                                                              REAL_ARCHS.meta(n)["sizes"][:settings.max_sizes]))
                for seed in cfg.seeds for n in names]

    def run_cell(self, cell: Cell, ctx: CellContext) -> CellOutput:
        from fcnprobe.models.hf import REAL_ARCHS, build_real, unavailable

        meta = REAL_ARCHS.meta(cell.model)
        base = {"arch_label": meta["note"], "source": meta["source"], "output_key": meta["output"],
                "sizes_px": list(cell.p["sizes"])}
        reason = unavailable(meta["source"])
        if reason is not None:
            return CellOutput(metrics={**base, "skipped_reason": reason})
        model = build_real(cell.model).to(ctx.device)
        return CellOutput(metrics={**base, "skipped_reason": None, **measure_arch(model, meta["output"],
                                                                                  cell.p["sizes"], cell, ctx)})


def measure_arch(model: "nn.Module", output: str, sizes: list[int], cell: Cell, ctx: CellContext) -> dict[str, Any]:
    """Every measurement of one architecture over ``sizes`` (see the module docstring)."""
    from fcnprobe.analysis.common import loglog_slope
    from fcnprobe.utils import param_count

    rows = [_at_size(model, output, s, ctx) for s in sizes]
    last = rows[-1]
    out = {"params_count": param_count(model), "trf_kind_by_size": [r["kind"] for r in rows],
           "trf_px_by_size": [r["trf"] for r in rows], "trf_reason": last["reason"],
           "trf_covers_image": last["kind"] == "global" or (last["trf"] is not None and last["trf"] >= sizes[-1]),
           "output_shape": last["shape"], "output_stride": last["stride"],
           "macs_by_size": [r["macs"] for r in rows], "other_flops_by_size": [r["other"] for r in rows],
           "flops_path_by_size": [r["path"] for r in rows], "latency_ms_by_size": [r["ms"] for r in rows],
           "macs_slope": loglog_slope(sizes, [r["macs"] for r in rows]),
           "latency_slope": loglog_slope(sizes, [r["ms"] for r in rows])}
    return {**out, **_erf(model, output, min(sizes), last["shape"], cell, ctx)}


def _at_size(model: "nn.Module", output: str, size: int, ctx: CellContext) -> dict[str, Any]:
    """Graph TRF, output shape and stride, MACs and latency at one input side."""
    import torch

    from fcnprobe.measure.flops import count_flops
    from fcnprobe.measure.trf_graph import graph_receptive_field

    s = ctx.settings
    g = graph_receptive_field(model, size, output=output)
    x = torch.randn(1, 3, size, size, device=ctx.device)
    c = count_flops(model, x, cross_check=False, meta_above_macs=s.count_cap_gmacs * 1e9)
    shape = list(g.output_shape)
    stride = size / shape[-1] if len(shape) == 4 and shape[-1] else None
    ms = _latency_ms(model, x, ctx) if c.macs <= s.time_cap_gmacs * 1e9 else None
    return {"kind": g.field.kind, "trf": g.field.side_px, "reason": g.field.reason, "shape": shape,
            "stride": stride, "macs": c.macs, "other": c.other_flops, "path": c.path, "ms": ms}


def _latency_ms(model: "nn.Module", x: Any, ctx: CellContext) -> float:
    import torch

    from fcnprobe.measure.timing import TimingConfig, latency

    def fn() -> Any:
        with torch.inference_mode():
            return model(x)

    return latency(fn, TimingConfig(min_run_time_s=ctx.settings.min_run_time_s), ctx.device)["latency_ms_median"]


def _erf(model: "nn.Module", output: str, size: int, shape: list[int], cell: Cell, ctx: CellContext) -> dict:
    """ERF at init at the smallest side: 50% square coverage and the TRF cross-check (spatial outputs only)."""
    import torch

    from fcnprobe.measure.erf import effective_receptive_field

    none = {"erf_size_px": None, "erf_cover50_frac": None, "erf_std_px": None, "trf_check": "n/a",
            "warnings": ["no spatial output: ERF not measured (name a spatial layer with diagnose --layer)"]}
    if len(shape) != 4:
        return none
    gen = torch.Generator().manual_seed(cell.torch_seed)
    x = torch.randn(ctx.settings.erf_inputs, 3, size, size, generator=gen).to(ctx.device)  # (N, 3, H, W)
    try:
        m = effective_receptive_field(model, x, batch_size=ctx.settings.erf_inputs, generator=gen,
                                      output=output).metrics
    except ValueError as exc:  # e.g. a map that is zero everywhere at init: the other columns still stand
        return {**none, "erf_size_px": size, "warnings": [f"ERF not measured at {size} px: {exc}"]}
    return {"erf_size_px": size, "erf_cover50_frac": m["hca_area_frac_t50"], "erf_std_px": m["erf_std_px"],
            "trf_check": m["trf_check"], "warnings": m["warnings"]}
