"""Claims 1 and 3 (issue 15): rules with intervals, gates, Holm and threshold sensitivity (torch-free).

One FCN definition (the model catalogue's ``category``): ``fcn`` = convolution
only; ``fcn_pool`` = an FCN answering an image-level question through a
parameter-free pool at the output (a category-``fcn`` model on a vector head);
``global_op`` = global pooling, attention or an FC layer inside the network.

Evidence tasks: those whose pooled-local ceiling with zero padding (the task
meta ``padded_ceiling``, stored as ``pooled_ceiling_frac``) is below 1 and that
is not marked ``control``: aligned_image, same_different and same_different_dense.
global_cue (one pooling op solves it) and left_of (padding leaks the order:
ceiling 1) are controls, shown in figures only.

Intervals (``analysis.stats``): per distance bin, a t interval over per-seed
accuracies when there are >= 2 seeds, else a bootstrap over the held-out pairs
of the one seed (the probe's ``unit_acc_by_dist`` array); where every unit is right
(or every one wrong) the bootstrap has zero width, so the exact Clopper-Pearson
bound for n of n is used instead. Thresholds are
fractions of the headroom above chance, frozen here before any standard run:
success = lower bound >= chance + SUCCESS_FRACTION (1 - chance) (0.9 at chance
1/2), failure = upper bound < chance + FAIL_FRACTION (1 - chance) (0.75).
The family of hypotheses for Holm is {claim 1's decisive comparison, claim 3's
decisive comparison}; a definite verdict whose Holm-adjusted p exceeds ALPHA
becomes "inconclusive".
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from fcnprobe.analysis.stats import (BEATS_FRACTION, SENSITIVITY, Interval, beats_constant, bootstrap_interval,
                                     clopper_pearson, holm, t_interval)
from fcnprobe.report.data import RunData, model_categories

SUCCESS_FRACTION = 0.8  # of the headroom above chance: 0.9 at chance 1/2 (the suite's historical 90%)
FAIL_FRACTION = 0.5  # the midpoint of chance and 1: 0.75 at chance 1/2 (the probe's failure distance rule)
ALPHA = 0.05  # family-wise error rate over the claims tested (Holm)
CONFIDENCE = 0.95
UNITS_ARRAY = "unit_acc_by_dist"  # probes.context.UNITS_ARRAY (the report never imports the probe's torch side)


@dataclasses.dataclass(frozen=True)
class Thresholds:
    success: float = SUCCESS_FRACTION
    fail: float = FAIL_FRACTION

    def scaled(self, factor: float) -> "Thresholds":
        return Thresholds(min(self.success * factor, 1.0), self.fail * factor)

    def at(self, chance: float) -> tuple[float, float]:
        """(success, fail) accuracy thresholds at this chance level."""
        return chance + self.success * (1 - chance), chance + self.fail * (1 - chance)


def design(category: str | None, head: str) -> str | None:
    """The issue-15 design of one record: fcn, fcn_pool (an FCN on a non-dense head) or global_op."""
    if category == "fcn":
        return "fcn" if str(head).startswith("dense") else "fcn_pool"
    return category


def _units(run: RunData, row: pd.Series) -> np.ndarray | None:
    arr = run.array(row.cell_id, UNITS_ARRAY)
    return None if arr is None else np.asarray(arr, dtype=float)


def _interval(values: list[float] | np.ndarray, per_seed: bool) -> Interval:
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return Interval(math.nan, -math.inf, math.inf, 0, CONFIDENCE, "undefined")
    if not per_seed and x.size > 1 and np.ptp(x) == 0 and x[0] in (0.0, 1.0):
        return _clopper_pearson_extreme(x)
    return t_interval(x, CONFIDENCE) if per_seed else bootstrap_interval(x, confidence=CONFIDENCE)


def _clopper_pearson_extreme(x: np.ndarray) -> Interval:
    """Every unit right (or every one wrong): a bootstrap gives zero width; the exact Clopper-Pearson bound
    for n of n successes, (alpha / 2) ** (1 / n), does not pretend to certainty."""
    return clopper_pearson(int(x.sum()), int(x.size), CONFIDENCE)


def _one_sided_p(values: np.ndarray, threshold: float, side: str) -> float:
    """p of 'mean < threshold' (side 'less') or '> threshold' ('greater'); exact 0/1 when all values agree."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return 1.0
    if x.size == 1 or np.ptp(x) == 0:
        hit = x.mean() < threshold if side == "less" else x.mean() > threshold
        return 0.0 if hit and x.size > 1 else 1.0
    return float(sps.ttest_1samp(x, threshold, alternative=side).pvalue)


