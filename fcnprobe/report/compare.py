"""Deltas between two runs: the same cells, metric by metric (by declared label), with a device warning."""
from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from fcnprobe.report.data import RunData, table_html
from fcnprobe.report.env import environment

ID_COLS = ("cell_id", "probe", "model", "task", "seed")


def metric_deltas(a: RunData, b: RunData) -> pd.DataFrame:
    """Long table: one row per (cell, numeric metric) present and ok in both runs."""
    if a.df.empty or b.df.empty:
        return pd.DataFrame()
    skip = {"seed", "wall_time_s"}
    names = {**a.labels, **b.labels}  # the declared label, not the raw metric name
    rows = []
    ok_a = a.df[a.df.status == "ok"].set_index("cell_id")
    ok_b = b.df[b.df.status == "ok"].set_index("cell_id")
    for cid in sorted(set(ok_a.index) & set(ok_b.index)):
        ra, rb = ok_a.loc[cid], ok_b.loc[cid]
        for m in ra.index:
            va, vb = ra.get(m), rb.get(m)
            if m in skip or m.startswith(("param_", "array_")) or not _num(va) or not _num(vb):
                continue
            rows.append({"probe": ra.probe, "model": ra.model, "task": ra.task, "metric": names.get(m, m),
                         "run A": float(va), "run B": float(vb), "B - A": float(vb) - float(va),
                         "relative": (float(vb) - float(va)) / abs(float(va)) if float(va) else None})
    return pd.DataFrame(rows)


def _num(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and v == v


def device_warning(a: RunData, b: RunData) -> str | None:
    da = a.manifest.get("provenance", {}).get("device_name")
    db = b.manifest.get("provenance", {}).get("device_name")
    if da != db:
        return f"The runs were made on different devices ({da} vs {db}): timings are not comparable."
    return None


def render_comparison(a: RunData, b: RunData) -> str:
    deltas = metric_deltas(a, b)
    changed = deltas[deltas["B - A"].abs() > 0] if not deltas.empty else deltas
    return environment().get_template("compare.html.j2").render(
        run_a=str(a.root), run_b=str(b.root), warning=device_warning(a, b),
        n_common=deltas["probe"].size if not deltas.empty else 0,
        table=table_html(changed.sort_values(["probe", "model", "task", "metric"])) if not changed.empty else None)
