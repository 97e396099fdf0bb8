"""Deltas between two runs: the same cells, metric by metric, under the declared labels.

Each row names its cell (probe, model, task, the cell's parameters and seed), so
rows of cells that differ only in a parameter never look like repeats. A banner
lists every way the runs differ that makes their numbers hard to compare
(preset, device, code version: ``results.run_differences``).
"""
from __future__ import annotations

import json
import numbers

import numpy as np
import pandas as pd

from fcnprobe.report.data import RunData, table_html
from fcnprobe.report.env import environment
from fcnprobe.results import run_differences

SKIP = {"seed", "wall_time_s"}


def _params(row: pd.Series) -> str:
    """The cell's parameters as ``key=value`` pairs, sorted, or '—' when it has none."""
    pairs = [(k[len("param_"):], row[k]) for k in sorted(row.index) if k.startswith("param_")
             and not (isinstance(row[k], float) and np.isnan(row[k])) and row[k] is not None]
    return ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v, default=_plain)}" for k, v in pairs) or "—"


def _plain(v):
    return v.item() if isinstance(v, np.generic) else str(v)


def metric_deltas(a: RunData, b: RunData) -> pd.DataFrame:
    """Long table: one row per (cell, numeric metric) present and ok in both runs."""
    if a.df.empty or b.df.empty:
        return pd.DataFrame()
    names = {**a.labels, **b.labels}  # the declared label, not the raw metric name
    ok_a = a.df[a.df.status == "ok"].set_index("cell_id")
    ok_b = b.df[b.df.status == "ok"].set_index("cell_id")
    rows = []
    for cid in sorted(set(ok_a.index) & set(ok_b.index)):
        ra, rb = ok_a.loc[cid], ok_b.loc[cid]
        cell = {"probe": ra.probe, "model": ra.model, "task": ra.task, "params": _params(ra), "seed": ra.seed}
        for m in ra.index:
            va, vb = ra.get(m), rb.get(m)
            if m in SKIP or m.startswith(("param_", "array_")) or not _num(va) or not _num(vb):
                continue
            va, vb = float(va), float(vb)
            rows.append({**cell, "metric": names.get(m, m), "run A": va, "run B": vb, "B - A": vb - va,
                         "relative": (vb - va) / abs(va) if va else None})
    return pd.DataFrame(rows)


def _num(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and v == v


def differences(a: RunData, b: RunData) -> list[str]:
    """The banner's lines: how the runs' settings, devices and code differ (empty when they do not)."""
    lines = run_differences(a.manifest, b.manifest)
    if any("device" in line for line in lines):
        lines.append("timings from different devices are not comparable")
    return lines


def render_comparison(a: RunData, b: RunData) -> str:
    deltas = metric_deltas(a, b)
    changed = deltas[deltas["B - A"].abs() > 0] if not deltas.empty else deltas
    keys = ["probe", "model", "task", "params", "seed", "metric"]
    return environment().get_template("compare.html.j2").render(
        run_a=str(a.root), run_b=str(b.root), banner=differences(a, b),
        n_common=len(deltas), table=table_html(changed.sort_values(keys)) if not changed.empty else None)
