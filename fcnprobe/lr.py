"""The learning rate each trained cell uses, and where it came from.

One protocol for every family (issue 13, part 3):

* **The grid.** The same 6 log-spaced peak rates, 3e-4 .. 1e-2 (``lr_grid``), for
  every family and task; a best rate at either edge adds one more log step
  beyond that edge (``extend``), once, and the record says so.
* **The selection.** Per (family, task), the rate with the lowest loss on a
  *validation* stream: data drawn from the ``lrgrid`` probe's own seeds, never
  the held-out set any probe scores (``select``). Ties go to the smaller rate.
  A *flat* curve (no rate beats the worst by more than the convergence rule's 1%,
  ``is_flat``), or a classification grid whose best rate does not beat the
  constant guess's loss by 1% (``learned`` False: nothing was learned at any
  rate), selects nothing: the lookup keeps the family default and says why.
* **The table.** ``write_lr_table(run_dir)`` turns the ``lrgrid`` records of a
  run into a JSON table with its provenance (command, git commit, settings,
  whether the grid was reduced, the records' cell ids). The committed copy is
  ``fcnprobe/data/lr_table.json`` (read at run time, shipped in the wheel) and
  is mirrored, with the grid's records, under ``reports/lr/``.
* **The lookup.** ``learning_rate(model, task, preset)`` returns the table's rate
  for the model (else for its family) on that task at the presets that read the
  table (``TABLE_PRESETS``); otherwise the family default registered in the
  model metadata. The source string names the table (commit and date) or says
  why the default was used; every training record stores it as ``lr_source``.

    >>> lr, source = learning_rate("fcn", "global_cue", "quick")
    >>> path = write_lr_table("runs/lrgrid", out="fcnprobe/data/lr_table.json")

This module imports torch nowhere: the report reads it.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

TABLE_PATH = Path(__file__).resolve().parent / "data" / "lr_table.json"
TABLE_PRESETS = ("quick", "standard", "full")  # smoke (tests) and lrgrid (the grid itself) never read it
# A reduced grid (fewer steps than the presets train) is evidence, not a setting: at 150 steps it
# favours rates (2e-2) never tried at 800, so the presets keep the family default until a full grid runs.
USE_REDUCED = False
GRID_LO, GRID_HI, GRID_POINTS = 3e-4, 1e-2, 6  # the one grid, for every family (issue 13)
# the real grid (the lrgrid preset): quick's families and shape, the context and shape tasks, quick's 800 steps
GRID_FAMILIES = ("fcn", "cnn_fc", "dilated", "attention", "fcn_gap")
GRID_TASKS = ("global_cue", "shift", "same_different", "locate", "multi_output")
GRID_STEPS = 800
TABLE_SCHEMA = 1
DEFAULT_SOURCE = "family default (no LR table row)"


def lr_grid(lo: float = GRID_LO, hi: float = GRID_HI, points: int = GRID_POINTS) -> list[float]:
    """``points`` log-spaced rates from ``lo`` to ``hi`` inclusive, rounded to 3 significant digits."""
    if not (0 < lo < hi) or points < 2:
        raise ValueError(f"lr grid needs 0 < lo < hi and >= 2 points, got {lo}, {hi}, {points}")
    step = (math.log(hi) - math.log(lo)) / (points - 1)
    return [float(f"{math.exp(math.log(lo) + i * step):.3g}") for i in range(points)]


def grid_ratio(grid: Sequence[float]) -> float:
    """The constant ratio between neighbouring grid points."""
    return (grid[-1] / grid[0]) ** (1 / (len(grid) - 1))


def edge_side(grid: Sequence[float], best: float) -> str | None:
    """'low' or 'high' when ``best`` is the grid's smallest or largest rate, else None."""
    if best <= min(grid):
        return "low"
    if best >= max(grid):
        return "high"
    return None


def extend(grid: Sequence[float], side: str) -> float:
    """One log step beyond the ``side`` edge of ``grid``."""
    r = grid_ratio(sorted(grid))
    return float(f"{(min(grid) / r if side == 'low' else max(grid) * r):.3g}")


