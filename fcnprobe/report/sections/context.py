"""Report section for the global-context probe: accuracy against cue distance vs the TRF.

Per binned task, three views of the same bins: accuracy against distance in px,
against distance / TRF radius (1 = the edge of what a pixel's TRF holds) and
against distance / the task's reach (for pair tasks the reach adds the cue size:
a window holds both objects up to reach). A model whose line stays high right
of 1 on the reach axis uses context beyond its TRF; the RF-covering conv nets
(dilated_deep, fcn_encdec_deep, fcn_pyramid) never get right of 1, so for them
the question is whether they stay high at all (claim 3). A fourth view divides
by the ERF radius (2 x the ERF std) that the erf probe measured on the very
weights each context cell trained (its ``weights_cell``); cells without such an
ERF record are left out of that view.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from fcnprobe.report import figures as F
from fcnprobe.report.claims13 import Thresholds
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


ERF_RADIUS_STDS = 2.0  # the ERF radius is 2 ERF std (as measure.hierarchy's); the report cannot import torch


def erf_radii(run: RunData) -> dict[str, float]:
    """ERF radius (px) of each context cell's trained weights, keyed by the context cell id (erf records)."""
    df = run.ok("erf")
    if df.empty or not {"weights_cell", "weights_source", "erf_std_px"} <= set(df.columns):
        return {}
    df = df[df["weights_cell"].notna() & (df["weights_source"] == "context")]
    return {c: ERF_RADIUS_STDS * float(v) for c, v in zip(df["weights_cell"], df["erf_std_px"]) if pd.notna(v)}


def bins_frame(df: pd.DataFrame, erf: dict[str, float] | None = None) -> pd.DataFrame:
    """Long table of one row per (model, seed, distance bin): the figure's data, straight from the records."""
    rows, erf = [], erf or {}
    for _, r in df.iterrows():
        for lo, hi, acc in zip(r["dist_bin_lo_px"], r["dist_bin_hi_px"], r["acc_by_dist_frac"]):
            rows.append({"model": r.model, "seed": r.seed, "dist_bin_lo_px": lo, "dist_bin_hi_px": hi,
                         "bin_centre_px": (lo + hi) / 2, "acc_frac": np.nan if acc is None else acc,
                         "reach_px": reach_of(r), "chance_frac": r.get("chance_frac"),
                         "trf_radius_px": r.get("trf_radius_px"), "erf_radius_px": erf.get(r.cell_id, np.nan)})
    out = pd.DataFrame(rows)
    if not out.empty:
        for col, by in (("dist_over_trf_radius", "trf_radius_px"), ("dist_over_reach", "reach_px"),
                        ("dist_over_erf_radius", "erf_radius_px")):
            den = pd.to_numeric(out[by], errors="coerce")
            out[col] = (out["bin_centre_px"] / den.where(den > 0)).round(3)
    return out


RATIO_AXES = {"dist_over_trf_radius": "distance ÷ TRF radius (1 = edge of the TRF)",
              "dist_over_reach": "distance ÷ the task's reach (1 = farthest a window holds both ends)",
              "dist_over_erf_radius": "distance ÷ ERF radius (2 ERF std, measured on the same trained weights)"}
_RATIO_WHAT = {"dist_over_trf_radius": "TRF radius", "dist_over_reach": "reach on this task",
               "dist_over_erf_radius": "ERF radius (2 x the ERF std of the same trained weights, from the erf probe)"}


