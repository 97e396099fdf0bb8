"""Threats to validity, filled from the run's own records: what the evidence does not cover.

``threats(run)`` returns an ordered mapping (topic -> one or two sentences) for
the ``_threats`` partial: the range of model sizes, the image sizes, the tasks
(all synthetic), untrained weights (real-architecture rows, random-init ERF
maps) and the number of seeds per probe. Every number comes from the records,
so the section changes with the run; nothing here is written for one run.
"""
from __future__ import annotations

import pandas as pd

from fcnprobe.report.data import RunData, fmt

SIZE_PARAMS = ("param_image_size", "param_size", "param_height", "param_width")
SMALL = 1_000_000  # parameters: below this a model is far from published scale
REAL_PROBES = ("realarch",)  # probes that run published architectures (absent from older runs)


def _ok(run: RunData) -> pd.DataFrame:
    return run.df[run.df.status == "ok"] if not run.df.empty and "status" in run.df else pd.DataFrame()


def _values(df: pd.DataFrame, cols) -> list[float]:
    out: list[float] = []
    for c in cols:
        if c in df:
            out += pd.to_numeric(df[c], errors="coerce").dropna().tolist()
    return out


def model_scale(df: pd.DataFrame) -> str | None:
    sizes = df.dropna(subset=["params_count"]) if "params_count" in df else pd.DataFrame()
    if sizes.empty:
        return None
    counts = pd.to_numeric(sizes["params_count"], errors="coerce")
    lo, hi = sizes.loc[counts.idxmin()], sizes.loc[counts.idxmax()]
    text = (f"Models have {fmt(int(counts.min()))} ({lo.model}) to {fmt(int(counts.max()))} ({hi.model}) "
            f"parameters over {sizes.model.nunique()} models")
    if counts.max() < SMALL:
        return text + (": far below published networks (millions of parameters and more), so effects that "
                       "need scale are not tested.")
    small = sizes[counts < SMALL].model.nunique()
    return text + f"; {small} of them have under {fmt(SMALL)} parameters, where the trained results come from."


def image_sizes(df: pd.DataFrame) -> str | None:
    sides = _values(df, SIZE_PARAMS)
    if not sides:
        return None
    trained = _values(df[df.get("task", "none") != "none"], ("param_image_size",)) if "task" in df else []
    text = f"Input sides range from {fmt(int(min(sides)))} to {fmt(int(max(sides)))} px"
    if trained:
        text += f"; trained cells use {', '.join(str(int(s)) for s in sorted(set(trained)))} px images"
    return text + ". Reach and ERF results scale with the image; larger inputs are not measured."


def synthetic_tasks(df: pd.DataFrame) -> str | None:
    tasks = sorted(t for t in df["task"].dropna().unique() if t != "none") if "task" in df else []
    if not tasks:
        return None
    return (f"Every task is synthetic, generated from a seed ({', '.join(tasks)}): each isolates one "
            "ability with a known answer, so no claim about natural images follows directly.")


def untrained(run: RunData, df: pd.DataFrame) -> str:
    real = df[df.probe.isin(REAL_PROBES)] if "probe" in df else df.iloc[0:0]
    parts = []
    if not real.empty:
        flag = real["param_pretrained"] if "param_pretrained" in real else pd.Series(False, index=real.index)
        n_random = int((~flag.fillna(False).astype(bool)).sum())
        parts.append(f"{n_random} of {len(real)} real-architecture rows use random (untrained) weights.")
    else:
        parts.append("This run has no real-architecture rows.")
    erf = df[df.probe == "erf"] if "probe" in df else df.iloc[0:0]
    if "param_trained" in erf:
        trained = erf.groupby("model")["param_trained"].apply(lambda s: s.fillna(False).astype(bool).any())
        parts.append(f"ERF maps: {int(trained.sum())} of {len(trained)} models also have a trained map; the "
                     "others are measured at random init only.")
    return " ".join(parts)


def seeds(df: pd.DataFrame) -> str | None:
    if "seed" not in df or df.empty:
        return None
    per = df.groupby("probe")["seed"].nunique().sort_index()
    text = ", ".join(f"{p}: {n}" for p, n in per.items())
    low = [p for p, n in per.items() if n < 3]
    note = (f" With fewer than 3 seeds ({', '.join(low)}), no interval is shown and a single unlucky "
            "initialisation can decide a verdict." if low else " Intervals are over these seeds.")
    return f"Seeds per probe: {text}.{note}"


def threats(run: RunData) -> dict[str, str]:
    """Topic -> sentence, in page order; topics the run has no data for are left out."""
    df = _ok(run)
    if df.empty:
        return {}
    items = {"model scale": model_scale(df), "image size": image_sizes(df), "synthetic tasks": synthetic_tasks(df),
             "untrained weights": untrained(run, df), "number of seeds": seeds(df)}
    return {k: v for k, v in items.items() if v}