def bin_table(run: RunData) -> pd.DataFrame:
    """One row per (model, task, distance bin) on the evidence tasks: interval, design, reach, gate data."""
    df = run.ok("context")
    if df.empty or "acc_by_dist_frac" not in df or "pooled_ceiling_frac" not in df:
        return pd.DataFrame()
    df = df[pd.to_numeric(df["pooled_ceiling_frac"], errors="coerce") < 1]
    if "task_control" in df:
        df = df[df["task_control"] != True]  # noqa: E712 -- global_cue: one pooling op solves it
    cats, rows = model_categories(run), []
    for (model, task), g in df.groupby(["model", "task"], sort=True):
        rows += _bins_of(run, model, task, g, design(cats.get(model), g.iloc[0].get("param_head", "")))
    return pd.DataFrame(rows)


def _bins_of(run: RunData, model: str, task: str, g: pd.DataFrame, kind: str | None) -> list[dict]:
    per_seed = len(g) >= 2
    first, out = g.iloc[0], []
    units = None if per_seed else _units(run, first)
    seeds_acc = [list(v) for v in g["acc_by_dist_frac"]]
    reach, overall = first.get("reach_px"), _overall(g, per_seed, units)
    for j, (lo, hi) in enumerate(zip(first["dist_bin_lo_px"], first["dist_bin_hi_px"])):
        vals = [np.nan if s[j] is None else s[j] for s in seeds_acc] if per_seed else (
            units[:, j] if units is not None else [])
        iv = _interval(vals, per_seed)
        out.append({"model": model, "task": task, "design": kind, "bin": j, "lo_px": lo, "hi_px": hi,
                    "acc": iv.estimate, "ci_lo": iv.lo, "ci_hi": iv.hi, "method": iv.method, "n": iv.n,
                    "values": np.asarray(vals, dtype=float), "chance": float(first["chance_frac"]),
                    "reach": None if reach is None or pd.isna(reach) else float(reach),
                    "covers": bool(first.get("covers_task", False)), "level": first.get("task_level"),
                    "ceiling": float(first["pooled_ceiling_frac"]), "overall": overall[0],
                    "overall_values": overall[1]})
    return out


def _overall(g: pd.DataFrame, per_seed: bool, units: np.ndarray | None) -> tuple[Interval, np.ndarray]:
    """Interval of the overall accuracy and the values behind it (per-seed accuracies, or per-unit means)."""
    if per_seed:
        vals = pd.to_numeric(g["acc_frac"]).to_numpy(dtype=float)
    elif units is None:
        vals = np.array([float(g.iloc[0]["acc_frac"])])
    else:
        with np.errstate(all="ignore"):
            vals = np.nanmean(units, 1)
    return _interval(vals, per_seed), vals


def passes_gate(overall: Interval, chance: float) -> bool:
    """``beats_constant``: the lower bound of the gain over chance exceeds 5% of the headroom."""
    return math.isfinite(overall.lo) and beats_constant(overall.lo - chance, 1 - chance, BEATS_FRACTION)


def _pct(v: float) -> str:
    """An accuracy or bound as a percentage; bounds are shown clipped to [0%, 100%], where accuracy lives."""
    return "—" if v is None or not math.isfinite(v) else f"{100 * min(max(v, 0.0), 1.0):.0f}%"


