"""Report section for the global-context probe: accuracy against cue distance vs the TRF."""
from __future__ import annotations

import warnings

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


def _curve(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Seed-mean accuracy per bin centre for one model's records."""
    accs = np.array([[np.nan if a is None else a for a in r] for r in df["acc_by_dist_frac"]], dtype=float)
    first = df.iloc[0]
    centres = (np.asarray(first["dist_bin_lo_px"], float) + np.asarray(first["dist_bin_hi_px"], float)) / 2
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a bin empty in every seed stays NaN
        return centres, np.nanmean(accs, axis=0)


def _distance_figure(run: RunData, task: str) -> F.Figure | None:
    df = run.ok("context", task)
    if df.empty or "acc_by_dist_frac" not in df:
        return None
    fig, ax = F.new()
    ax = ax[0][0]
    for i, (model, g) in enumerate(df.groupby("model", sort=True)):
        x, y = _curve(g)
        ax.plot(x, y, label=model.replace("$", r"\$"), **F.style(i))
        radius = reach_of(g.iloc[0])
        if radius is not None:
            ax.axvline(radius, color=F.OKABE_ITO[i % 8], linestyle=":", linewidth=1)
    ax.axhline(float(df["chance_frac"].mean()), color="grey", linestyle="--", linewidth=1, label="chance")
    if "pooled_ceiling_frac" in df and df["pooled_ceiling_frac"].notna().any():
        ax.axhline(float(df["pooled_ceiling_frac"].mean()), color="black", linestyle=(0, (1, 2)), linewidth=1,
                   label="ceiling of a pooled local model")
    ax.set(xlabel="cue distance (px, Chebyshev, bin centre)", ylabel="held-out accuracy", ylim=(0, 1.02))
    ax.legend(fontsize=7, ncols=2)
    alt = f"Accuracy against cue distance on {task} for {', '.join(sorted(df.model.unique()))}"
    cap = (f"{task}: accuracy per distance bin (mean over seeds). Dotted verticals: each local "
           f"model's reach on this task (TRF radius; TRF + cue size for pairs of cues) in its colour; "
           f"dashed grey: chance; dotted black, where shown: the best accuracy any translation-invariant "
           f"sum of local functions can reach beyond its reach.")
    return F.to_svg(fig, alt, cap)


def _shift(run: RunData) -> tuple[F.Figure | None, str | None]:
    df = run.ok("context", "shift")
    if df.empty or "param_distance" not in df:
        return None, None
    tab = df.pivot_table(index="model", columns="param_distance", values="acc_frac", aggfunc="mean")
    fig, ax = F.new()
    ax = ax[0][0]
    for i, (model, row) in enumerate(tab.iterrows()):
        ax.plot(row.index, row.values, label=model, **F.style(i))
    ax.axhline(float(df["chance_frac"].mean()), color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set(xlabel="shift distance d (px)", ylabel="held-out accuracy", ylim=(0, 1.02))
    ax.legend(fontsize=7)
    cap = "shift: one model trained per distance d; output at p must copy the input class at p+d."
    fig_ = F.to_svg(fig, "Accuracy against shift distance per model", cap)
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
