"""Report section for the learning-rate grid: sensitivity curves and the selected rate per (family, task).

Reads the ``lrgrid`` records (one per model, task and seed; the grid as arrays)
and, for every other probe of the run, the ``lr_source`` each trained record
stored, so the page says which LR table (commit and date) the run's models
trained with. Never imports torch.
"""
from __future__ import annotations

import math

import pandas as pd

from fcnprobe.lr import GRID_HI, GRID_LO, is_flat
from fcnprobe.report import figures as F
from fcnprobe.report.data import RunData, table_html
from fcnprobe.report.sections.base import Section, register_section


def curve_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Long table, one row per (model, task, seed, rate): validation loss and accuracy, straight from the records."""
    rows = []
    for _, r in df.iterrows():
        accs = r.get("val_acc_by_lr")
        accs = accs if isinstance(accs, (list, tuple)) else [None] * len(r["lrs"])
        for lr, loss, acc in zip(r["lrs"], r["val_loss_by_lr"], accs):
            rows.append({"model": r.model, "task": r.task, "seed": r.seed, "lr": float(lr),
                         "val_loss": math.nan if loss is None else loss, "val_acc": math.nan if acc is None else acc,
                         "selected": bool(float(lr) == float(r["lr"]))})
    return pd.DataFrame(rows, columns=["model", "task", "seed", "lr", "val_loss", "val_acc", "selected"])


def _figure(run: RunData, task: str, data: pd.DataFrame) -> F.Figure:
    styles = F.StyleMap.from_models(run.df.model)
    fig, ax = F.new()
    ax = ax[0][0]
    F.plot_band(ax, F.seed_band(data, "model", "lr", "val_loss"), "model", "lr", styles)
    chosen = data[data.selected]
    for model, g in chosen.groupby("model", sort=True):
        ax.scatter(g["lr"], g["val_loss"], s=90, facecolors="none", edgecolors=styles[model]["color"],
                   linewidths=1.5, zorder=5)
    for edge in (GRID_LO, GRID_HI):
        ax.axvline(edge, color="grey", linestyle=":", linewidth=1)
    F.log_axis(ax, "x")
    ax.set(xlabel="peak learning rate (log scale)", ylabel="validation loss (lower is better)")
    ax.legend(fontsize=7, ncols=2)
    cap = (f"{task}: final validation loss against the peak learning rate, one line per family (median over "
           f"seeds, {F.BAND_WORDS} when several); the open circle marks the selected rate, dotted grey lines "
           "the grid's "
           "edges (points beyond them are edge extensions). A curve flat at a high loss means the family learned "
           "nothing at any rate within this budget.")
    return F.render(fig, f"lrgrid-{task}", cap, f"Validation loss against learning rate on {task}", data)


def selected_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per (model, task): the selected rate, its validation scores and whether the grid edge mattered."""
    cols = {"lr": "selected lr", "best_val_loss": "val loss", "best_val_acc_frac": "val acc",
            "edge_extended": "grid extended", "best_at_edge": "still at edge", "steps_count": "steps"}
    keep = ["model", "task", "seed", *[c for c in cols if c in df]]
    out = df[keep].assign(flat=df["val_loss_by_lr"].map(_flat))
    return out.sort_values(["task", "model", "seed"]).rename(columns={**cols, "flat": "flat curve (no signal)"})


def _flat(losses) -> bool | None:
    finite = [v for v in losses if v is not None and math.isfinite(v)] if isinstance(losses, (list, tuple)) else []
    return is_flat(finite) if finite else None


def lr_sources(run: RunData) -> pd.DataFrame:
    """How many trained records of each other probe took their rate from each source."""
    df = run.df
    if df.empty or "lr_source" not in df:
        return pd.DataFrame(columns=["probe", "lr source", "records"])
    other = df[(df.probe != "lrgrid") & df["lr_source"].notna()]
    counts = other.groupby(["probe", "lr_source"]).size().reset_index(name="records")
    return counts.rename(columns={"lr_source": "lr source"})


@register_section("lrgrid", order=5)
def lrgrid_section(run: RunData) -> Section | None:
    df, sources = run.ok("lrgrid"), lr_sources(run)
    if df.empty and sources.empty:
        return None
    sec = Section("lrgrid", "Learning rates: one grid for every family",
                  "Which learning rate does each family need on each task, and how much does it matter?", _METHOD)
    if not df.empty:
        data = curve_frame(df)
        for task in sorted(data.task.unique()):
            sec.figures.append(_figure(run, task, data[data.task == task]))
        sec.tables.append(("Selected learning rate per family and task (lowest validation loss)",
                           table_html(selected_table(df), run.labels)))
        ext = df[df.get("edge_extended", pd.Series(dtype=object)).fillna("none") != "none"]
        if not ext.empty:
            sec.notes.append(f"The grid was extended past an edge in {len(ext)} of {len(df)} cells.")
    else:
        sec.notes.append("This run trained no grid cells. The sensitivity curves behind the committed LR table "
                         "are in the repository's reports/lr/ (index.html: every family and task of the grid).")
    if not sources.empty:
        sec.tables.append(("Where the trained models of this run took their learning rate from",
                           table_html(sources, run.labels)))
    return sec


_METHOD = ("Every family gets the same grid of 6 peak learning rates, log-spaced from 3e-4 to 1e-2, under the "
           "shared schedule (linear warm-up, cosine decay, AdamW) and the same budget. For each (family, task), "
           "all rates start from the same initial weights and see the same training stream; each is scored by "
           "its loss on a fixed validation batch drawn from its own seed, never the held-out set that the "
           "context and shape probes score. The rate with the lowest validation loss is selected; when it is "
           "the grid's smallest or largest, one more rate a log step beyond is trained and the record says so. "
           "The selected rates form the committed LR table that the quick and standard presets read; a flat "
           "curve (no rate beats the worst by more than 1%: nothing was learned at any rate) selects nothing, "
           "and the presets keep the family's default rate there.")
