"""Matplotlib figures rendered for inline embedding: byte-stable SVG for line charts,
PNG (about 120 dpi, base64) for heatmaps.

Colours are the Okabe-Ito palette (colour-blind safe) and every series also gets
its own marker and line style, so colour never carries meaning alone.
"""
from __future__ import annotations

import base64
import dataclasses
import io
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "p", "h", "<", ">"]  # 12: with 8 colours, unique up to 24
LINESTYLES = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1)), (0, (1, 1)), (0, (5, 3))]
PNG_DPI = 120

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
    """A rendered figure: ``kind`` is 'svg' (markup) or 'png' (a data URI)."""

    kind: str
    content: str
    alt: str
    caption: str


def style(i: int) -> dict:
    """Colour, marker and line style for series ``i``."""
    return {"color": OKABE_ITO[i % 8], "marker": MARKERS[i % len(MARKERS)], "linestyle": LINESTYLES[i % 8]}


def new(width: float = 6.0, height: float = 3.4, ncols: int = 1, nrows: int = 1):
    return plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, layout="constrained")


def to_svg(fig, alt: str, caption: str) -> Figure:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]  # drop the XML prolog and doctype for inline use
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)  # RDF boilerplate
    svg = re.sub(r"<svg ", f'<svg role="img" aria-label="{_attr(alt)}" ', svg, count=1)
    return Figure("svg", svg, alt, caption)


def to_png(fig, alt: str, caption: str) -> Figure:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PNG_DPI, metadata={"Software": None})
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return Figure("png", f"data:image/png;base64,{data}", alt, caption)


def _attr(text: str) -> str:
    return (text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;"))