def select(lrs: Sequence[float], val_losses: Sequence[float | None]) -> int:
    """Index of the rate with the lowest finite validation loss (ties: the smaller rate).

    Raises ValueError when no rate has a finite loss (every run diverged).
    """
    finite = [(loss, lr, i) for i, (lr, loss) in enumerate(zip(lrs, val_losses))
              if loss is not None and math.isfinite(loss)]
    if not finite:
        raise ValueError("no learning rate of the grid gave a finite validation loss")
    return min(finite)[2]


# -- the committed table ---------------------------------------------------------------------------------

def load_table(path: str | Path | None = None) -> dict[str, Any] | None:
    """The LR table at ``path`` (default: the committed one), or None when there is none."""
    p = Path(path) if path is not None else TABLE_PATH
    if not p.exists():
        return None
    table = json.loads(p.read_text())
    if table.get("schema_version") != TABLE_SCHEMA:
        raise ValueError(f"{p}: LR table schema_version {table.get('schema_version')!r}, expected {TABLE_SCHEMA}")
    return table


def table_label(table: dict[str, Any]) -> str:
    """How a record names the table: commit, date, and 'reduced grid' when it was one."""
    commit = str(table.get("commit") or "uncommitted")[:10]
    date = str(table.get("created", "?"))[:10]
    return f"LR table {commit} {date}" + (" (reduced grid)" if table.get("reduced") else "")


def find_row(table: dict[str, Any], model: str, task: str, family: str | None) -> dict[str, Any] | None:
    """The table row for ``model`` on ``task``, else the row of the model's family on ``task``."""
    rows = [r for r in table.get("rows", []) if r.get("task") == task]
    exact = next((r for r in rows if r.get("model") == model), None)
    return exact or next((r for r in rows if family and r.get("family") == family), None)


def learning_rate(model: str, task: str, preset: str, table_path: str | Path | None = None) -> tuple[float, str]:
    """``(lr, source)`` for ``model`` trained on ``task`` at ``preset``; see the module docstring."""
    from fcnprobe.train import family_lr

    if preset not in TABLE_PRESETS:
        return family_lr(model), f"family default (preset {preset} does not read the LR table)"
    table = load_table(table_path)
    if table is None:
        return family_lr(model), "family default (no LR table)"
    if table.get("reduced") and not USE_REDUCED:
        return family_lr(model), f"family default ({table_label(table)} is not used by the presets)"
    row = find_row(table, model, task, _family(model))
    if row is None:
        return family_lr(model), f"{DEFAULT_SOURCE} in {table_label(table)}"
    if row.get("flat") or row.get("learned") is False:
        why = "flat grid curve" if row.get("flat") else "no rate beat the constant guess"
        return family_lr(model), f"family default ({why} for {row['model']}/{task} in {table_label(table)})"
    via = "" if row.get("model") == model else f" via family {row.get('family')}"
    return float(row["lr"]), f"{table_label(table)}: {row['model']}/{task}{via}"


def _family(model: str) -> str | None:
    from fcnprobe.models import MODELS

    return MODELS.meta(model).get("family") if model in MODELS else None


def _learned(recs: list[Any]) -> bool | None:
    """Whether every seed's best rate beat the constant guess (None when no record knows the constant)."""
    flags = [r.metrics.get("learned") for r in recs if r.metrics.get("learned") is not None]
    return all(flags) if flags else None


def is_flat(val_losses: Sequence[float]) -> bool:
    """No rate beat the worst by more than the convergence rule's relative tolerance: the grid has no signal."""
    from fcnprobe.convergence import StopRule

    worst, best = max(val_losses), min(val_losses)
    return worst - best <= StopRule().rel_tol * abs(worst)


def reduction(records: Iterable[Any]) -> list[str]:
    """How the grid of ``records`` trained less than the real grid ([] when it did not): a short budget
    biases the selection (it favours high rates), so a reduced table is never read by the presets."""
    recs = [r for r in records if r.probe == "lrgrid" and r.ok]
    steps = {r.metrics.get("steps_count") for r in recs}
    if any(s is None or s < GRID_STEPS for s in steps):
        return [f"steps {sorted(s for s in steps if s is not None)} < the real grid's {GRID_STEPS}"]
    return []


