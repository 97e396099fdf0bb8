"""Figures for the report: a ``Figure`` carries its inline rendering, caption, anchor id and data.

A figure is drawn with matplotlib and rendered once inline (byte-stable SVG for
line charts, a base64 PNG for heatmaps) and once as a standalone SVG file.
``write_figures`` saves ``figures/<id>.svg`` and ``figures/<id>.csv`` beside the
page, so a reader can redraw any figure with ``pd.read_csv("figures/<id>.csv")``.

Styling is page-wide: ``StyleMap`` gives every model one (colour, marker) pair,
derived from the sorted model list, unique for up to 24 models and the same in
every figure. Colours are the Okabe-Ito palette (colour-blind safe); the marker
and line style mean colour never carries meaning alone. ``log_axis`` puts enough
labelled ticks on a log axis to read a value; ``seed_band`` and ``plot_band``
draw the median over seeds with a band from the lowest to the highest seed once
there is more than one (3 to 5 seeds are too few for a quantile band).
"""
from __future__ import annotations

import base64
import dataclasses
import io
import math
import re
import zlib
from pathlib import Path
from typing import Iterable

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "p", "h", "<", ">"]  # 12 markers x 8 colours: 24 unique pairs
LINESTYLES = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1)), (0, (1, 1)), (0, (5, 3))]
PNG_DPI = 120  # sharp enough for 32x32 maps, small enough to keep the page well under 5 MB
SUBS_NARROW = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0)  # ticks per decade when under one decade
BAND_WORDS = "shaded from the lowest to the highest seed"  # what plot_band's band is, for captions

plt.rcParams.update({
    "svg.hashsalt": "fcnprobe",  # stable element ids -> byte-stable SVG
    "svg.fonttype": "none",  # text stays text: smaller, searchable
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
})


@dataclasses.dataclass
class Figure:
    """A rendered figure.

    ``kind`` is 'svg' (inline markup) or 'png' (a data URI); ``id`` is its anchor and file
    stem; ``data`` is the table it was drawn from (None when it has none); ``svg`` is the
    standalone SVG document written to ``figures/<id>.svg``.
    """

    kind: str
    content: str
    alt: str
    caption: str
    id: str = ""
    data: pd.DataFrame | None = None
    svg: str = ""

    @property
    def csv_path(self) -> str:
        return f"figures/{self.id}.csv"

    @property
    def svg_path(self) -> str:
        return f"figures/{self.id}.svg"

    @property
    def pandas_call(self) -> str:
        """The exact call that loads this figure's data."""
        return f'pd.read_csv("{self.csv_path}")'


@dataclasses.dataclass(frozen=True)
class StyleMap:
    """One (colour, marker, line style) per model, from the sorted, de-duplicated model list."""

    models: tuple[str, ...]

    @classmethod
    def from_models(cls, models: Iterable[str]) -> "StyleMap":
        return cls(tuple(sorted({str(m) for m in models if m is not None and not _isnan(m)})))

    def index(self, model: str) -> int:
        if model in self.models:
            return self.models.index(model)
        return len(self.models) + zlib.crc32(model.encode()) % 24  # not on the page list: stable, may repeat

    def __getitem__(self, model: str) -> dict:
        return style(self.index(model))


def _isnan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


