"""Per-record summaries the verdicts and sections share: accuracy within and beyond
a model's theoretical receptive field, seed-averaged per model and task.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from fcnprobe.report.data import RunData
from fcnprobe.utils import failure_threshold as threshold  # the context probe's rule, shared

__all__ = ["distance_summary", "hierarchy_note", "reach_of", "reach_split", "threshold"]


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


def reach_of(row: pd.Series) -> float | None:
    """The distance up to which a model can see the cue on this task (the probe's ``reach_px``)."""
    for key in ("reach_px", "trf_radius_px"):
        v = row.get(key)
        if v is not None and not pd.isna(v):
            return float(v)
    return None


def distance_summary(run: RunData, task: str, radius_of: str | None = None) -> pd.DataFrame:
    """Per model: within/beyond/min accuracy on a binned task, averaged over seeds.

    The split is at each model's own reach on this task (``reach_px``: the TRF radius for a
    dense cue, TRF + cue size for a pair of cues), or at the reach of model ``radius_of``.
    For a model's own reach the probe's per-sample split is used; otherwise whole bins.
    """
    df = run.ok("context", task)
    if df.empty or "acc_by_dist_frac" not in df:
        return pd.DataFrame()
    ref = df[df.model == radius_of] if radius_of is not None else None
    ref_reach = reach_of(ref.iloc[0]) if ref is not None and len(ref) else None
    rows = []
    for _, row in df.iterrows():
        radius = ref_reach if radius_of is not None else reach_of(row)
        within, beyond, worst = reach_split(row, radius)
        if radius_of is None and "acc_within_reach_frac" in row:
            within, beyond = _value(row, "acc_within_reach_frac", within), _value(row, "acc_beyond_reach_frac", beyond)
        rows.append({"model": row.model, "seed": row.seed, "trf_px": row.get("trf_px"),
                     "radius_px": radius, "within": within, "beyond": beyond, "min_acc": worst,
                     "acc": row.get("acc_frac"), "chance": row.get("chance_frac"),
                     "failure_dist_px": row.get("failure_dist_px"), "ceiling": row.get("pooled_ceiling_frac")})
    out = pd.DataFrame(rows)
    num = ["within", "beyond", "min_acc", "acc", "chance", "ceiling", "failure_dist_px"]
    out[num] = out[num].apply(pd.to_numeric, errors="coerce")
    agg = out.groupby("model", sort=True).agg({**{k: "mean" for k in num[:-1]}, "failure_dist_px": "median",
                                                "trf_px": "first", "radius_px": "first"})
    return agg.reset_index()


def _value(row: pd.Series, key: str, default):
    v = row.get(key)
    return default if v is None or pd.isna(v) else float(v)


def hierarchy_note(run: RunData) -> str:
    """' Hierarchy probe (trained models; ...): fcn: task layer a/b (best s%), ...' from the hierarchy records, or ''.

    Only the trained models are quoted on the card; the section shows the untrained ones beside them.
    """
    df = run.ok("hierarchy")
    if df.empty or "abstraction_depth" not in df:
        return ""
    df = df[df["param_state"] == "trained"] if "param_state" in df else df
    per_model = []
    for model, gm in df.groupby("model", sort=True):
        parts = []
        for task, g in gm.groupby("task", sort=True):
            depth = pd.to_numeric(g["abstraction_depth"], errors="coerce").median()
            n = pd.to_numeric(g["layers_count"], errors="coerce").median()
            best = pd.to_numeric(g["best_selectivity_frac"], errors="coerce").mean()
            where = "never" if pd.isna(depth) else f"{int(depth) + 1}/{int(n)}"
            parts.append(f"{task} {where} ({100 * best:.0f}%)")
        per_model.append(f"{model}: " + ", ".join(parts))
    return (" Hierarchy probe, trained models (first layer whose linear-probe selectivity reaches 90% of the "
            "best, and that best; beside the verdict, not part of its rule): " + "; ".join(per_model) + ".")
