"""Plot helpers the report sections call: ERF maps, ERF radial profiles, memory and latency.

Each helper takes plain arrays or frames (never records or torch) and returns a
``figures.Figure`` with its caption and its data. The ERF maps share one colour
bar (each map divided by its own maximum), carry a pixel scale and outline the
TRF and the ERF 50% square; the radial profile is the fraction of ERF mass
within Chebyshev radius r of the output unit, the quantity the ERF 50% square
thresholds (Luo et al. 2016; RepLKNet's high-contribution area).
"""
from __future__ import annotations

from typing import Any

import dataclasses

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from fcnprobe.report import figures as F

TRF_EDGE = "#56B4E9"  # sky blue reads on magma's dark end
HCA_EDGE = "#FFFFFF"


@dataclasses.dataclass(frozen=True)
class ErfPanel:
    """One ERF map: ``arr`` is (H, W) mean |d out / d in|; sizes are square sides in px."""

    model: str
    trained: bool
    arr: np.ndarray
    trf_px: float | None = None  # None: global (no finite TRF)
    hca50_px: float | None = None  # ERF 50% square side
    centre: tuple[float, float] | None = None  # (row, col) of the output unit; None: the map centre

    @property
    def title(self) -> str:
        return f"{self.model}\n{'trained' if self.trained else 'untrained'}"

    def unit(self) -> tuple[float, float]:
        h, w = self.arr.shape
        return self.centre if self.centre is not None else (float(h // 2), float(w // 2))


def chebyshev(shape: tuple[int, int], centre: tuple[float, float]) -> np.ndarray:
    """(H, W) Chebyshev distance of every pixel from ``centre``, rounded to whole px."""
    r, c = np.indices(shape)
    return np.rint(np.maximum(np.abs(r - centre[0]), np.abs(c - centre[1]))).astype(int)


def radial_mass(arr: np.ndarray, centre: tuple[float, float]) -> pd.DataFrame:
    """Cumulative fraction of ERF mass within Chebyshev radius r = 0, 1, ... of ``centre``."""
    a = np.abs(np.asarray(arr, float))
    d = chebyshev(a.shape, centre)
    per_ring = np.bincount(d.ravel(), weights=a.ravel())
    total = per_ring.sum()
    mass = np.cumsum(per_ring) / total if total > 0 else np.full(per_ring.shape, np.nan)
    return pd.DataFrame({"radius_px": np.arange(per_ring.size), "mass_frac": mass})


def erf_maps(panels: list[ErfPanel], fig_id: str = "erf-maps", ncols: int = 6) -> F.Figure:
    """Grid of ERF maps with one shared colour bar, px ticks and TRF / ERF-50% outlines."""
    cols = max(1, min(ncols, len(panels)))
    rows = int(np.ceil(len(panels) / cols))
    fig, axes = F.new(1.75 * cols + 0.8, 1.9 * rows + 0.5, ncols=cols, nrows=rows)
    im = None
    for ax, p in zip(axes.flat, panels):
        im = ax.imshow(p.arr / max(float(np.abs(p.arr).max()), 1e-30), cmap="magma", vmin=0, vmax=1)
        _outlines(ax, p)
        _px_ticks(ax, p.arr.shape)
        ax.set_title(p.title.replace("$", r"\$"), fontsize=7)
    for ax in axes.flat[len(panels):]:
        ax.set_axis_off()
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.6, label="|∂out/∂in| ÷ map max")
    fig.legend(handles=_outline_handles(), loc="outside lower center", ncols=2, fontsize=7, frameon=False)
    data = pd.concat([_map_frame(p) for p in panels], ignore_index=True) if panels else pd.DataFrame()
    return F.render(fig, fig_id, _MAP_CAPTION, "Effective receptive field maps, one panel per model", data, "png")


_MAP_CAPTION = ("ERF maps on one colour scale (each map ÷ its maximum): look for how much of the dashed TRF square "
                "the bright mass fills; the solid white square holds half of it (the ERF 50% square). "
                "Axes in px.")


def _outlines(ax, p: ErfPanel) -> None:
    r, c = p.unit()
    for side, edge, ls in ((p.trf_px, TRF_EDGE, "--"), (p.hca50_px, HCA_EDGE, "-")):
        if side is not None and not pd.isna(side):
            ax.add_patch(Rectangle((c - side / 2, r - side / 2), side, side, fill=False, edgecolor=edge,
                                   linestyle=ls, linewidth=1.0))


def _px_ticks(ax, shape: tuple[int, int]) -> None:
    h, w = shape
    ax.set_xticks([0, w // 2, w - 1])
    ax.set_yticks([0, h // 2, h - 1])
    ax.tick_params(labelsize=6, length=2, pad=1)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)


def _outline_handles() -> list:
    return [Line2D([], [], color=TRF_EDGE, linestyle="--", label="TRF (clipped to the image)"),
            Line2D([], [], color="#444444", linestyle="-", label="ERF 50% square")]


def _map_frame(p: ErfPanel) -> pd.DataFrame:
    r, c = np.indices(p.arr.shape)
    norm = p.arr / max(float(np.abs(p.arr).max()), 1e-30)
    return pd.DataFrame({"model": p.model, "trained": p.trained, "row_px": r.ravel(), "col_px": c.ravel(),
                         "erf_abs": p.arr.ravel(), "erf_norm": norm.ravel()})


def radial_figure(panels: list[ErfPanel], styles: F.StyleMap, fig_id: str = "erf-radial") -> F.Figure:
    """ERF mass within radius r per model (solid: untrained, dashed: trained), TRF radius dotted."""
    fig, ax = F.new(6.4, 3.6)
    ax, frames = ax[0][0], []
    for p in panels:
        prof = radial_mass(p.arr, p.unit()).assign(model=p.model, trained=p.trained,
                                                  trf_radius_px=_radius(p.trf_px))
        frames.append(prof)
        st = {**styles[p.model], "linestyle": "--" if p.trained else "-", "markevery": 4, "markersize": 4}
        ax.plot(prof.radius_px, prof.mass_frac, label=f"{p.model}{' (trained)' if p.trained else ''}", **st)
        if prof.trf_radius_px.notna().any() and not p.trained:
            ax.axvline(float(prof.trf_radius_px.iloc[0]), color=st["color"], linestyle=":", linewidth=1)
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle=(0, (1, 2)))
    ax.set(xlabel="radius r (px, Chebyshev, from the output unit)", ylabel="fraction of ERF mass within r",
           ylim=(0, 1.02))
    ax.legend(fontsize=6, ncols=2, loc="lower right")
    cap = ("ERF mass within radius r per model: a curve that reaches 1 well left of its dotted TRF radius "
           "uses only the middle of its TRF; where it crosses the grey 0.5 line is half the ERF 50% square.")
    data = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return F.render(fig, fig_id, cap, "ERF mass against radius per model", data)


def _radius(trf_px: float | None) -> float:
    return float("nan") if trf_px is None or pd.isna(trf_px) else (float(trf_px) - 1) / 2


def _by_model_loglog(d: pd.DataFrame, styles: F.StyleMap, draw: Any, ylabel: str) -> Any:
    """One log-log panel against pixel count, one series per model drawn by ``draw(ax, rows, style, model)``."""
    fig, ax = F.new(6, 3.4)
    ax = ax[0][0]
    for model, g in d.groupby("model", sort=True):
        draw(ax, g, styles[model], model)
    ax.set(xlabel="pixels (H×W)", ylabel=ylabel)
    F.log_axis(ax, "x")
    F.log_axis(ax, "y")
    ax.legend(fontsize=6, ncols=2)
    return fig


def memory_figure(df: pd.DataFrame, styles: F.StyleMap, fig_id: str = "cost-memory") -> F.Figure | None:
    """Peak memory (MB) against pixel count per model; ``df`` has model, pixels, peak_mem_mb."""
    d = df.dropna(subset=["peak_mem_mb"])
    if d.empty:
        return None
    d = d.groupby(["model", "pixels"], sort=True)["peak_mem_mb"].median().reset_index()
    fig = _by_model_loglog(d, styles, lambda ax, g, st, m: ax.plot(g.pixels, g.peak_mem_mb, label=m, **st),
                           "peak memory (MiB, lower is better)")
    cap = ("Peak memory of one forward pass against resolution: a steeper line costs more memory per added "
           "pixel (slope 1 = linear in pixels, 2 = quadratic, as attention's score matrix is).")
    return F.render(fig, fig_id, cap, "Peak memory against pixel count per model", d)


def latency_figure(df: pd.DataFrame, styles: F.StyleMap, fig_id: str = "cost-latency") -> F.Figure | None:
    """Median latency with IQR bars against pixel count; ``df`` has model, pixels, latency_ms_median/_iqr."""
    d = df.dropna(subset=["latency_ms_median"])
    if d.empty:
        return None
    d = d.groupby(["model", "pixels"], sort=True)[["latency_ms_median", "latency_ms_iqr"]].median().reset_index()
    fig = _by_model_loglog(
        d, styles, lambda ax, g, st, m: F.errorbar_iqr(ax, g.pixels, g.latency_ms_median, g.latency_ms_iqr, st, m),
        "latency (ms, median, lower is better)")
    cap = ("Latency of one forward pass against resolution, bars one IQR long: lines whose bars overlap "
           "are not told apart by this device's timer noise.")
    return F.render(fig, fig_id, cap, "Latency with IQR against pixel count per model", d)
