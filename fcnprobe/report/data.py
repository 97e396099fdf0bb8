"""Loading a run for the report: the records frame, the manifest and array access.

Also small, torch-free helpers the sections share (per-probe frames, seed
aggregation, number formatting).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fcnprobe.analysis.common import mean_ci95
from fcnprobe.results import Record, RunStore, records_to_frame


@dataclasses.dataclass
class RunData:
    root: Path
    manifest: dict[str, Any]
    records: list[Record]
    df: pd.DataFrame

    @classmethod
    def load(cls, root: str | Path) -> "RunData":
        store = RunStore(root)
        records = store.read_records()
        return cls(Path(root), store.read_manifest(), records, records_to_frame(records))

    def ok(self, probe: str, task: str | None = None) -> pd.DataFrame:
        """Records of ``probe`` (and ``task``) with status ok; empty frame if none."""
        df = self.df
        if df.empty or "probe" not in df:
            return df
        sel = (df.probe == probe) & (df.status == "ok")
        if task is not None:
            sel &= df.task == task
        return df[sel].dropna(axis=1, how="all")

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


def table_html(df: pd.DataFrame) -> str:
    """An escaped HTML table (pandas escapes every cell and header)."""
    body = df.map(fmt) if not df.empty else df
    return body.to_html(index=False, escape=True, border=0, classes="data", na_rep="—")
