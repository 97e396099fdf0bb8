"""Loading a run for the report: the records frame, the manifest, declarations and array access.

The metric declarations (labels, units, directions) come from the manifest,
where the sweep stores them for every probe it ran (so a probe registered
outside the package is labelled too), and for older runs from the registered
probes themselves (``fcnprobe.probes`` imports no torch). Model categories
come from the manifest's model catalogue, else from the measured TRF (a
finite TRF means no global operation). Also small, torch-free helpers the
sections share (per-probe frames, seed aggregation, number formatting).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fcnprobe.analysis.common import mean_ci95
from fcnprobe.metrics import Metric, from_manifest, labels
from fcnprobe.results import Record, RunStore, records_to_frame


@dataclasses.dataclass
class RunData:
    root: Path
    manifest: dict[str, Any]
    records: list[Record]
    df: pd.DataFrame
    declared: dict[str, dict[str, Metric]] = dataclasses.field(default_factory=dict)  # probe -> name -> Metric

    @classmethod
    def load(cls, root: str | Path) -> "RunData":
        store = RunStore(root)
        records, manifest = store.read_records(), store.read_manifest()
        probes = sorted({r.probe for r in records} | set(manifest.get("probes", [])))
        return cls(Path(root), manifest, records, records_to_frame(records), declared_of(manifest, probes))

    @property
    def labels(self) -> dict[str, str]:
        """Metric name -> human label with unit, over every probe of the run (first declaration wins)."""
        out: dict[str, str] = {}
        for declared in self.declared.values():
            out = {**labels(declared), **out}
        return out

    def ok(self, probe: str, task: str | None = None, variant: str | None = None) -> pd.DataFrame:
        """Records of ``probe`` (and ``task``, and ``variant``) with status ok; empty frame if none."""
        df = self.df
        if df.empty or "probe" not in df:
            return df
        sel = (df.probe == probe) & (df.status == "ok")
        if task is not None:
            sel &= df.task == task
        if variant is not None:
            sel &= col(df, "param_variant") == variant
        return df[sel].dropna(axis=1, how="all")

    def models_in(self, category: str) -> list[str]:
        """Models of the run in ``category`` ('fcn', 'fcn_pool', 'global_op'), sorted."""
        cats = model_categories(self)
        return sorted(m for m, c in cats.items() if c == category)

    def failed(self) -> pd.DataFrame:
        if self.df.empty:
            return self.df
        return self.df[self.df.status != "ok"]

    def array(self, cell_id: str, name: str) -> np.ndarray | None:
        rec = next((r for r in self.records if r.cell_id == cell_id), None)
        if rec is None or name not in rec.arrays:
            return None
        path = self.root / rec.arrays[name]
        return np.load(path, allow_pickle=False) if path.exists() else None

    @property
    def preset(self) -> str:
        return str(self.manifest.get("config", {}).get("preset", "?"))


def declared_of(manifest: dict[str, Any], probes: list[str]) -> dict[str, dict[str, Metric]]:
    """Probe -> declared metrics: the manifest's, else the registered probe's (torch-free import)."""
    stored = manifest.get("declared", {})
    out = {p: from_manifest(stored[p].get("metrics", {})) for p in probes if p in stored}
    missing = [p for p in probes if p not in out]
    if missing:
        from fcnprobe.probes import PROBES, declared_metrics  # no torch: probe modules import it lazily

        out.update({p: declared_metrics(p) for p in missing if p in PROBES})
    return out


def model_categories(run: "RunData") -> dict[str, str]:
    """Model -> category: the manifest's catalogue, else 'fcn' where a record measured a finite TRF
    and 'global_op' where it measured a global one (None)."""
    catalog = run.manifest.get("models", {})
    out = {m: v["category"] for m, v in catalog.items() if v.get("category")}
    measured: dict[str, bool] = {}  # model -> some record measured a finite TRF
    for r in run.records:
        if r.ok and "trf_px" in r.metrics and r.model not in out:
            measured[r.model] = measured.get(r.model, False) or r.metrics["trf_px"] is not None
    return {**out, **{m: "fcn" if finite else "global_op" for m, finite in measured.items()}}


def col(df: pd.DataFrame, name: str, default: Any = None) -> pd.Series:
    """Column ``name`` or a column of ``default``."""
    return df[name] if name in df else pd.Series([default] * len(df), index=df.index, dtype=object)


def seed_mean(df: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    """Mean and 95% CI half-width of ``value`` over seeds, grouped by ``keys``."""
    rows = []
    for key, g in df.groupby(keys, dropna=False, sort=True):
        mean, ci = mean_ci95(pd.to_numeric(g[value], errors="coerce").dropna().tolist())
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))),
                     value: mean, f"{value}_ci95": ci, "n_seeds": len(g)})
    return pd.DataFrame(rows)


def fmt(v: Any, digits: int = 3) -> str:
    """A compact human string for a number (None/NaN -> '—')."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        a = abs(v)
        if a != 0 and (a >= 1e6 or a < 1e-3):
            return f"{v:.{digits - 1}e}"
        return f"{v:.{digits}g}" if a < 1000 else f"{v:,.0f}"
    return str(v)


def _param_label(column: object) -> object:
    """``param_batch`` -> ``batch``: a cell parameter as a column header."""
    text = str(column)
    return text[len("param_"):].replace("_", " ") if text.startswith("param_") else column


def table_html(df: pd.DataFrame, names: dict[str, str] | None = None) -> str:
    """An escaped HTML table (pandas escapes every cell and header); ``names`` relabels columns."""
    names = names or {}
    df = df.rename(columns={c: names.get(c) or _param_label(c) for c in df.columns})
    body = df.map(fmt) if not df.empty else df
    return body.to_html(index=False, escape=True, border=0, classes="data", na_rep="—")