def style(i: int) -> dict:
    """Colour, marker and line style for series ``i``; the (colour, marker) pair is unique for i < 24,
    and series that share a colour (i, i + 8, i + 16) also differ in line style."""
    return {"color": OKABE_ITO[i % 8], "marker": MARKERS[i % len(MARKERS)], "linestyle": LINESTYLES[(i + i // 8) % 8]}


def new(width: float = 6.0, height: float = 3.4, ncols: int = 1, nrows: int = 1):
    return plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, layout="constrained")


def slug(text: str, limit: int = 60) -> str:
    """A file- and anchor-safe id: lower case, [a-z0-9-] only."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return s or "figure"


def render(fig, fig_id: str, caption: str, alt: str, data: pd.DataFrame | None = None,
           kind: str = "svg") -> Figure:
    """Render ``fig`` inline (``kind`` 'svg' or 'png') and as a standalone SVG, then close it."""
    if kind not in ("svg", "png"):
        raise ValueError(f"figure kind must be 'svg' or 'png', got {kind!r}")
    standalone = _svg_text(fig)
    if kind == "svg":
        content = re.sub(r"<svg ", f'<svg role="img" aria-label="{_attr(alt)}" ', _inline(standalone), count=1)
    else:
        content = _png_uri(fig)
    plt.close(fig)
    return Figure(kind, content, alt, caption, slug(fig_id), data, standalone)


def to_svg(fig, alt: str, caption: str, fig_id: str | None = None, data: pd.DataFrame | None = None) -> Figure:
    """Inline SVG figure (kept for sections written before ``render``)."""
    return render(fig, fig_id or alt, caption, alt, data, "svg")


def to_png(fig, alt: str, caption: str, fig_id: str | None = None, data: pd.DataFrame | None = None) -> Figure:
    """Inline PNG figure (kept for sections written before ``render``)."""
    return render(fig, fig_id or alt, caption, alt, data, "png")


def _svg_text(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return re.sub(r"<metadata>.*?</metadata>\s*", "", buf.getvalue(), flags=re.S)  # RDF boilerplate


def _inline(svg: str) -> str:
    return svg[svg.index("<svg"):]  # drop the XML prolog and doctype for inline use


def _png_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PNG_DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def unique_ids(figures: Iterable[Figure]) -> list[Figure]:
    """Give repeated ids a numeric suffix (-2, -3, ...) in page order, in place; idempotent.

    A suffix never takes an id another figure already has (``a, a, a-2`` -> ``a, a-3, a-2``).
    """
    out = list(figures)
    taken, used = {f.id or slug(f.alt) for f in out}, set()
    for f in out:
        base = cand = f.id or slug(f.alt)
        n = 1
        while cand in used or (cand != base and cand in taken):
            n += 1
            cand = f"{base}-{n}"
        f.id = cand
        used.add(cand)
    return out


def write_figures(figures: Iterable[Figure], page_dir: str | Path) -> list[Path]:
    """Write ``figures/<id>.svg`` and, where a figure has data, ``figures/<id>.csv`` beside the page."""
    out = Path(page_dir) / "figures"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for f in unique_ids(figures):
        svg = out / f"{f.id}.svg"
        svg.write_text(f.svg or f.content, encoding="utf-8")
        written.append(svg)
        if f.data is not None:
            csv = out / f"{f.id}.csv"
            f.data.to_csv(csv, index=False, float_format="%.6g", lineterminator="\n")
            written.append(csv)
    return written


def log_axis(ax, which: str = "y") -> None:
    """Log scale with readable labels: 1-2-5 ticks per decade, every tick when under one decade."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")
    lo, hi = (ax.get_ylim() if which == "y" else ax.get_xlim())
    decades = math.log10(hi / lo) if lo > 0 and hi > lo else 0.0
    subs = SUBS_NARROW if decades < 1 else (1.0, 2.0, 5.0) if decades < 4 else (1.0,)
    axis.set_major_locator(ticker.LogLocator(base=10, subs=subs, numticks=30))
    axis.set_major_formatter(ticker.FuncFormatter(_tick_label))
    axis.set_minor_locator(ticker.LogLocator(base=10, subs=tuple(range(2, 10)), numticks=30))
    axis.set_minor_formatter(ticker.NullFormatter())


def _tick_label(v: float, _pos=None) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if 1e-3 <= a < 1e5:
        return f"{v:g}"
    exp = math.floor(math.log10(a))
    mant = v / 10 ** exp
    return f"$10^{{{exp}}}$" if abs(mant - 1) < 1e-9 else f"${mant:g}\\times10^{{{exp}}}$"


def seed_band(df: pd.DataFrame, group: str, x: str, y: str) -> pd.DataFrame:
    """Per (group, x): median of ``y`` over rows (seeds), the lowest and highest seed, and the seed count."""
    rows = []
    for (g, xv), part in df.groupby([group, x], sort=True):
        vals = pd.to_numeric(part[y], errors="coerce").dropna().to_numpy(float)
        if vals.size == 0:
            continue
        rows.append({group: g, x: xv, "median": float(np.median(vals)), "min": float(vals.min()),
                     "max": float(vals.max()), "n_seeds": int(vals.size)})
    return pd.DataFrame(rows, columns=[group, x, "median", "min", "max", "n_seeds"])


def plot_band(ax, band: pd.DataFrame, group: str, x: str, styles: StyleMap, label=str, **line) -> None:
    """Median line per group; shaded from the lowest to the highest seed where some x has more than one."""
    for g, part in band.groupby(group, sort=True):
        st = styles[g]
        ax.plot(part[x], part["median"], label=label(g), **st, **line)
        if (part["n_seeds"] > 1).any():
            ax.fill_between(part[x], part["min"], part["max"], color=st["color"], alpha=0.18, linewidth=0)


def errorbar_iqr(ax, x, median, iqr, st: dict, label: str) -> None:
    """Median with error bars of total length one IQR (the records keep its width, not the quartiles)."""
    half = np.asarray(pd.to_numeric(pd.Series(iqr), errors="coerce").fillna(0), float) / 2
    ax.errorbar(x, median, yerr=half, label=label, capsize=2, elinewidth=0.8, **st)
