"""Report section for the realarch probe: the suite's untrained measurements on real architectures.

One row per architecture: the graph TRF against the image (finite, global or
unknown with the op that stopped the walk), the native output stride, the ERF
50% square's share of the image at init, the MAC and latency growth exponents
against the side, and skipped rows with their reason. Reads records only.
"""
from __future__ import annotations

import pandas as pd

from fcnprobe.report.data import RunData, table_html
from fcnprobe.report.sections.base import Section, register_section

COLUMNS = {"model": "architecture", "source": "built with", "output_key": "probed output", "sides": "input sides (px)",
           "trf": "TRF against the image", "output_stride": "output stride", "macs_last": "MACs at the largest side",
           "macs_slope": "MACs exponent vs side", "latency_slope": "latency exponent vs side",
           "erf_cover50_frac": "ERF 50% square / image (init)", "trf_check": "graph vs numeric TRF",
           "note": "notes"}


def _list(v: object) -> list:
    """A stored array as a list; a missing one (NaN in the frame) as []."""
    return list(v) if hasattr(v, "__len__") and not isinstance(v, str) else []


def _trf_text(row: pd.Series) -> str:
    """'435 px (covers 64 px)' / 'global (reason)' / 'unknown (reason)', at the largest side."""
    kinds, sides = _list(row.get("trf_kind_by_size")), _list(row.get("sizes_px"))
    if not kinds:
        return ""
    kind, side = kinds[-1], sides[-1]
    if kind == "finite":
        px = int(_list(row.get("trf_px_by_size"))[-1])
        return f"{px} px ({'covers' if px >= side else 'does not cover'} a {side} px image)"
    return f"{kind} ({row.get('trf_reason') or 'no reason recorded'})"


def _note(row: pd.Series) -> str:
    skipped = row.get("skipped_reason")
    if isinstance(skipped, str) and skipped:
        return f"skipped: {skipped}"
    return "; ".join(str(w) for w in _list(row.get("warnings")))


def _table(df: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, r in df.sort_values("model").iterrows():
        macs, sides = _list(r.get("macs_by_size")), _list(r.get("sizes_px"))
        rows.append({"model": r.model, "source": r.get("source"), "output_key": r.get("output_key"),
                     "sides": ", ".join(str(s) for s in sides), "trf": _trf_text(r),
                     "output_stride": r.get("output_stride"), "macs_last": macs[-1] if macs else None,
                     "macs_slope": r.get("macs_slope"), "latency_slope": r.get("latency_slope"),
                     "erf_cover50_frac": r.get("erf_cover50_frac"), "trf_check": r.get("trf_check"),
                     "note": _note(r)})
    return pd.DataFrame(rows, columns=list(COLUMNS))


@register_section("realarch", order=45)
def realarch_section(run: RunData) -> Section | None:
    """The realarch table, or None when the run has no realarch records."""
    df = run.ok("realarch")
    if df.empty:
        return None
    failed = run.df[(run.df.probe == "realarch") & (run.df.status != "ok")] if "probe" in run.df else run.df[:0]
    notes = [f"{r.model}: {r.error}" for r in failed.itertuples()]
    return Section(
        "realarch", "Real architectures at random init",
        "Do real segmentation and recognition networks see the whole image, at what output stride and cost?",
        "Each network is built from its transformers (or torchvision) config at random init; nothing is "
        "trained or downloaded. The TRF is the graph-exact receptive field of the probed output's centre unit "
        "at the largest side (global: an op mixes every position; unknown: the walk met an op it cannot "
        "place, named). The ERF column is the share of the image inside the square holding 50% of the input "
        "gradient at init, at the smallest side. Exponents are log-log slopes against the side (2 = linear in "
        "pixels, 4 = quadratic). MACs count conv, linear, matmul and attention multiply-accumulates only.",
        tables=[("Real architectures", table_html(_table(df), COLUMNS))], notes=notes)
