"""Report section for the ERF probe: heatmaps, the depth law and the ERF/TRF table."""
from __future__ import annotations

import numpy as np
import pandas as pd

from fcnprobe.analysis.common import loglog_slope
from fcnprobe.report import figures as F
from fcnprobe.report.data import RunData, table_html
from fcnprobe.report.sections.base import Section, register_section

TABLE_COLS = ["erf_std_px", "hca_side_px_t50", "hca_side_px_t99", "trf_px", "trf_numeric_px", "erf_trf_ratio"]


def _family_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Records of the every-family sweep (not the depth sweep)."""
    if "param_sweep" in df:
        return df[df["param_sweep"] == "family"]
    return df[df["param_depth"].isna()] if "param_depth" in df else df


def _heatmaps(run: RunData, df: pd.DataFrame) -> F.Figure | None:
    if "array_erf_abs" not in df:
        return None
    picks = []
    df = df if "param_trained" in df else df.assign(param_trained=False)
    for (model, trained), g in df.groupby(["model", "param_trained"], sort=True):
        arr = run.array(g.iloc[0].cell_id, "erf_abs")
        if arr is not None:
            picks.append((f"{model}\n{'trained' if trained else 'untrained'}", arr))
    if not picks:
        return None
    cols = min(6, len(picks))
    rows = int(np.ceil(len(picks) / cols))
    fig, axes = F.new(1.6 * cols, 1.8 * rows, ncols=cols, nrows=rows)
    for ax, (title, arr) in zip(axes.flat, picks):
        ax.imshow(arr / max(float(arr.max()), 1e-30), cmap="magma", vmin=0, vmax=1)
        ax.set_title(title.replace("$", r"\$"), fontsize=7)
    for ax in axes.flat:
        ax.set_axis_off()
    alt = "Effective receptive field maps, mean absolute input gradient, one panel per family"
    return F.to_png(fig, alt, "ERF maps: mean |d out_centre / d input|, each normalised to its max.")


def _depth_figure(df: pd.DataFrame) -> tuple[F.Figure | None, list[str]]:
    if "param_depth" not in df:
        return None, []
    sweep = df[df["param_sweep"] == "depth"] if "param_sweep" in df else df[df["param_depth"].notna()]
    if sweep.empty:
        return None, []
    fig, ax = F.new()
    ax, notes = ax[0][0], []
    for i, (model, g) in enumerate(sweep.groupby("model", sort=True)):
        clipped = g.get("trf_numeric_clipped", pd.Series(False, index=g.index)).fillna(False).astype(bool)
        g = g.assign(clipped=clipped).groupby("param_depth")[["erf_std_px", "trf_px", "clipped"]].agg(
            {"erf_std_px": "mean", "trf_px": "mean", "clipped": "any"}).reset_index()
        fit = g[~g.clipped]  # once the field fills the image the std saturates: keep those out of the fit
        slope = loglog_slope(fit.param_depth, fit.erf_std_px)
        ax.plot(g.param_depth, g.erf_std_px, label=f"{model} ERF std (slope {_f(slope)})", **F.style(i))
        ax.plot(g.param_depth, g.trf_px, label=f"{model} TRF side", color=F.OKABE_ITO[i % 8],
                linestyle=":", marker="x")
        notes.append(f"{model}: log-log slope of ERF std against depth = {_f(slope, 3)} over "
                     f"{len(fit)} depths whose field fits in the image ({int(g.clipped.sum())} saturated depths "
                     f"left out; Luo et al. predict 0.5 for random-weight stacks; TRF slope "
                     f"{_f(loglog_slope(g.param_depth, g.trf_px))}).")
    ax.set(xscale="log", yscale="log", xlabel="depth L (layers)", ylabel="pixels")
    ax.legend(fontsize=7)
    return F.to_svg(fig, "ERF standard deviation and TRF side against depth, log-log",
                    "ERF std (solid) grows like a power of depth; TRF (dotted) grows linearly."), notes


def _f(v, digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


@register_section("erf", order=20)
def erf_section(run: RunData) -> Section | None:
    df = run.ok("erf")
    if df.empty:
        return None
    sec = Section("erf", "Effective receptive fields", "How much of its theoretical receptive field does "
                  "each model actually use, untrained and trained, and how does that scale with depth?",
                  _METHOD)
    fam = _family_rows(df)
    heat = _heatmaps(run, fam)
    if heat:
        sec.figures.append(heat)
    depth, notes = _depth_figure(df)
    if depth:
        sec.figures.append(depth)
        sec.notes += notes
    cols = [c for c in TABLE_COLS if c in fam]
    if cols:
        keys = ["model"] + (["param_trained"] if "param_trained" in fam else [])
        tab = fam.groupby(keys)[cols].mean(numeric_only=True).reset_index()
        sec.tables.append(("ERF metrics per family (mean over inits and inputs)", table_html(tab, run.labels)))
    return sec


_METHOD = ("The ERF is the gradient of the centre unit of the last spatial map with respect to the input, "
           "averaged over N inputs in one batched backward pass (Luo et al. 2016). The std is the second "
           "moment about the centre per axis; 'hca side' is the side of the smallest centred square holding "
           "t% of the map's mass (RepLKNet's high-contribution area, raw-map variant). The TRF is computed "
           "from the layers and checked against the gradient support of a linearised copy.")
