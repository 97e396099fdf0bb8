"""Report section for the hierarchy probe (claim 1): linear-probe selectivity against depth, trained and at init.

One figure per attribute task: selectivity (probe accuracy - control-task
accuracy, Hewitt & Liang 2019) against relative depth (block index / (blocks -
1)), trained models left, the same models at init right. A table gives each
model's abstraction depth (first block whose selectivity reaches 90% of its
best), the ERF radius of that block, best accuracy and best selectivity, with
the shuffled-label floor. A second figure per task gives each block's ERF
radius against depth: how global the layer is, beside how abstract.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from fcnprobe.report import figures as F
from fcnprobe.report.data import RunData, table_html
from fcnprobe.report.sections.base import Section, register_section


def curves_frame(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, state, seed, block): the figure's data, straight from the records."""
    rows = []
    for _, r in df.iterrows():
        n = int(r["layers_count"])
        for i in range(n):
            rows.append({"model": r.model, "state": r["param_state"], "seed": r.seed, "block": i,
                         "rel_depth": round(i / max(n - 1, 1), 3), "layer": r["layers"][i],
                         "accuracy": r["probe_acc_by_layer_frac"][i],
                         "control_accuracy": r["control_acc_by_layer_frac"][i],
                         "shuffled_accuracy": r["shuffled_acc_by_layer_frac"][i],
                         "selectivity": r["selectivity_by_layer_frac"][i], "erf_radius_px": _at(r, i)})
    return pd.DataFrame(rows)


def _at(r: pd.Series, i: int) -> float:
    """Block i's ERF radius (px), NaN where not measured (token outputs, older records)."""
    radii = r.get("erf_radius_by_layer_px")
    if not isinstance(radii, (list, tuple, np.ndarray)) or i >= len(radii) or radii[i] is None:
        return np.nan
    return float(radii[i])


def _by_state(run: RunData, data, y: str, ylabel: str, **ax_kw):
    """Two panels, trained (left) and at init (right): ``y`` against relative depth per model."""
    styles = F.StyleMap.from_models(run.df.model)
    fig, axes = F.new(width=8.0, ncols=2)
    for ax, state in zip(axes[0], ("trained", "init")):
        part = data[data.state == state]
        if not part.empty:
            F.plot_band(ax, F.seed_band(part, "model", "rel_depth", y), "model", "rel_depth", styles,
                        label=lambda m: m.replace("$", r"\$"))
        ax.set(title=state, xlabel="relative depth (block / last block)", **ax_kw)
    axes[0][0].set_ylabel(ylabel)
    axes[0][0].legend(fontsize=7)
    return fig, axes


def _erf_figure(run: RunData, task: str) -> F.Figure | None:
    """ERF radius against relative depth, trained and at init: how global each block is."""
    df = run.ok("hierarchy", task)
    if df.empty or "erf_radius_by_layer_px" not in df:
        return None
    data = curves_frame(df).dropna(subset=["erf_radius_px"])
    if data.empty:
        return None
    fig, _ = _by_state(run, data, "erf_radius_px", "ERF radius of the block's centre unit (px)")
    cap = (f"{task}: how global each block is, on the same weights and images as the probes above: 2 x the "
           f"ERF std of the block's centre unit (px). Blocks with token or vector outputs have none (attention "
           f"layers: see the mean attention distance). Median over seeds, {F.BAND_WORDS} when several.")
    return F.render(fig, f"hierarchy-{task}-erf", cap, f"ERF radius against depth on {task}", data)


def _figure(run: RunData, task: str) -> F.Figure | None:
    df = run.ok("hierarchy", task)
    if df.empty or "selectivity_by_layer_frac" not in df:
        return None
    data = curves_frame(df)
    fig, axes = _by_state(run, data, "selectivity", "selectivity: probe − control accuracy", ylim=(-0.2, 0.6))
    for ax in axes[0]:
        ax.axhline(0, color="grey", linestyle="--", linewidth=1)
    cap = (f"{task}: how linearly readable the whole-image attribute is from each block's globally pooled "
           f"features, minus a control task that needs only the attribute's ingredients; trained (left) and at "
           f"init (right). Median over seeds, {F.BAND_WORDS} when several.")
    return F.render(fig, f"hierarchy-{task}", cap, f"Probe selectivity against depth on {task}", data)


def _table(run: RunData) -> str | None:
    df = run.ok("hierarchy")
    if df.empty or "abstraction_depth" not in df:
        return None
    rows = []
    for (task, model, state), g in df.groupby(["task", "model", "param_state"], sort=True):
        depth = pd.to_numeric(g["abstraction_depth"], errors="coerce")
        floor = np.mean([np.mean(v) for v in g["shuffled_acc_by_layer_frac"]])
        rows.append({"task": task, "model": model, "state": state, "blocks": int(g["layers_count"].iloc[0]),
                     "abstraction depth (block, median)": None if depth.isna().all() else float(depth.median()),
                     "ERF radius at that block (px)": _erf_at_depth(g),
                     "best acc": g["best_acc_frac"].mean(), "best selectivity": g["best_selectivity_frac"].mean(),
                     "shuffled floor": floor, "majority share": g["chance_frac"].mean(), "seeds": len(g)})
    return table_html(pd.DataFrame(rows), run.labels)


def _erf_at_depth(g: pd.DataFrame) -> float | None:
    """Median over seeds of the ERF radius of the block at each record's abstraction depth."""
    vals = [_at(r, int(r["abstraction_depth"])) for _, r in g.iterrows()
            if pd.notna(r.get("abstraction_depth")) and "erf_radius_by_layer_px" in r]
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.median(vals)) if vals else None


@register_section("hierarchy", order=12)
def hierarchy_section(run: RunData) -> Section | None:
    if run.ok("hierarchy").empty:
        return None
    sec = Section("hierarchy", "Hierarchy: how global and abstract is each layer?",
                  "Does any convolution-only layer carry whole-image information a linear probe can read, and "
                  "does it arrive later, or never, compared with the global-op designs?", _METHOD)
    for task in sorted(run.ok("hierarchy").task.unique()):
        sec.figures += [f for f in (_figure(run, task), _erf_figure(run, task)) if f is not None]
    tab = _table(run)
    if tab:
        sec.tables.append(("Abstraction depth and best selectivity per model (mean over seeds)", tab))
    return sec


_METHOD = ("Linear probes after Alain & Bengio (2016): every block's output of a frozen model is averaged over "
           "space on fresh samples; a closed-form ridge classifier is fit on half and scored on the other half. "
           "Controls after Hewitt & Liang (2019): a shuffled-label floor, and a control task that gives each input "
           "type (the colour pair, the pair of rows, the cue position) a random but consistent label; selectivity "
           "is accuracy minus control accuracy. Trained weights are the context probe's; 'init' is the same "
           "architecture at random init. How global each block is: its ERF radius (2 x the ERF std of the "
           "block's centre unit, on the same weights and images); attention models also record the mean attention "
           "distance per layer (Raghu et al. 2021). The claim-1 card lists the abstraction depths beside its verdict.")
