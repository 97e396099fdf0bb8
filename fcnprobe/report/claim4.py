"""Claim 4's verdict, read as difficulty: the rule (``RULE``), the per-output comparison and the evidence.

``RULE`` is the rule's one source: it is the text of the claim 4 card (``verdicts.claim4``) and is
appended below. The card quotes the cells of the difficulty section's metric table (``cell``) verbatim.
"""
from __future__ import annotations

import math

import pandas as pd

from fcnprobe.analysis.difficulty import MIN_FAILURE_SEEDS, OUTPUTS, difficulty_table
from fcnprobe.report.data import RunData, fmt, model_categories

FCN_CATEGORIES = ("fcn",)  # trunks whose every operation is local; fcn_pool / global_op count as others
METRICS = (("steps", "steps to target", +1), ("band", "learning-rate band", -1), ("fail", "seed failure rate", +1))
DIGITS = {"final": 3, "steps": 4, "band": 2, "fail": 2}  # significant digits: card and table alike
RANGE = {"steps": (0.0, math.inf), "band": (0.0, 1.0), "fail": (0.0, 1.0)}  # bounds are shown clipped to these
RULE = (
    "Per scored output (multi_output: findings, count, size, box; locate: box), the best FCN design (a trunk of "
    "category fcn with any head, without deep supervision, by mean held-out gain / headroom, among the designs "
    "that beat the constant guess when any does) is compared with the best other design, chosen the same way, "
    "on three difficulty metrics, each with a 95% interval over seeds: steps to target (the FCN "
    "is harder when its interval lies wholly above the other's), learning-rate band (harder when wholly below) "
    f"and seed failure rate (harder when wholly above; it decides only with {MIN_FAILURE_SEEDS} seeds or more). "
    "An output is harder when some metric separates towards the FCN being harder and none the other way, easier "
    "in the reverse case, mixed when both happen, and overlap when none separates; it counts only when both "
    "designs beat the constant guess there. Supported if every counted output is harder; inconclusive if none "
    "separates; not supported if some output is easier and none is harder or mixed; partly otherwise (harder on "
    "some outputs, not on all); not measured if no output counts. Deep "
    "supervision is reported beside the verdict, never in it. The numbers are the cells of the difficulty "
    "section's metric table.")
__doc__ = f"{__doc__}\n{RULE}\n"


def tables(run: RunData) -> dict[str, pd.DataFrame]:
    """Task -> ``difficulty_table`` of the run's difficulty records (tasks without records left out)."""
    df = run.ok("difficulty")
    if df.empty or "task" not in df:
        return {}
    return {t: difficulty_table(df[df.task == t], t) for t in OUTPUTS if (df.task == t).any()}


def _gain(row: pd.Series) -> float:
    sign = 1 if row["higher"] else -1
    return sign * (row["final"] - row["const"]) / row["headroom"] if row["headroom"] > 0 else -math.inf


def best(rows: pd.DataFrame) -> pd.Series | None:
    """The row with the highest mean held-out gain / headroom among those that beat the constant guess, or
    among all rows when none does (then the comparison is gated out and the card names it); None for no rows."""
    if rows.empty:
        return None
    beating = rows[rows["beats"].astype(bool)]
    pool = beating if not beating.empty else rows
    return pool.loc[pool.apply(_gain, axis=1).idxmax()]


def separation(fcn: pd.Series, other: pd.Series, key: str, harder_sign: int) -> str:
    """'harder', 'easier' or 'overlap' for one metric; 'n/a' where it is undefined or may not decide."""
    lo_f, hi_f, lo_o, hi_o = (fcn.get(f"{key}_lo"), fcn.get(f"{key}_hi"), other.get(f"{key}_lo"), other.get(f"{key}_hi"))
    if key == "fail" and not (fcn.get("fail_decides") and other.get("fail_decides")):
        return "n/a"
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in (lo_f, hi_f, lo_o, hi_o)):
        return "n/a"
    above, below = lo_f > hi_o, hi_f < lo_o
    if not (above or below):
        return "overlap"
    return "harder" if above == (harder_sign > 0) else "easier"


