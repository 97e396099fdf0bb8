"""Report section for the cost probe: cost against resolution, slopes, roofline, Pareto."""
from __future__ import annotations

import pandas as pd

from fcnprobe.analysis.common import loglog_slope
from fcnprobe.report import figures as F
from fcnprobe.report import plots as P
from fcnprobe.report.data import RunData, table_html
from fcnprobe.report.evidence import distance_summary
from fcnprobe.report.sections.base import Section, register_section

AT_SIZE = 64  # the size of the per-family table, as in the closing note


def _forward(run: RunData) -> pd.DataFrame:
    df = run.ok("cost", variant="forward")
    if df.empty or "param_size" not in df:
        return pd.DataFrame()
    if "forward_ok" in df:
        df = df[df.forward_ok != False]  # noqa: E712
    return df.assign(pixels=df["param_size"].astype(float) ** 2)


def _batch1(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["param_batch"] == df["param_batch"].min()] if "param_batch" in df else df


def _scaling_figure(df: pd.DataFrame, styles: F.StyleMap, names: dict[str, str]) -> tuple[F.Figure, pd.DataFrame]:
    b1 = _batch1(df)
    fig, axes = F.new(9, 3.4, ncols=2)
    rows = []
    for model, g in b1.groupby("model", sort=True):
        iqr = g["latency_ms_iqr"] if "latency_ms_iqr" in g else pd.Series(0.0, index=g.index)
        g = g.assign(latency_ms_iqr=iqr).groupby("pixels")[["macs", "latency_ms_median", "latency_ms_iqr"]].mean()
        g = g.reset_index()
        s_mac, s_t = loglog_slope(g.pixels, g.macs), loglog_slope(g.pixels, g.latency_ms_median)
        axes[0][0].plot(g.pixels, g.macs, label=f"{model} ({_s(s_mac)})", **styles[model])
        F.errorbar_iqr(axes[0][1], g.pixels, g.latency_ms_median, g.latency_ms_iqr, styles[model],
                       f"{model} ({_s(s_t)})")
        rows.append({"model": model, "macs_slope": s_mac, "latency_slope": s_t})
    ylabs = (names.get("macs", "MACs"), f"{names.get('latency_ms_median', 'latency (ms)')}, batch 1, bars: IQR")
    for ax, ylab in zip(axes[0], ylabs):
        ax.set(xlabel="pixels (H×W)", ylabel=ylab)
        F.log_axis(ax, "x")
        F.log_axis(ax, "y")
        ax.legend(fontsize=6)
    cols = [c for c in ("model", "param_size", "pixels", "seed", "macs", "latency_ms_median", "latency_ms_iqr")
            if c in b1]
    fig_ = F.render(fig, "cost-scaling", "Cost against resolution on log-log axes: a line steeper than its "
                    "neighbours grows faster with the image; the legend gives each slope (1 = linear in pixels, "
                    "2 = quadratic) and the latency bars are one IQR long.",
                    "Log-log plots of MACs and latency against pixel count per family",
                    b1[cols].sort_values(cols[:3]))
    return fig_, pd.DataFrame(rows)


def _s(v) -> str:
    return "—" if v is None else f"slope {v:.2f}"


def _table_at(df: pd.DataFrame, names: dict[str, str]) -> str | None:
    at = df[df["param_size"] == AT_SIZE]
    if at.empty:
        return None
    cols = [c for c in ("param_batch", "params_count", "macs", "latency_ms_median", "latency_ms_iqr",
                        "samples_per_s", "peak_mem_mb", "roofline_frac") if c in at]
    return table_html(at[["model", *cols]].sort_values(["model", *cols[:1]]), names)


def _pareto(run: RunData, df: pd.DataFrame, styles: F.StyleMap) -> F.Figure | None:
    acc = distance_summary(run, "global_cue", radius_of="fcn")
    if acc.empty or df.empty:
        return None
    base = df[(df["param_size"] == 32) & (df["param_batch"] == df["param_batch"].min())]
    macs = base.groupby("model")["macs"].mean()
    acc = acc[acc.model.isin(macs.index)]
    if acc.empty:
        return None
    fig, ax = F.new(6, 3.6)
    ax = ax[0][0]
    for row in acc.itertuples():
        st = styles[row.model]
        ax.scatter(macs[row.model], row.beyond, label=row.model, color=st["color"], marker=st["marker"], s=40)
    ax.set(xlabel="MACs per 32×32 image (lower is better)",
           ylabel="global_cue accuracy beyond fcn's reach (higher is better)", ylim=(0, 1.02))
    F.log_axis(ax, "x")
    ax.legend(fontsize=7)
    data = pd.DataFrame({"model": acc.model, "macs": [macs[m] for m in acc.model], "acc_beyond_fcn_reach": acc.beyond})
    return F.to_svg(fig, "Scatter of accuracy beyond the plain FCN's TRF against MACs per family",
                    "Pareto view: what global context costs. Up and to the left is better. Accuracy comes "
                    "from the context probe at its preset's width; MACs from the cost probe at the default "
                    "width, so read the x axis as relative cost between families.", "cost-pareto", data)


@register_section("cost", order=40)
def cost_section(run: RunData) -> Section | None:
    df = _forward(run)
    if df.empty:
        return None
    styles = F.StyleMap.from_models(run.df.model)
    sec = Section("cost", "Cost: FLOPs, latency, memory and their growth with resolution",
                  "What does each design cost, and how does the cost grow with the image?", _METHOD)
    if {"macs", "latency_ms_median"} <= set(df.columns):
        fig, slopes = _scaling_figure(df, styles, run.labels)
        sec.figures.append(fig)
        sec.tables.append(("Log-log slopes against pixel count (batch 1)", table_html(slopes)))
    tab = _table_at(df, run.labels)
    if tab:
        sec.tables.append((f"Per family at {AT_SIZE}×{AT_SIZE}", tab))
    if "peak_mem_mb" in df:
        mem = P.memory_figure(_batch1(df), styles)
        sec.figures += [mem] if mem else []
    pareto = _pareto(run, df, styles)
    if pareto:
        sec.figures.append(pareto)
    gemm = run.ok("cost", variant="roofline")
    if not gemm.empty and "gemm_gflops_per_s" in gemm:
        sec.notes.append(f"Roofline ceiling: a large sgemm reached {gemm.gemm_gflops_per_s.iloc[0]:.1f} GFLOP/s "
                         "on this device in this run; 'fraction of the sgemm rate' is each model's "
                         "achieved fraction of it.")
    return sec


_METHOD = ("FLOPs are counted with fvcore plus handles for the ops it misses, cross-checked with torch's "
           "FlopCounterMode; one multiply-add is one MAC = 2 FLOPs. Latency is measured with "
           "torch.utils.benchmark in eval mode under inference_mode after a warm-up, with CUDA synchronised "
           "before reading the clock; the table reports the median and IQR over the measured runs. Models are "
           "built at 32×32 and evaluated at larger sizes (cnn_fc cannot, and is absent there).")
