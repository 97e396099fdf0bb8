"""Per-record summaries the verdicts and sections share: accuracy within and beyond
a model's theoretical receptive field, seed-averaged per model and task.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from fcnprobe.report.data import RunData

MIDPOINT = 0.5  # failure = accuracy below chance + MIDPOINT * (1 - chance), as in the context probe


def _as_list(v) -> list:
    return list(v) if isinstance(v, (list, tuple, np.ndarray)) else []


def reach_split(row: pd.Series, radius: float | None) -> tuple[float | None, float | None, float | None]:
    """(mean acc in bins fully within ``radius``, mean acc in bins beyond it, min acc over bins)."""
    acc, lo, hi = (_as_list(row.get(k)) for k in ("acc_by_dist_frac", "dist_bin_lo_px", "dist_bin_hi_px"))
    pairs = [(a, l, h) for a, l, h in zip(acc, lo, hi) if a is not None]
    if not pairs:
        return None, None, None
    inside = [a for a, _, h in pairs if radius is None or h <= radius]
    beyond = [a for a, l, _ in pairs if radius is not None and l > radius]
    mean = lambda xs: float(np.mean(xs)) if xs else None  # noqa: E731
    return mean(inside), mean(beyond), float(min(a for a, _, _ in pairs))


def distance_summary(run: RunData, task: str, radius_of: str | None = None) -> pd.DataFrame:
    """Per model: within/beyond/min accuracy on a binned task, averaged over seeds.

    ``radius_of`` names the model whose TRF radius splits within from beyond
    (default: each model's own radius).
    """
    df = run.ok("context", task)
    if df.empty or "acc_by_dist_frac" not in df:
        return pd.DataFrame()
    ref = None
    if radius_of is not None:
        sel = df[df.model == radius_of]
        ref = sel["trf_radius_px"].iloc[0] if len(sel) and "trf_radius_px" in sel else None
    rows = []
    for _, row in df.iterrows():
        radius = ref if radius_of is not None else row.get("trf_radius_px")
        radius = None if radius is None or pd.isna(radius) else float(radius)
        within, beyond, worst = reach_split(row, radius)
        rows.append({"model": row.model, "seed": row.seed, "trf_px": row.get("trf_px"),
                     "radius_px": radius, "within": within, "beyond": beyond, "min_acc": worst,
                     "acc": row.get("acc_frac"), "chance": row.get("chance_frac"),
                     "failure_dist_px": row.get("failure_dist_px")})
    out = pd.DataFrame(rows)
    num = ["within", "beyond", "min_acc", "acc", "chance"]
    agg = out.groupby("model", sort=True).agg({**{k: "mean" for k in num}, "trf_px": "first",
                                                "radius_px": "first", "failure_dist_px": "first"})
    return agg.reset_index()


def threshold(chance: float) -> float:
    return chance + MIDPOINT * (1 - chance)