def interval(row: pd.Series, key: str) -> str:
    """'value [lo, hi]' of one metric, with ``DIGITS[key]`` significant digits."""
    d, lo, hi = DIGITS[key], row[f"{key}_lo"], row[f"{key}_hi"]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (lo, hi)):
        why = "one seed" if row.get("n_seeds", 2) < 2 else "not finite"
        return f"{fmt(row[key], d)} (no interval: {why})"
    floor, ceil = RANGE.get(key, (-math.inf, math.inf))
    return f"{fmt(row[key], d)} [{fmt(max(lo, floor), d)}, {fmt(min(hi, ceil), d)}]"


def cell(row: pd.Series, key: str) -> str:
    """The metric table's cell for ``key``: the interval, censored steps, '*' for a non-deciding failure rate."""
    if key == "steps":
        return interval(row, key) + f" ({int(row['censored'])} censored)"
    if key == "fail":
        return interval(row, key) + ("" if row["fail_decides"] else " *")
    return interval(row, key)


def compare_output(rows: pd.DataFrame, fcn_models: set[str]) -> tuple[str, str]:
    """(outcome, evidence) for one output: harder / easier / mixed / overlap / not measured."""
    plain = rows[~rows["deepsup"].astype(bool)]
    f, o = best(plain[plain.model.isin(fcn_models)]), best(plain[~plain.model.isin(fcn_models)])
    if f is None or o is None:
        return "not measured", "needs an FCN design and another design"
    if not (f["beats"] and o["beats"]):
        return "not measured", "; ".join(f"{r['design']} did not beat the constant guess ({fmt(r['const'])})"
                                         for r in (f, o) if not r["beats"])
    seps = {key: separation(f, o, key, sign) for key, _, sign in METRICS}
    said = {k: "FCN " + v if v in ("harder", "easier") else v for k, v in seps.items()}
    parts = [f"{label} {cell(f, key)} vs {cell(o, key)} ({said[key]})" for key, label, _ in METRICS]
    found = set(seps.values())
    outcome = ("mixed" if {"harder", "easier"} <= found else "harder" if "harder" in found
               else "easier" if "easier" in found else "overlap")
    return outcome, f"{f['design']} vs {o['design']}: " + "; ".join(parts)


def combine(outcomes: list[str]) -> str:
    """The verdict from the per-output outcomes (see the module docstring)."""
    gated = [x for x in outcomes if x != "not measured"]
    if not gated:
        return "not measured"
    if all(x == "harder" for x in gated):
        return "supported"
    if all(x == "overlap" for x in gated):
        return "inconclusive"
    if not {"harder", "mixed"} & set(gated):  # easier somewhere, harder nowhere: no output supports the claim
        return "not supported"
    return "partly"  # harder on some outputs, and overlap, easier or mixed on others


def preset_note(run: RunData) -> str:
    """What the run's preset leaves out of the grid (the probe's ``note``), '' when unknown."""
    from fcnprobe.probes import PROBES  # torch-free: probe modules import torch inside cells

    if "difficulty" not in PROBES.names():
        return ""
    return getattr(PROBES.get("difficulty").settings(run.preset), "note", "")


def claim4(run: RunData) -> tuple[str, str]:
    """(verdict, evidence) by ``RULE``; the evidence quotes the difficulty section's metric table."""
    tabs = tables(run)
    if not tabs:
        return "not measured", "needs difficulty-probe records (trunk x head grid on multi_output and locate)."
    fcn_models = {m for m, c in model_categories(run).items() if c in FCN_CATEGORIES}
    outcomes, parts = [], []
    for task, tab in tabs.items():
        for out in tab["output"].unique():
            outcome, ev = compare_output(tab[tab.output == out], fcn_models)
            outcomes.append(outcome)
            parts.append(f"{task}/{out} [{outcome}]: {ev}")
    verdict = combine(outcomes)
    seeds = int(max(t["n_seeds"].max() for t in tabs.values()))
    note = preset_note(run)
    head = f"{verdict} over {len(outcomes)} outputs ({seeds} seeds" + (f"; {note}" if note else "") + "): "
    return verdict, head + " | ".join(parts) + "."
