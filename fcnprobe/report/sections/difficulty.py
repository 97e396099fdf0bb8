"""Report section for the difficulty probe (claim 4 as difficulty): loss curves and learning-rate
sensitivity per (trunk, head) design, the four difficulty metrics with intervals, and what deep
supervision buys the FCN trunk. Reads records only (``analysis.difficulty``); never imports torch.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from fcnprobe.analysis.difficulty import BAND_FRAC, MIN_FAILURE_SEEDS, OUTPUTS, TARGET_FRAC, with_design
from fcnprobe.report import figures as F
from fcnprobe.report.claim4 import cell, interval, preset_note, tables
from fcnprobe.report.data import RunData, fmt, table_html
from fcnprobe.report.sections.base import Section, register_section

METHOD = (
    "Every trunk (fcn, cnn_fc, attention) is trained with every head design (direct regression on standardised "
    "targets = linear, soft-argmax, heatmap decode, pooling adapter = gap) on multi_output and locate, at every "
    "rate of one shared grid and every seed, for the whole budget (early stopping never applies). Loss: equal "
    "weights on the outputs (findings BCE, standardised count/size MSE, standardised box L1 or box-mask BCE for "
    "heatmap decode); no learned uncertainty weights. Each design's rate is chosen on a validation stream; the "
    f"metrics: steps to target (first evaluation at constant + {TARGET_FRAC:g} x (best design's final - constant), "
    f"censored at the budget), learning-rate band (fraction of the grid within {BAND_FRAC:.0%} of the design's "
    "best gain), seed failure rate (seeds that do not beat the constant guess; Clopper-Pearson interval, "
    f"deciding only with >= {MIN_FAILURE_SEEDS} seeds), and the held-out final score beside the constant guess. "
    "Intervals are 95% t-intervals over seeds. Deep supervision: auxiliary heads on every intermediate FCN layer.")


def minmax_band(rows: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Per design and x: the median over seeds and the band between the lowest and highest seed."""
    long = pd.DataFrame([{"design": r.design, "seed": r.seed, x: xv, y: yv} for r in rows.itertuples()
                         for xv, yv in zip(getattr(r, f"{x}s"), getattr(r, f"{y}s"))])
    return long if long.empty else F.seed_band(long, "design", x, y)