def describe(row: pd.Series) -> str:
    """'model on task at lo-hi px: 62% [55%, 70%]' with the interval method."""
    return (f"{row.model} on {row.task} at {int(row.lo_px)}–{int(row.hi_px)} px: {_pct(row.acc)} "
            f"[{_pct(row.ci_lo)}, {_pct(row.ci_hi)}] ({row.method}, n={row.n})")


# ---------------------------------------------------------------------------------------------- the rules
@dataclasses.dataclass
class Finding:
    """One claim's outcome before Holm: the verdict, the p of its decisive comparison, the evidence."""

    verdict: str  # supported | partly | not supported | inconclusive | not measured
    p: float  # one-sided p of the decisive comparison (intersection-union: the max over its parts); 1 if none
    evidence: list[str]


def _gated_global(bins: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Global-op rows of (design, task) pairs that beat the constant guess there, and 'model (task)' for those
    that did not: a design is compared on each task where it learned, and only there."""
    glob = bins[bins.design == "global_op"]
    ok = {k for k, g in glob.groupby(["model", "task"]) if passes_gate(g.iloc[0].overall, g.iloc[0].chance)}
    keep = [(m, t) in ok for m, t in zip(glob.model, glob.task)]
    failed = sorted({f"{m} ({t})" for m, t in zip(glob.model, glob.task) if (m, t) not in ok})
    return glob[keep], failed


def _global_succeeds(glob: pd.DataFrame, row: pd.Series, th: Thresholds) -> pd.Series | None:
    """The best gated global-op row in the same task and bin whose lower bound reaches success, if any."""
    same = glob[(glob.task == row.task) & (glob.lo_px == row.lo_px)]
    good = same[same.ci_lo >= th.at(row.chance)[0]]
    return None if good.empty else good.sort_values("ci_lo").iloc[-1]


def _classify_claim3(rows: pd.DataFrame, glob: pd.DataFrame, th: Thresholds) -> tuple[str, float, str]:
    """One covering FCN on one task: near_fail | mid_fail | success | inconclusive, with p and evidence."""
    for where in ("near", "mid"):
        for _, r in rows.iterrows():
            succ, fail = th.at(r.chance)
            centre, half = (r.lo_px + r.hi_px) / 2, r.reach / 2
            if (centre <= half) != (where == "near") or centre > r.reach or not r.ci_hi < fail:
                continue
            g = _global_succeeds(glob, r, th)
            if g is not None:
                p = max(_one_sided_p(r["values"], fail, "less"), _one_sided_p(g["values"], succ, "greater"))
                return f"{where}_fail", p, f"{describe(r)} (reach {r.reach:.0f} px) vs {describe(g)}"
    if (rows.ci_lo >= rows.chance.map(lambda c: th.at(c)[0])).all():
        p = max(_one_sided_p(r["values"], th.at(r.chance)[0], "greater") for _, r in rows.iterrows())
        worst = rows.sort_values("ci_lo").iloc[0]
        first = rows.iloc[0]
        return "success", p, (f"{first.model} on {first.task}: every bin's lower bound ≥ success; worst "
                              f"{describe(worst)}")
    worst = rows.sort_values("ci_lo").iloc[0]
    task_glob = glob[glob.task == worst.task]
    if not (task_glob.ci_lo >= task_glob.chance.map(lambda c: th.at(c)[0])).any():
        return "unsolved", 1.0, f"{worst.task}: no design reached the success threshold in any bin (left out)"
    return "inconclusive", 1.0, f"{describe(worst)}: straddles the thresholds"


def _combine(outcomes: dict[str, str], order: dict[str, str]) -> str:
    """Per-design outcomes -> verdict, by the mapping ``order`` (outcome -> verdict when all agree)."""
    vals = set(outcomes.values())
    if "inconclusive" in vals:
        return "inconclusive"
    verdicts = {order[v] for v in vals}
    return verdicts.pop() if len(verdicts) == 1 else "partly"


def claim3_finding(bins: pd.DataFrame, th: Thresholds = Thresholds()) -> Finding:
    """Do conv-only nets that can see the whole image use far context? (the rule: ``report.verdicts.claim3``)."""
    if bins.empty:
        return Finding("not measured", 1.0, ["no context records on a task whose pooled-local ceiling is below 1"])
    glob, failed = _gated_global(bins)
    cover = bins[bins.design.isin(["fcn", "fcn_pool"]) & bins.covers & bins.task.isin(set(glob.task))]
    ev = [f"global-op designs that did not beat the constant guess (excluded): {', '.join(failed)}"] if failed else []
    if glob.empty or cover.empty:
        why = "no global-op design beat the constant guess" if glob.empty else \
            "no convolution-only model whose reach covers the task ran on a task a gated global-op design ran"
        return Finding("not measured", 1.0, ev + [why])
    per_model: dict[str, str] = {}
    ps: list[float] = []
    for model, g in cover.groupby("model"):
        results = [_classify_claim3(t, glob, th) for _, t in g.groupby("task")]
        ev += [r[2] for r in results if r[0] == "unsolved"]
        results = [r for r in results if r[0] != "unsolved"]
        if not results:
            continue
        kinds = [r[0] for r in results]
        pick = next((k for k in ("near_fail", "mid_fail") if k in kinds), None)
        pick = pick or ("success" if all(k == "success" for k in kinds) else "inconclusive")
        per_model[model] = pick
        ev += [r[2] for r in results if r[0] == pick][:1]
        ps.append(max([r[1] for r in results if r[0] == pick], default=1.0))
    if not per_model:
        return Finding("not measured", 1.0, list(dict.fromkeys(ev)))
    order = {"near_fail": "supported", "mid_fail": "partly", "success": "not supported"}
    verdict = _combine(per_model, order)
    return Finding(verdict, max(ps) if verdict != "inconclusive" else 1.0, list(dict.fromkeys(ev)))


def _claim1_task(rows: pd.DataFrame, glob: pd.DataFrame, th: Thresholds) -> tuple[str, float, str]:
    """One image-level task: fcn_fails | fcn_succeeds | inconclusive (overall accuracy intervals)."""
    pools = {m: g.iloc[0] for m, g in rows.groupby("model")}
    gl = {m: g.iloc[0] for m, g in glob[glob.task == rows.iloc[0].task].groupby("model")}
    chance = rows.iloc[0].chance
    succ, _ = th.at(chance)
    best = max(pools.values(), key=lambda r: r.overall.lo)
    txt = lambda r: f"{r.model} {_pct(r.overall.estimate)} [{_pct(r.overall.lo)}, {_pct(r.overall.hi)}]"  # noqa: E731
    if best.overall.lo >= succ:
        ev = f"{rows.iloc[0].task}: FCN+pool {txt(best)} ≥ {succ:.2f}"
        return "fcn_succeeds", _overall_p(best, succ, "greater"), ev
    good = [g for g in gl.values() if g.overall.lo >= succ]
    if good and all(r.overall.hi < succ for r in pools.values()):
        g = max(good, key=lambda r: r.overall.lo)
        p = max([_overall_p(r, succ, "less") for r in pools.values()] + [_overall_p(g, succ, "greater")])
        return "fcn_fails", p, (f"{rows.iloc[0].task} (pooled-local ceiling {rows.iloc[0].ceiling:.2f}): "
                                f"every FCN+pool "
                                f"below {succ:.2f} (best {txt(best)}); global-op {txt(g)}")
    if not good and all(r.overall.hi < succ for r in [*pools.values(), *gl.values()]):
        return "unsolved", 1.0, f"{rows.iloc[0].task}: no design reached {succ:.2f} (best FCN+pool {txt(best)}; left out)"
    return "inconclusive", 1.0, f"{rows.iloc[0].task}: FCN+pool best {txt(best)}; intervals straddle {succ:.2f}"


def _overall_p(row: pd.Series, threshold: float, side: str) -> float:
    """p from the overall interval's values: the per-bin values pooled (units or seeds)."""
    return _one_sided_p(np.asarray(row["overall_values"]), threshold, side)


def claim1_finding(bins: pd.DataFrame, th: Thresholds = Thresholds()) -> Finding:
    """Does an FCN+pool answer image-level relational questions that global-op designs answer?"""
    if bins.empty:
        return Finding("not measured", 1.0, ["no context records on an image-level task with a ceiling below 1"])
    img = bins[bins.level == "image"]
    glob, failed = _gated_global(img)
    pools = img[(img.design == "fcn_pool") & img.task.isin(set(glob.task))]
    ev = [f"global-op designs that did not beat the constant guess (excluded): {', '.join(failed)}"] if failed else []
    if glob.empty or pools.empty:
        why = "no global-op design beat the constant guess" if glob.empty else "no FCN+pool design on a gated task"
        return Finding("not measured", 1.0, ev + [why])
    results = {task: _claim1_task(g, glob, th) for task, g in pools.groupby("task")}
    ev += [r[2] for r in results.values()]
    results = {t: r for t, r in results.items() if r[0] != "unsolved"}
    if not results:
        return Finding("not measured", 1.0, ev)
    order = {"fcn_fails": "supported", "fcn_succeeds": "not supported"}
    verdict = _combine({t: r[0] for t, r in results.items()}, order)
    p = max(r[1] for r in results.values()) if verdict != "inconclusive" else 1.0
    return Finding(verdict, p, ev)


# ------------------------------------------------------------------------------ Holm and the cards
FAMILY = ("claim1", "claim3")  # the hypotheses Holm corrects over: each claim's decisive comparison
DEFINITE = ("supported", "partly", "not supported")


def _with_holm(findings: dict[str, Finding]) -> dict[str, tuple[Finding, float | None]]:
    """Holm over the claims with a definite verdict; a definite verdict whose adjusted p > ALPHA is inconclusive."""
    tested = [k for k in FAMILY if findings[k].verdict in DEFINITE]
    adjusted = dict(zip(tested, holm([findings[k].p for k in tested])))
    out = {}
    for k, f in findings.items():
        adj = adjusted.get(k)
        if adj is not None and adj > ALPHA:
            f = Finding("inconclusive", f.p, f.evidence + [f"Holm-adjusted p = {adj:.3g} > {ALPHA}"])
        out[k] = (f, adj)
    return out


def claims13(run: RunData, th: Thresholds = Thresholds()) -> dict[str, tuple[Finding, float | None]]:
    """Claim 1 and claim 3 findings with Holm-adjusted p-values (None where not tested)."""
    bins = _cached_bins(run)
    return _with_holm({"claim1": claim1_finding(bins, th), "claim3": claim3_finding(bins, th)})


def _cached_bins(run: RunData) -> pd.DataFrame:
    """``bin_table`` once per loaded run: the thresholds move, the intervals do not."""
    if "_claims13_bins" not in run.__dict__:
        run.__dict__["_claims13_bins"] = bin_table(run)
    return run.__dict__["_claims13_bins"]


def card(run: RunData, key: str) -> tuple[str, str]:
    """(verdict, evidence) of claim ``key`` with the +-25% threshold sensitivity appended."""
    base = claims13(run)
    moved = {f: claims13(run, Thresholds().scaled(f))[key][0].verdict for f in (1 - SENSITIVITY, 1 + SENSITIVITY)}
    finding, adj = base[key]
    succ, fail = Thresholds().at(0.5)
    text = "; ".join(finding.evidence)
    if adj is not None:
        shown = f"= {adj:.3g}" if adj >= 1e-4 else "< 1e-4"  # an exact bound at 0 is printed as a bound
        text += f". Holm-adjusted p {shown} over {{{', '.join(FAMILY)}}}"
    text += (f". Thresholds (at chance 1/2): success {succ:.2f}, failure {fail:.2f}; "
             f"with both moved −25%: {moved[1 - SENSITIVITY]}, +25%: {moved[1 + SENSITIVITY]}.")
    return finding.verdict, text