def missing_cells(records: Iterable[Any]) -> list[str]:
    """The real grid's (family, task) cells with no ok record: a partial table, read for the rows it has
    (a missing row falls back to the family default and the record's ``lr_source`` says so)."""
    have = {(r.model, r.task) for r in records if r.probe == "lrgrid" and r.ok}
    return [f"{m}/{t}" for m in GRID_FAMILIES for t in GRID_TASKS if (m, t) not in have]


# -- building the table from lrgrid records ----------------------------------------------------------------

def table_rows(records: Iterable[Any]) -> list[dict[str, Any]]:
    """One row per (model, task) from ``lrgrid`` records: the lowest mean validation loss over seeds."""
    groups: dict[tuple[str, str], list[Any]] = {}
    for r in records:
        if r.probe == "lrgrid" and r.ok:
            groups.setdefault((r.model, r.task), []).append(r)
    return [_row(model, task, recs) for (model, task), recs in sorted(groups.items())]


def _row(model: str, task: str, recs: list[Any]) -> dict[str, Any]:
    by_lr: dict[float, list[float]] = {}
    for r in recs:
        for lr, loss in zip(r.metrics["lrs"], r.metrics["val_loss_by_lr"]):
            if loss is not None and math.isfinite(loss):
                by_lr.setdefault(float(lr), []).append(float(loss))
    lrs = sorted(by_lr)
    means = [sum(by_lr[lr]) / len(by_lr[lr]) for lr in lrs]
    best = select(lrs, means)
    m = recs[0].metrics
    return {"model": model, "family": m.get("family"), "task": task, "lr": lrs[best], "val_loss": means[best],
            "flat": is_flat(means), "learned": _learned(recs),
            "lrs": lrs, "val_loss_by_lr": means, "edge_extended": sorted({str(r.metrics.get("edge_extended"))
                                                                          for r in recs}),
            "seeds": sorted(r.seed for r in recs), "cell_ids": sorted(r.cell_id for r in recs),
            "steps": m.get("steps_count"), "batch_size": m.get("batch_size_count")}


def write_lr_table(run_dir: str | Path | Sequence[str | Path], out: str | Path | None = None,
                   note: str = "") -> Path:
    """Write the LR table built from the ``lrgrid`` records of ``run_dir`` (one or several); returns its path.

    ``out`` defaults to ``<first run_dir>/lr_table.json``; ``note`` is free text for the
    provenance (e.g. why a grid was reduced). Raises ValueError when there are no lrgrid records.
    """
    from fcnprobe.provenance import now
    from fcnprobe.results import RunStore

    dirs = [run_dir] if isinstance(run_dir, (str, Path)) else list(run_dir)
    records, manifests = [], []
    for d in dirs:
        store = RunStore(d)
        records += [r for r in store.read_records() if r.probe == "lrgrid"]
        manifests.append(store.read_manifest())
    rows = table_rows(records)
    if not rows:
        raise ValueError(f"no ok lrgrid records in {', '.join(map(str, dirs))}")
    table = {"schema_version": TABLE_SCHEMA, "created": now(), **_provenance(records, manifests, dirs),
             "note": note, "selection": "lowest mean validation loss over seeds; ties: the smaller rate",
             "grid": lr_grid(), "rows": rows}
    path = Path(out) if out is not None else Path(dirs[0]) / "lr_table.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table, indent=1, sort_keys=False) + "\n")
    return path


def _provenance(records: list[Any], manifests: list[dict[str, Any]], dirs: list[Any]) -> dict[str, Any]:
    """Commit, command and settings of the runs, and whether the grid is smaller than the lrgrid preset's."""
    shas = sorted({str(r.provenance.get("git_sha")) for r in records})
    dirty = any(r.provenance.get("git_dirty") for r in records)
    configs = [m.get("config", {}) for m in manifests]
    commands = [f"python -m fcnprobe.run lrgrid --preset {c.get('preset', '?')} --out {d}"
                + (f" --models {','.join(c['models'])}" if c.get("models") else "")
                + (f" --tasks {','.join(c['tasks'])}" if c.get("tasks") else "") for c, d in zip(configs, dirs)]
    why = reduction(records)
    return {"commit": shas[0] if len(shas) == 1 else ",".join(shas), "git_dirty": dirty, "commands": commands,
            "reduced": bool(why), "reduced_because": why, "missing_cells": missing_cells(records),
            "records": len(records),
            "devices": sorted({str(r.provenance.get("device_name")) for r in records})}