def _ratio_figure(run: RunData, task: str, x: str) -> F.Figure | None:
    """Accuracy against distance normalised by each model's TRF radius or reach; global models are left out."""
    df = run.ok("context", task)
    if df.empty or "acc_by_dist_frac" not in df:
        return None
    data = bins_frame(df, erf_radii(run) if x == "dist_over_erf_radius" else None).dropna(subset=[x])
    if data.empty:
        return None
    styles = F.StyleMap.from_models(run.df.model)
    fig, ax = F.new()
    ax = ax[0][0]
    F.plot_band(ax, F.seed_band(data, "model", x, "acc_frac"), "model", x, styles,
                label=lambda m: m.replace("$", r"\$"))
    ax.axvline(1.0, color="grey", linestyle=":", linewidth=1)
    ax.axhline(float(df["chance_frac"].mean()), color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set(xlabel=RATIO_AXES[x], ylabel="held-out accuracy (higher is better)", ylim=(0, 1.02))
    ax.legend(fontsize=7, ncols=2)
    who = ("each trained cell's" if x == "dist_over_erf_radius" else
           "each finite-TRF model's")
    right = ("the cue lies beyond where most of the centre unit's gradient falls" if x == "dist_over_erf_radius"
             else "no window holds both ends; a line that stays high there uses context beyond its TRF")
    cap = (f"{task}: the bins of the first figure, with distance divided by {who} {_RATIO_WHAT[x]} "
           f"(models without one are left out). Right of the dotted line {right}. Median over seeds, {F.BAND_WORDS} "
           f"when several.")
    return F.render(fig, f"context-{task}-{x.replace('_', '-')}", cap, f"Accuracy against {RATIO_AXES[x]} on {task}",
                    data)


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
           f"reach; lines that stay high there use context beyond their TRF. Median over seeds, {F.BAND_WORDS} "
           f"when there are several; dotted black, where shown: the best accuracy any "
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
           "a line that falls to chance at some d cannot see d px away (median over seeds, "
           f"{F.BAND_WORDS} when several).")
    fig_ = F.render(fig, "context-shift", cap, "Accuracy against shift distance per model", data)
    tab.columns = [f"d={int(c)}" for c in tab.columns]
    return fig_, table_html(tab.reset_index(), run.labels)


AT_CHANCE_MARGIN = 0.05  # a shift distance counts as unlearned within this much of chance


def shift_readings(df: pd.DataFrame) -> list[str]:
    """What each model's shift row says, read against its d = 0 control (mean over seeds).

    d = 0 unsolved (mean below the claims' success threshold at the task's chance,
    ``claims13.Thresholds``): the output cannot place single pixels, so the row says nothing about
    context. d = 0 solved and a farther d at chance although the model's receptive field
    covers it (``covers_task``): neither resolution nor reach, the copy was not learned
    within the budget (the stop reason says when training ended).
    """
    out = []
    for model, g in df.groupby("model", sort=True):
        by_d = g.groupby("param_distance")
        acc, chance = by_d["acc_frac"].mean(), float(g["chance_frac"].mean())
        if 0 not in acc.index:
            continue
        if acc[0] < Thresholds().at(chance)[0]:
            out.append(f"{model} does not solve d = 0 ({acc[0]:.2f}): its output cannot place single pixels, "
                       "so its shift row measures output resolution, not context.")
            continue
        covered = by_d["covers_task"].agg(lambda v: bool(v.fillna(False).astype(bool).all()))
        for d in [d for d in acc.index if d > 0 and acc[d] < chance + AT_CHANCE_MARGIN and covered[d]]:
            steps = by_d["stopped_at_step"].median()[d]
            out.append(f"{model} solves d = 0 ({acc[0]:.2f}) and its receptive field covers d = {d:g}, yet it "
                       f"stays at chance there ({acc[d]:.2f}; median {steps:g} steps): neither resolution nor "
                       "reach, the copy was not learned within the budget.")
    return out


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
        sec.figures += [f for f in (_ratio_figure(run, task, x) for x in RATIO_AXES) if f is not None]
        if tab:
            sec.tables.append((f"{task}: accuracy within and beyond each model's reach (mean over seeds)", tab))
    fig, tab = _shift(run)
    if fig:
        sec.figures.append(fig)
        sec.tables.append(("shift: accuracy per distance", tab))
        sec.notes += shift_readings(run.ok("context", "shift"))
    return sec


_METHOD = ("Designs (issue 15): FCN = convolution only (no global pooling, FC layer or attention anywhere: "
           "fcn, dilated, fcn_encdec, coordconv and the RF-covering dilated_deep, fcn_encdec_deep, fcn_pyramid); "
           "FCN+pool = an FCN answering an image-level task through a parameter-free global pool at the output; "
           "global-op = global pooling, attention or an FC layer inside the network (fcn_gap, nonlocal, cnn_fc, "
           "attention). Tasks whose pooled-local ceiling is 1 (global_cue, left_of with zero padding) are controls. "
           "Every model is trained with AdamW for the same number of steps and batch size per preset "
           "(the learning rate from fcnprobe.lr, recorded with its source per cell), on data generated on the fly from "
           "a seed, and evaluated on held-out samples. Accuracy is binned by Chebyshev distance from "
           "the cue; 'within' and 'beyond' split the held-out samples at the model's reach: its TRF "
           "radius for a dense cue, TRF + cue size for a pair of cues. Intervals in the verdicts resample "
           "held-out pairs (one seed) or use a t interval over seeds. The failure distance is the first bin below "
           "the midpoint of chance and 1.")
