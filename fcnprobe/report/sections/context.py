"""Report section for the global-context probe: accuracy against cue distance vs the TRF."""
from __future__ import annotations

import numpy as np
import pandas as pd

from fcnprobe.report import figures as F
from fcnprobe.report.data import RunData, table_html
from fcnprobe.report.evidence import reach_of, distance_summary
from fcnprobe.report.sections.base import Section, register_section



def binned_tasks(run: RunData) -> list[str]:
    """Tasks whose context records hold more than one distance bin (read from the data, not by name)."""
    df = run.ok("context")
    if df.empty or "acc_by_dist_frac" not in df:
        return []
    many = df["acc_by_dist_frac"].map(lambda v: isinstance(v, (list, tuple)) and len(v) > 1)
    return sorted(df[many].task.unique())


def bins_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Long table of one row per (model, seed, distance bin): the figure's data, straight from the records."""
    rows = []
    for _, r in df.iterrows():
        for lo, hi, acc in zip(r["dist_bin_lo_px"], r["dist_bin_hi_px"], r["acc_by_dist_frac"]):
            rows.append({"model": r.model, "seed": r.seed, "dist_bin_lo_px": lo, "dist_bin_hi_px": hi,
                         "bin_centre_px": (lo + hi) / 2, "acc_frac": np.nan if acc is None else acc,
                         "reach_px": reach_of(r), "chance_frac": r.get("chance_frac")})
    return pd.DataFrame(rows)


def _distance_figure(run: RunData, task: str) -> F.Figure | None:
    df = run.ok("context", task)
    if df.empty or "acc_by_dist_frac" not in df:
        return None
    styles, data = F.StyleMap.from_models(run.df.model), bins_frame(df)
    fig, ax = F.new()
    ax = ax[0][0]
    F.plot_band(ax, F.seed_band(data, "model", "bin_centre_px", "acc_frac"), "model", "bin_centre_px", styles,
                label=lambda m: m.replace("$", r"\$"))
    for model, g in df.groupby("model", sort=True):
        radius = reach_of(g.iloc[0])
        if radius is not None:
            ax.axvline(radius, color=styles[model]["color"], linestyle=":", linewidth=1)
    ax.axhline(float(df["chance_frac"].mean()), color="grey", linestyle="--", linewidth=1, label="chance")
    if "pooled_ceiling_frac" in df and df["pooled_ceiling_frac"].notna().any():
        ax.axhline(float(df["pooled_ceiling_frac"].mean()), color="black", linestyle=(0, (1, 2)), linewidth=1,
                   label="ceiling of a pooled local model")
    ax.set(xlabel="cue distance (px, Chebyshev, bin centre)", ylabel="held-out accuracy (higher is better)",
           ylim=(0, 1.02))
    ax.legend(fontsize=7, ncols=2)
    alt = f"Accuracy against cue distance on {task} for {', '.join(sorted(df.model.unique()))}"
    cap = (f"{task}: lines that drop to chance (dashed grey) right of their dotted vertical fail beyond their "
           f"reach; lines that stay high there use context beyond their TRF. Median over seeds, shaded 95% "
           f"band when there are several; dotted black, where shown: the best accuracy any "
           f"translation-invariant sum of local functions can reach.")
    return F.render(fig, f"context-{task}-distance", cap, alt, data)


def _shift(run: RunData) -> tuple[F.Figure | None, str | None]:
    df = run.ok("context", "shift")
    if df.empty or "param_distance" not in df:
        return None, None
    tab = df.pivot_table(index="model", columns="param_distance", values="acc_frac", aggfunc="mean")
    fig, ax = F.new()
    ax, styles = ax[0][0], F.StyleMap.from_models(run.df.model)
    data = df[["model", "seed", "param_distance", "acc_frac"]].sort_values(["model", "param_distance", "seed"])
    F.plot_band(ax, F.seed_band(data, "model", "param_distance", "acc_frac"), "model", "param_distance", styles)
    ax.axhline(float(df["chance_frac"].mean()), color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set(xlabel="shift distance d (px)", ylabel="held-out accuracy (higher is better)", ylim=(0, 1.02))
    ax.legend(fontsize=7)
    cap = ("shift: one model trained per distance d, whose output at p must copy the input class at p+d; "
           "a line that falls to chance at some d cannot see d px away (median over seeds, 95% band when several).")
    fig_ = F.render(fig, "context-shift", cap, "Accuracy against shift distance per model", data)
    tab.columns = [f"d={int(c)}" for c in tab.columns]
    return fig_, table_html(tab.reset_index(), run.labels)


def _summary_table(run: RunData, task: str) -> str | None:
    s = distance_summary(run, task)
    if s.empty:
        return None
    s = s.rename(columns={"within": "acc within reach", "beyond": "acc beyond reach", "min_acc": "min bin acc",
                          "acc": "overall acc", "radius_px": "reach (px)", "failure_dist_px": "fails at (px, median)",
                          "ceiling": "pooled ceiling"}).dropna(axis=1, how="all")
    return table_html(s, run.labels)


@register_section("context", order=10)
def context_section(run: RunData) -> Section | None:
    if run.ok("context").empty:
        return None
    sec = Section("context", "Global context: accuracy against cue distance",
                  "Can each model use information farther away than its theoretical receptive field "
                  "(TRF), and where does it stop?", _METHOD)
    for task in binned_tasks(run):
        fig, tab = _distance_figure(run, task), _summary_table(run, task)
        if fig:
            sec.figures.append(fig)
        if tab:
            sec.tables.append((f"{task}: accuracy within and beyond each model's reach (mean over seeds)", tab))
    fig, tab = _shift(run)
    if fig:
        sec.figures.append(fig)
        sec.tables.append(("shift: accuracy per distance", tab))
    return sec


_METHOD = ("Every model is trained with AdamW for the same number of steps and batch size per preset "
           "(one learning rate per family, never tuned per task), on data generated on the fly from "
           "a seed, and evaluated on held-out samples. Accuracy is binned by Chebyshev distance from "
           "the cue; 'within' and 'beyond' split the held-out samples at the model's reach: its TRF "
           "radius for a dense cue, TRF + cue size for a pair of cues. The learning rate of the conv+BN "
           "families (5e-3) was chosen once, by looking at fcn and fcn_gap on global_cue; attention, "
           "nonlocal and fcn_encdec keep untuned defaults. The failure distance is the first bin below the midpoint of chance and 1.")
