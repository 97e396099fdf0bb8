"""Torch-free fits over the cost probe's records, for the probe's tests and the report.

* ``scaling_slopes``: per family, the log-log slope of a cost (MACs, latency,
  peak memory) against the pixel count H*W. A stride-1 convolution's MACs are
  exactly proportional to pixels (slope 1); global self-attention over tokens
  whose count grows with the input adds a pixels^2 term, so its slope rises
  toward 2 as that term takes over (``local_slopes`` shows the rise).
* ``crossover_size``: the input side at which one family's cost overtakes
  another's, interpolated in log-log between the two measured sides that bracket it.
* ``cost_table``: the per-family table at one size (params, MACs, latency at
  batch 1, samples/s at the largest batch, peak memory, roofline fraction).

Input is ``fcnprobe.results.load_run(out)``: one row per record, cell params as
``param_size`` / ``param_batch``, metrics by name.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from fcnprobe.analysis.common import is_variant, loglog_slope

TABLE_COLUMNS = ("params_count", "macs", "latency_ms_median", "samples_per_s", "peak_mem_mb", "roofline_frac")


def forward_rows(df: pd.DataFrame, batch: int | None = 1) -> pd.DataFrame:
    """The cost probe's forward cells that ran (forward_ok), at ``batch`` (None: every batch)."""
    rows = df[(df["probe"] == "cost") & is_variant(df, "forward") & (df["status"] == "ok")]
    if "forward_ok" in rows:
        rows = rows[rows["forward_ok"].fillna(False).astype(bool)]
    if batch is not None:
        rows = rows[rows["param_batch"] == batch]
    return rows.assign(pixels=rows["param_size"].astype(float) ** 2)


def _series(rows: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(pixels, metric) sorted by pixels, one value per size (the mean over seeds), NaNs dropped."""
    r = rows[["pixels", metric]].dropna()
    r = r.groupby("pixels", as_index=False)[metric].mean().sort_values("pixels")
    return r["pixels"].to_numpy(float), r[metric].to_numpy(float)


def scaling_slopes(df: pd.DataFrame, metric: str = "macs", batch: int = 1) -> dict[str, float | None]:
    """Per model: d log(metric) / d log(pixels) over every measured size (None if < 2 sizes)."""
    rows = forward_rows(df, batch)
    return {m: loglog_slope(*_series(g, metric)) for m, g in rows.groupby("model")}


def local_slopes(df: pd.DataFrame, metric: str = "macs", batch: int = 1) -> dict[str, list[tuple[int, int, float]]]:
    """Per model: (side_lo, side_hi, slope) between consecutive measured sides."""
    out = {}
    for model, g in forward_rows(df, batch).groupby("model"):
        px, y = _series(g, metric)
        pos = (px > 0) & (y > 0)
        px, y = px[pos], y[pos]
        out[model] = [(int(round(math.sqrt(px[i]))), int(round(math.sqrt(px[i + 1]))),
                       float(np.log(y[i + 1] / y[i]) / np.log(px[i + 1] / px[i]))) for i in range(len(px) - 1)]
    return out


def crossover_size(df: pd.DataFrame, model: str = "attention", baseline: str = "fcn",
                   metric: str = "macs", batch: int = 1) -> dict[str, float | str | None]:
    """The side (px) where ``model``'s metric first reaches ``baseline``'s.

    Returns ``{"size": side or None, "status": ...}`` with status ``crosses``
    (log-log interpolation between the bracketing sides), ``above_at_all_sizes``,
    ``below_at_all_sizes`` or ``no_data``.
    """
    rows = forward_rows(df, batch)
    a = dict(zip(*_series(rows[rows["model"] == model], metric)))
    b = dict(zip(*_series(rows[rows["model"] == baseline], metric)))
    px = sorted(p for p in set(a) & set(b) if a[p] > 0 and b[p] > 0)
    if not px:
        return {"size": None, "status": "no_data"}
    r = [math.log(a[p] / b[p]) for p in px]
    if r[0] >= 0:
        return {"size": None, "status": "above_at_all_sizes"}
    for i in range(len(px) - 1):
        if r[i] < 0 <= r[i + 1]:
            t = -r[i] / (r[i + 1] - r[i])
            log_px = math.log(px[i]) + t * (math.log(px[i + 1]) - math.log(px[i]))
            return {"size": math.sqrt(math.exp(log_px)), "status": "crosses"}
    return {"size": None, "status": "below_at_all_sizes"}


def cost_table(df: pd.DataFrame, size: int = 64) -> pd.DataFrame:
    """Per model at one side: params, MACs, latency/memory/roofline at batch 1, samples/s at its best batch."""
    rows = forward_rows(df, batch=None)
    rows = rows[rows["param_size"] == size]
    cols = [c for c in TABLE_COLUMNS if c in rows]
    b1 = rows[rows["param_batch"] == 1].groupby("model")[cols].mean()
    if "samples_per_s" in rows:
        best = rows.dropna(subset=["samples_per_s"]).sort_values("samples_per_s").groupby("model").tail(1)
        best = best.set_index("model")
        b1["samples_per_s"], b1["batch_best"] = best["samples_per_s"], best["param_batch"]
    return b1.sort_values("macs") if "macs" in b1 else b1


def roofline_ceiling(df: pd.DataFrame) -> float | None:
    """The roofline cell's sgemm GFLOP/s (mean over seeds), or None if it did not run."""
    r = df[(df["probe"] == "cost") & is_variant(df, "roofline") & (df["status"] == "ok")]
    if r.empty or "gemm_gflops_per_s" not in r:
        return None
    return float(r["gemm_gflops_per_s"].mean())
