"""The cost probe end to end (smoke preset), its MAC scaling, an OOM at batch 1 as a finding,
and the torch-free fits in fcnprobe.analysis.cost. No test asserts a timing (tests/measure has the library)."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

import fcnprobe
import torch
import torch.nn as nn

from fcnprobe.analysis.cost import cost_table, crossover_size, local_slopes, roofline_ceiling, scaling_slopes
from fcnprobe.config import RunConfig
from fcnprobe.measure import timing
from fcnprobe.probes import cost
from fcnprobe.probes.base import CellContext
from fcnprobe.results import load_run
from fcnprobe.sweep import run_sweep

TIMED = ("latency_ms_median", "latency_ms_iqr", "latency_ms_p90", "samples_per_s", "peak_mem_mb",
         "achieved_gflops_per_s", "roofline_frac", "gemm_gflops_per_s_ref")
COUNTED = ("params_count", "macs", "flops", "flops_fvcore", "flops_torch", "unsupported_ops")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cost") / "run"
    cfg = RunConfig(out=str(out), device="cpu", preset="smoke", workers=1, threads=1)
    summary = run_sweep(["cost"], cfg, progress=False)
    return summary, load_run(out)


def test_smoke_records_carry_every_metric(smoke_run):
    summary, df = smoke_run
    assert summary.failed == 0
    fwd = df[(df.param_variant == "forward") & df.forward_ok.astype(bool)]
    # the time cap decides, not the test: attention's dense head uses 2 px tokens, so at 64 px x batch 4
    # it costs 1.54 GMACs, over the smoke cap of 1 GMAC, and is counted but not timed
    smoke = cost.CostProbe.settings_by_preset["smoke"]
    assert (fwd.timed.astype(bool) == (fwd.macs <= smoke.time_cap_gmacs * 1e9)).all()
    assert ((fwd.flops_path == "real") == (fwd.macs <= smoke.count_cap_gmacs * 1e9)).all()  # above: meta, same counter
    assert len(fwd) >= 4 and fwd.timed.astype(bool).sum() >= 4
    for col in ("params_count", "macs", "flops", "flops_torch", "threads_count", "device_name", "other_flops"):
        assert fwd[col].notna().all(), col
    real, timed = fwd[fwd.flops_path == "real"], fwd[fwd.timed.astype(bool)]
    for col in COUNTED:
        assert real[col].notna().all(), col
    for col in (*TIMED, "peak_mem_method"):
        assert timed[col].notna().all(), col
    assert (fwd.threads_count == 1).all() and (fwd.other_flops > 0).all()
    assert (fwd.flops == 2 * fwd.macs).all() and (fwd.flops_torch == fwd.flops).all()
    assert (real.flops_fvcore == real.flops).all() and real.flops_agree.astype(bool).all()
    assert real.unsupported_ops.map(len).eq(0).all()
    assert (timed.latency_ms_p90 >= timed.latency_ms_median).all()  # a percentile identity, not a timing


def test_derived_metrics_follow_from_the_measured_ones(smoke_run):
    _, df = smoke_run
    fwd = df[(df.param_variant == "forward") & df.forward_ok.astype(bool) & df.timed.astype(bool)]
    sec = fwd.latency_ms_median / 1e3
    np.testing.assert_allclose(fwd.samples_per_s, fwd.batch_used / sec, rtol=1e-9)
    np.testing.assert_allclose(fwd.achieved_gflops_per_s, fwd.flops / fwd.param_batch * fwd.batch_used / sec / 1e9,
                               rtol=1e-6)
    np.testing.assert_allclose(fwd.roofline_frac, fwd.achieved_gflops_per_s / fwd.gemm_gflops_per_s_ref, rtol=1e-9)
    roof = df[df.param_variant == "roofline"].iloc[0]
    assert roof.model == "none" and roof.gemm_n == 256 and roof.gemm_gflops_per_s > 0
    assert roofline_ceiling(df) == roof.gemm_gflops_per_s


def test_cnn_fc_at_another_size_is_a_finding_not_an_error(smoke_run):
    _, df = smoke_run
    bad = df[(df.model == "cnn_fc") & (df.param_size == 64)]
    assert len(bad) == 2 and (bad.status == "ok").all() and not bad.forward_ok.astype(bool).any()
    assert bad.error_message.str.contains("built for 32x32").all() and bad.macs.isna().all()
    ok = df[(df.model == "cnn_fc") & (df.param_size == 32)]
    assert ok.forward_ok.astype(bool).all()


def test_cost_table_and_slopes_read_the_records(smoke_run):
    _, df = smoke_run
    table = cost_table(df, size=64)
    assert set(table.index) == {"fcn", "attention"}  # cnn_fc cannot run at 64
    assert (table.batch_best.isin([1, 4])).all() and table.macs.gt(0).all()
    assert scaling_slopes(df)["fcn"] == pytest.approx(1.0, abs=0.02)


def test_mac_slope_is_one_for_fcn_and_rises_toward_two_for_attention(tmp_path, monkeypatch):
    untimed = dataclasses.replace(cost.CostProbe.settings_by_preset["smoke"], models=("fcn", "attention"),
                                  sizes=(32, 64, 128), throughput_sizes=(), count_cap_gmacs=100.0,
                                  time_cap_gmacs=0.0)
    monkeypatch.setitem(cost.CostProbe.settings_by_preset, "smoke", untimed)
    cfg = RunConfig(out=str(tmp_path / "run"), device="cpu", preset="smoke", workers=1, threads=1)
    run_sweep(["cost"], cfg, progress=False)
    df = load_run(tmp_path / "run")
    assert (df[df.param_variant == "forward"].flops_path == "real").all()
    slopes = scaling_slopes(df, "macs")
    assert slopes["fcn"] == pytest.approx(1.00, abs=0.02)
    rising = [s for _, _, s in local_slopes(df, "macs")["attention"]]
    assert all(b > a for a, b in zip(rising, rising[1:])), rising
    assert rising == pytest.approx(_attention_slopes(df, (32, 64, 128)), abs=1e-3) and rising[-1] < 2.0
    cross = crossover_size(df, "attention", "fcn", "macs")
    a, b = _attention_terms(df)
    fcn_per_px = float(df[(df.model == "fcn") & (df.param_size == 32)].macs.iloc[0]) / 32**2
    exact = math.sqrt((fcn_per_px - a) / b) if fcn_per_px > a else 0.0  # a n + b n^2 = c n
    lo = max(s for s in (32, 64, 128) if s <= exact) if exact >= 32 else None
    assert cross["status"] == "crosses" and lo is not None and lo < cross["size"] < 2 * lo, (cross, exact)


def _attention_slopes(df: pd.DataFrame, sizes: tuple[int, ...]) -> list[float]:
    """Closed form: MACs(n pixels) = a n + b n^2, with b n^2 the SDPA's two matmuls, 2 L T^2 W for
    T = n / p^2 tokens (L layers, width W, patch p read off the model); a from the 32 px record."""
    a, b = _attention_terms(df)
    macs = [a * s**2 + b * s**4 for s in sizes]
    return [math.log(m2 / m1) / math.log(s2**2 / s1**2) for m1, m2, s1, s2 in zip(macs, macs[1:], sizes, sizes[1:])]


def _attention_terms(df: pd.DataFrame) -> tuple[float, float]:
    from fcnprobe.models import create_model

    m = create_model("attention", head="dense:4")
    layers, width, p = len(m.trunk.encoder.layers), m.info.width, m.trunk.patch
    b = 2 * layers * width / p**4
    macs32 = float(df[(df.model == "attention") & (df.param_size == 32)].macs.iloc[0])
    return (macs32 - b * 32**4) / 32**2, b


def _ctx(preset: str = "smoke") -> CellContext:
    return CellContext("cpu", preset, cost.CostProbe.settings_by_preset[preset], None, None)


def test_out_of_memory_at_batch_one_is_recorded_as_a_finding(monkeypatch):
    calls = []

    def oom(fn, settings, device, reference=None):
        calls.append(1)
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 TB")

    monkeypatch.setattr(timing, "latency", oom)
    m = cost.measure_forward("fcn", 32, 4, _ctx())
    assert len(calls) == 3  # batch 4, 2, 1
    assert m["oom"] is True and m["forward_ok"] is False and "can't allocate" in m["error_message"]
    assert m["macs"] > 0 and m["latency_ms_median"] is None  # counted, not timed


def test_cells_follow_the_preset_and_the_model_filter():
    probe = cost.CostProbe()
    quick = probe.cells(RunConfig(device="cpu"), probe.settings("quick"))
    fwd = [c for c in quick if c.p.get("variant") == "forward"]
    assert {c.p["size"] for c in fwd} == {32, 64, 128, 256, 512}
    assert {(c.p["size"], c.p["batch"]) for c in fwd if c.p["batch"] > 1} == {(64, 8)}
    assert sum(c.p.get("variant") == "roofline" for c in quick) == 1
    only = probe.cells(RunConfig(device="cpu", models=("fcn*",)), probe.settings("smoke"))
    assert {c.model for c in only if c.p.get("variant") == "forward"} == set(fcnprobe.list_models("fcn*"))


def test_crossover_interpolates_in_log_log():
    sizes = [32, 64, 128, 256]
    rows = [{"probe": "cost", "task": "none", "param_variant": "forward", "status": "ok", "forward_ok": True, "model": m,
             "param_size": s, "param_batch": 1, "macs": f(s)}
            for s in sizes for m, f in (("a", lambda s: s**4), ("b", lambda s: 100.0**2 * s**2))]
    df = pd.DataFrame(rows)
    assert crossover_size(df, "a", "b")["size"] == pytest.approx(100.0)
    assert scaling_slopes(df)["a"] == pytest.approx(2.0) and scaling_slopes(df)["b"] == pytest.approx(1.0)
    assert crossover_size(df, "b", "a")["status"] == "above_at_all_sizes"
    assert crossover_size(df, "a", "zzz")["status"] == "no_data"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_cell_uses_max_memory_allocated():
    ctx = CellContext("cuda", "smoke", cost.CostProbe.settings_by_preset["smoke"], None, None)
    m = cost.measure_forward("fcn", 64, 4, ctx)
    assert m["timed"] and m["peak_mem_method"] == "cuda_max_memory_allocated" and math.isfinite(m["peak_mem_mb"])
