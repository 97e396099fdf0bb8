"""Small statistics used across probes and the report: log-log slopes, 95% intervals, variant rows."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

# two-sided 97.5% Student-t quantiles for 1..30 degrees of freedom; the normal value beyond
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
         2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
         2.052, 2.048, 2.045, 2.042]


def is_variant(df: "pd.DataFrame", variant: str) -> "pd.Series":
    """Boolean mask of the rows of a records frame whose cell variant is ``variant`` (``param_variant``)."""
    if "param_variant" not in df:
        return df.index.to_series(index=df.index).map(lambda _: False)
    return df["param_variant"] == variant


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Least-squares slope of log(y) against log(x) over the positive pairs; None if < 2 pairs."""
    pairs = [(a, b) for a, b in zip(x, y) if a is not None and b is not None and a > 0 and b > 0]
    if len(pairs) < 2 or len({a for a, _ in pairs}) < 2:
        return None
    lx, ly = np.log([a for a, _ in pairs]), np.log([b for _, b in pairs])
    return float(np.polyfit(lx, ly, 1)[0])


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its two-sided 95% Student-t interval (0 for one value)."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return math.nan, math.nan
    if v.size == 1:
        return float(v[0]), 0.0
    t = _T975[v.size - 2] if v.size - 1 <= len(_T975) else 1.96
    return float(v.mean()), float(t * v.std(ddof=1) / math.sqrt(v.size))