def _plot(band: pd.DataFrame, x: str, ylabel: str, fig_id: str, caption: str, log_x: bool = False) -> F.Figure:
    styles = F.StyleMap.from_models(band["design"])
    fig, ax = F.new(7.0, 3.8)
    ax = ax[0][0]
    F.plot_band(ax, band, "design", x, styles, markevery=max(1, len(band) // max(1, 8 * band.design.nunique())))
    ax.set(xlabel=x.replace("_", " "), ylabel=ylabel)
    if log_x:
        F.log_axis(ax, "x")
    ax.legend(fontsize=6, ncol=2)
    return F.render(fig, fig_id, caption, f"{ylabel} against {x.replace('_', ' ')} per design", band)


def loss_figure(df: pd.DataFrame, task: str, chosen: dict[str, float]) -> F.Figure | None:
    rows = df[[chosen.get(d) == lr for d, lr in zip(df.design, df.lr_value)]]
    band = _loss_band(rows)
    if band.empty:
        return None
    return _plot(band, "step", "training loss (lower is better)", f"difficulty-loss-{task}",
                 f"{task}: training loss per design at its selected rate; line = median over seeds, shaded = "
                 "lowest to highest seed (too few seeds for a quantile band).")


def _loss_band(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows.assign(steps=rows["loss_steps"], losss=rows["loss_curve"])
    rows = rows[[isinstance(v, (list, tuple, np.ndarray)) for v in rows["losss"]]]
    return minmax_band(rows, "step", "loss")


def lr_figure(df: pd.DataFrame, task: str) -> F.Figure | None:
    """Mean normalised validation gain over the outputs against the rate, per design."""
    from fcnprobe.analysis.difficulty import val_gain

    if df.groupby("design")["lr_value"].nunique().max() < 2:  # no design saw more than one rate
        return None
    gains = [float(np.mean([val_gain(r, o) or 0.0 for o in OUTPUTS[task]])) for _, r in df.iterrows()]
    rows = df.assign(gain=gains).groupby(["design", "seed"]).agg(lrs=("lr_value", list), gains=("gain", list))
    band = minmax_band(rows.reset_index(), "lr", "gain")
    return _plot(band, "lr", "final gain / headroom (validation)", f"difficulty-lr-{task}",
                 f"{task}: learning-rate sensitivity: the final validation gain over the constant guess as a "
                 "fraction of the headroom, mean over outputs; 1 = perfect, 0 = the constant guess; median over "
                 "seeds, shaded lowest to highest seed.", log_x=True)


# The columns the claim 4 card quotes, cell for cell (``claim4.cell``).
TABLE_METRICS = {"steps": "steps to target [CI]", "band": "LR band [CI]", "fail": "seed failures [CI]"}


def metric_table(tab: pd.DataFrame) -> str:
    out = pd.DataFrame({
        "design": tab["design"], "output": tab["output"], "rate": tab["lr"], "seeds": tab["n_seeds"],
        "final score [95% CI]": tab.apply(lambda r: cell(r, "final"), axis=1), "constant guess": tab["const"],
        "beats constant": tab["beats"],
        **{head: tab.apply(lambda r, k=key: cell(r, k), axis=1) for key, head in TABLE_METRICS.items()}})
    return table_html(out)


def deepsup_table(tab: pd.DataFrame) -> str | None:
    """fcn with and without deep supervision per head and output: each metric side by side."""
    ds = tab[tab.deepsup]
    if ds.empty:
        return None
    rows = []
    for _, r in ds.iterrows():
        base = tab[(tab.model == r.model) & (tab["head"] == r["head"]) & ~tab.deepsup & (tab.output == r.output)]
        if base.empty:
            continue
        b = base.iloc[0]
        rows.append({"design": b.design, "output": r.output, "final (without → with)": f"{interval(b, 'final')} → "
                     f"{interval(r, 'final')}", "steps to target": f"{interval(b, 'steps')} → {interval(r, 'steps')}",
                     "LR band": f"{interval(b, 'band')} → {interval(r, 'band')}",
                     "seed failures": f"{fmt(b.fail, 2)} → {fmt(r.fail, 2)}"})
    return table_html(pd.DataFrame(rows)) if rows else None


@register_section("difficulty", order=36)
def difficulty_section(run: RunData) -> Section | None:
    df = run.ok("difficulty")
    if df.empty:
        return None
    sec = Section("difficulty", "Claim 4 — is training structured outputs harder for FCNs?",
                  "Do FCN designs need more steps, a narrower learning-rate band or more lucky seeds than the "
                  "best other design to learn the same structured output?", METHOD)
    df = with_design(df)
    for task, tab in tables(run).items():
        part = df[df.task == task]
        chosen = dict(zip(tab.design, tab.lr))
        sec.figures += [f for f in (loss_figure(part, task, chosen), lr_figure(part, task)) if f is not None]
        sec.tables.append((f"{task}: difficulty metrics per (trunk, head) at its selected rate (* = fewer than "
                           f"{MIN_FAILURE_SEEDS} seeds: reported, decides nothing)", metric_table(tab)))
        ds = deepsup_table(tab)
        if ds:
            sec.tables.append((f"{task}: what deep supervision buys the FCN trunk (without → with)", ds))
    note = preset_note(run)
    if note:
        sec.notes.append(f"Preset {run.preset}: {note}.")
    if "diverged" in df and df["diverged"].astype(bool).any():
        sec.notes.append(f"{int(df['diverged'].astype(bool).sum())} cells diverged (non-finite loss); they count "
                         "as outside the learning-rate band and as failed seeds.")
    return sec
