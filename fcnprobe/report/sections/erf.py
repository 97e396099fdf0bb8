"""Report section for the ERF probe: heatmaps, the depth law and the ERF/TRF table."""
from __future__ import annotations

import pandas as pd

from fcnprobe.analysis.common import loglog_slope
from fcnprobe.report import figures as F
from fcnprobe.report import plots as P
from fcnprobe.report.data import RunData, table_html
from fcnprobe.report.sections.base import Section, register_section

TABLE_COLS = ["erf_std_px", "hca_side_px_t50", "hca_side_px_t99", "trf_px", "trf_numeric_px", "erf_trf_ratio"]


def _family_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Records of the every-family sweep (not the depth sweep)."""
    if "param_sweep" in df:
        return df[df["param_sweep"] == "family"]
    return df[df["param_depth"].isna()] if "param_depth" in df else df


def _num(v) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


def erf_panels(run: RunData, df: pd.DataFrame) -> list[P.ErfPanel]:
    """One map per (model, trained): the first record's saved |ERF|, with its TRF and ERF 50% square."""
    if "array_erf_abs" not in df:
        return []
    df = df if "param_trained" in df else df.assign(param_trained=False)
    panels = []
    for (model, trained), g in df.groupby(["model", "param_trained"], sort=True):
        row = g.iloc[0]
        arr = run.array(row.cell_id, "erf_abs")
        if arr is None:
            continue
        r, c = _num(row.get("unit_row_px")), _num(row.get("unit_col_px"))
        panels.append(P.ErfPanel(model, bool(trained), arr, _num(row.get("trf_px")),
                                 _num(row.get("hca_side_px_t50")), None if r is None or c is None else (r, c)))
    return panels


def _trained_note(panels: list[P.ErfPanel]) -> str | None:
    trained = sorted({p.model for p in panels if p.trained})
    if not trained:
        return None
    return (f"Trained maps exist for {', '.join(trained)} only: the ERF probe reuses the weights the context "
            "probe trained on global_cue, and only those models are trained there; every other model is shown "
            "at random init.")


def _depth_figure(df: pd.DataFrame, styles: F.StyleMap) -> tuple[F.Figure | None, list[str]]:
    if "param_depth" not in df:
        return None, []
    sweep = df[df["param_sweep"] == "depth"] if "param_sweep" in df else df[df["param_depth"].notna()]
    if sweep.empty:
        return None, []
    fig, ax = F.new()
    ax, notes, slopes = ax[0][0], [], {}
    for model, g in sweep.groupby("model", sort=True):
        clipped = g.get("trf_numeric_clipped", pd.Series(False, index=g.index)).fillna(False).astype(bool)
        g = g.assign(clipped=clipped).groupby("param_depth")[["erf_std_px", "trf_px", "clipped"]].agg(
            {"erf_std_px": "mean", "trf_px": "mean", "clipped": "any"}).reset_index()
        fit = g[~g.clipped]  # once the field fills the image the std saturates: keep those out of the fit
        slope = slopes[model] = loglog_slope(fit.param_depth, fit.erf_std_px)
        ax.plot(g.param_depth, g.trf_px, label=f"{model} TRF side", color=styles[model]["color"],
                linestyle=":", marker="x")
        notes.append(f"{model}: log-log slope of ERF std against depth = {_f(slope, 3)} over "
                     f"{len(fit)} depths whose field fits in the image ({int(g.clipped.sum())} saturated depths "
                     f"left out; Luo et al. predict 0.5 for random-weight stacks; TRF slope "
                     f"{_f(loglog_slope(g.param_depth, g.trf_px))}).")
    band = F.seed_band(sweep, "model", "param_depth", "erf_std_px")  # median over inits, lowest to highest
    F.plot_band(ax, band, "model", "param_depth", styles, label=lambda m: f"{m} ERF std (slope {_f(slopes[m])})")
    ax.set(xlabel="depth L (layers)", ylabel="ERF std (solid) and TRF side (dotted) (px)")
    F.log_axis(ax, "x")
    F.log_axis(ax, "y")
    ax.legend(fontsize=7)
    return F.render(fig, "erf-depth", "ERF std (solid) against TRF side (dotted) on log-log axes: a solid line "
                    "flatter than its dotted twin means the ERF fills less of the TRF as depth grows (median over "
                    f"inits, {F.BAND_WORDS.replace('seed', 'init')} where there are several).",
                    "ERF standard deviation and TRF side against depth, log-log", sweep[
                        ["model", "seed", "param_depth", "erf_std_px", "trf_px"]].sort_values(
                        ["model", "param_depth", "seed"])), notes


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
    panels = erf_panels(run, fam)
    if panels:
        sec.figures += [P.erf_maps(panels), P.radial_figure(panels, F.StyleMap.from_models(run.df.model))]
        sec.notes += [n for n in [_trained_note(panels)] if n]
    depth, notes = _depth_figure(df, F.StyleMap.from_models(run.df.model))
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
