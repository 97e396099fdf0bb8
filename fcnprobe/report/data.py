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
import re
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from fcnprobe.analysis.common import mean_ci95
from fcnprobe.metrics import Metric, from_manifest, validate_record
from fcnprobe.results import Record, RunStore, records_to_frame


@dataclasses.dataclass
class RunData:
    root: Path
    manifest: dict[str, Any]
    records: list[Record]
    df: pd.DataFrame
    declared: dict[str, dict[str, Metric]] = dataclasses.field(default_factory=dict)  # probe -> name -> Metric
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (file, reason) not shown

    @classmethod
    def load(cls, root: str | Path) -> "RunData":
        """Read the run; a cell file that is unreadable or breaks its probe's declarations is skipped."""
        store = RunStore(root)
        manifest = store.read_manifest()
        check = DeclaredCheck(manifest)
        records, skipped = store.scan(validate=check)
        probes = sorted({r.probe for r in records} | set(manifest.get("probes", [])))
        root = Path(root)
        skipped = [(_relative(f, root), why) for f, why in skipped]
        return cls(root, manifest, records, records_to_frame(records), declared_of(manifest, probes), skipped)

    @property
    def labels(self) -> dict[str, str]:
        """Metric name -> header: label, unit and direction ("count error (objects, lower is better)")."""
        out: dict[str, str] = {}
        for declared in self.declared.values():
            out = {**{n: header(m) for n, m in declared.items()}, **out}
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


def header(m: Metric) -> str:
    """A metric's table header / axis label: its label, then unit and direction in brackets."""
    unit = "" if m.unit in ("fraction", "count") or f"({m.unit})" in m.label else m.unit
    bits = [b for b in (unit, {"higher": "higher is better", "lower": "lower is better"}.get(m.direction)) if b]
    if not bits:
        return m.label
    if m.label.endswith(")"):  # "count error (MAE)" -> "count error (MAE, lower is better)"
        return f"{m.label[:-1]}, {', '.join(bits)})"
    return f"{m.label} ({', '.join(bits)})"


# Column headers that name no metric: keys, cell parameters and counts (anything else must be a declared label)
COLUMN_NAMES = {"n_seeds": "seeds", "param_variant": "variant", "param_head": "head",
                "macs_slope": "log-log slope of MACs against pixels (1 = linear)",
                "latency_slope": "log-log slope of latency against pixels (1 = linear)"}
KEY_HEADERS = frozenset({"model", "model [head]", "probe", "task", "error", "seed", "seeds", "variant", "head",
                         "metric", "run A", "run B", "B - A", "relative", "params"})
# Summary columns that sections derive from declared metrics (intervals, medians, per-design
# aggregates of the difficulty, hierarchy, realarch and lrgrid sections); the one list of them.
DERIVED_HEADERS = frozenset({
    'ERF 50% square / image (init)', 'LR band', 'LR band [CI]', 'MACs at the largest side',
    'MACs exponent vs side', 'TRF against the image', 'abstraction depth (block, median)', 'beats constant',
    'best acc', 'best selectivity', 'blocks', 'constant guess', 'final (without → with)',
    'final score [95% CI]', 'graph vs numeric TRF', 'latency exponent vs side', 'lr source',
    'majority share', 'notes', 'output', 'output stride', 'probed output', 'rate', 'records',
    'seed failures', 'seed failures [CI]', 'shuffled floor', 'steps to target', 'steps to target [CI]',
    '95% interval', 'MACs / training sample', 'samples seen (median)', 'training MACs (median)', 'accuracy', 'seeds',
    'ERF radius at that block (px)',
})
SHAPE_HEADER = re.compile(r"^(\d+×\d+|d=\d+)$")  # contract sizes, shift distances


def allowed_headers(run: "RunData") -> set[str]:
    """Every header a table of this run may carry: declared labels, cell parameters and keys."""
    params = {_param_label(c) for c in run.df.columns if str(c).startswith("param_")}
    return set(run.labels.values()) | params | set(KEY_HEADERS) | set(COLUMN_NAMES.values()) | DERIVED_HEADERS


def header_problems(headers: Iterable[str], run: "RunData") -> list[str]:
    """Headers that are neither a declared metric label nor a key/parameter column."""
    ok = allowed_headers(run)
    return sorted({h for h in headers if h not in ok and not SHAPE_HEADER.match(h)})


class DeclaredCheck:
    """``RunStore.scan``'s validator: a record against its probe's declared metrics and variants.

    A scored metric (one with a direction) or one in a numeric unit must hold a number, or a list
    of numbers when it is an array: a string there would break every table and figure.
    """

    def __init__(self, manifest: dict[str, Any]) -> None:
        self.manifest, self.cache = manifest, {}

    def _declared(self, probe: str) -> tuple[dict[str, Metric], list[str] | None]:
        if probe not in self.cache:
            declared = declared_of(self.manifest, [probe]).get(probe, {})
            variants = self.manifest.get("declared", {}).get(probe, {}).get("variants")
            self.cache[probe] = (declared, variants)
        return self.cache[probe]

    def __call__(self, record: Record) -> str | None:
        declared, variants = self._declared(record.probe)
        if not declared:  # a probe that declares nothing (or is unknown here) is shown as it is
            return None
        problems = validate_record(record, declared, variants if variants else None)
        problems += [f"metric '{n}' ({declared[n].unit}) holds {str(v)[:40]!r}, expected a number"
                     for n, v in record.metrics.items() if n in declared and _numeric(declared[n]) and _not_number(v)]
        return "; ".join(problems) or None


NUMERIC_UNITS = ("px", "ms", "s", "MiB", "GFLOP/s", "samples/s", "GFLOP", "fraction")


def _numeric(m: Metric) -> bool:
    return m.direction != "none" or m.unit in NUMERIC_UNITS


def _not_number(v: Any) -> bool:
    vals = v if isinstance(v, (list, tuple)) else [v]
    return not all(x is None or isinstance(x, (int, float)) for x in vals)  # a flag (bool) counts as 0/1


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


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
    names = {**COLUMN_NAMES, **(names or {})}
    df = df.rename(columns={c: names.get(c) or _param_label(c) for c in df.columns})
    body = df.map(fmt) if not df.empty else df
    return body.to_html(index=False, escape=True, border=0, classes="data", na_rep="—")
