"""Claim 4 as difficulty (numpy + scipy only): per-image scores of the structured outputs,
and the four difficulty metrics of a (trunk, head) design, each with an interval over seeds.

Every metric is defined on the *gain over the constant guess* (signed so that
positive is better), so a design that never learns cannot look easy.

* **steps to target** -- the first evaluation step at which a seed's held-out
  (validation-stream) curve reaches ``const + 0.9 * (best design's final - const)``;
  a seed that never reaches it is *censored* at the budget (the value is the
  budget, and the censored count is reported beside it).
* **learning-rate band** -- per seed, the fraction of the rate grid whose final
  gain is at least 90% of that design's best gain on that seed (a diverged or
  non-learning rate counts as outside the band). Undefined (None) with one rate.
* **seed failure rate** -- at the design's selected rate, the fraction of seeds
  that do not beat the constant guess (``stats.beats_constant`` on each seed's
  bootstrap lower bound of the gain). Clopper-Pearson interval; it may only
  decide a verdict with ``MIN_FAILURE_SEEDS`` seeds or more.
* **final score** -- at the selected rate, the t-interval over seeds of the
  held-out score, beside the constant guess's score.

The selected rate of a design is the grid point with the highest mean (over
seeds and outputs) *validation* gain / headroom; the held-out test score is never
used to choose it.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from fcnprobe.analysis.shape import box_iou
from fcnprobe.analysis.stats import Interval, beats_constant, clopper_pearson, t_interval

TARGET_FRAC = 0.9  # steps to target: 90% of the best design's gain
BAND_FRAC = 0.9  # LR band: rates within 90% of the design's best gain
MIN_FAILURE_SEEDS = 5  # below this the seed failure rate is reported but decides nothing


@dataclasses.dataclass(frozen=True)
class Output:
    """One scored output: its record metric, direction and best possible score."""

    name: str  # findings, count, size, box
    metric: str  # record column of the held-out score
    higher: bool  # True when higher is better
    best: float  # the best possible score (for the headroom)


OUTPUTS = {
    "multi_output": (Output("findings", "findings_acc_frac", True, 1.0), Output("count", "count_mae", False, 0.0),
                     Output("size", "size_mae", False, 0.0), Output("box", "box_iou_mean", True, 1.0)),
    "locate": (Output("box", "box_iou_mean", True, 1.0),),
}


def unit_scores(task: str, pred: np.ndarray, true: np.ndarray, meta: dict[str, np.ndarray],
                layout: dict[str, slice] | None = None) -> dict[str, np.ndarray]:
    """Per-image scores, output name -> (N,): findings accuracy over the labels, |count error|,
    |mean-size error|, box IoU. multi_output predictions are logits for the findings and the
    scaled (count, size); ``meta`` has 'count', 'mean_side', 'max_count', 'max_side'."""
    pred, true = np.asarray(pred, dtype=float), np.asarray(true, dtype=float)
    if task == "locate":
        return {"box": box_iou(pred, true)}
    f, p, b = layout["findings"], layout["params"], layout["box"]
    return {"findings": ((pred[:, f] > 0) == (true[:, f] > 0.5)).mean(1),
            "count": np.abs(pred[:, p][:, 0] * meta["max_count"] - meta["count"]),
            "size": np.abs(pred[:, p][:, 1] * meta["max_side"] - meta["mean_side"]),
            "box": box_iou(pred[:, b], true[:, b])}


def constant_prediction(task: str, train_mean: np.ndarray, n: int, layout: dict[str, slice] | None = None
                        ) -> np.ndarray:
    """(n, C) model-blind guess: the training targets' mean, and "every finding present" (logit 1)."""
    const = np.broadcast_to(np.asarray(train_mean, dtype=float), (n, len(train_mean))).copy()
    if task == "multi_output":
        const[:, layout["findings"]] = 1.0
    return const


def signed(values: np.ndarray | float, higher: bool) -> np.ndarray | float:
    return values if higher else -values


def headroom(out: Output, const: float) -> float:
    """Best possible minus constant, signed (> 0 unless the constant is already perfect)."""
    return float(signed(out.best - const, out.higher))


def steps_to_target(steps: Sequence[int], curve: Sequence[float], target: float, higher: bool,
                    budget: int) -> tuple[int, bool]:
    """(first step whose score reaches ``target``, censored); (budget, True) when none does."""
    for s, v in zip(steps, curve):
        if v is not None and math.isfinite(v) and (v >= target if higher else v <= target):
            return int(s), False
    return int(budget), True


def lr_band(gains: dict[float, float | None]) -> float | None:
    """Fraction of the grid whose gain is >= BAND_FRAC x the best gain; None for a one-rate grid,
    0.0 when no rate gains anything. A None gain (diverged) is outside the band."""
    if len(gains) < 2:
        return None
    vals = [g for g in gains.values() if g is not None and math.isfinite(g)]
    best = max(vals, default=0.0)
    if best <= 0:
        return 0.0
    return sum(g is not None and g >= BAND_FRAC * best for g in gains.values()) / len(gains)


def failure_interval(failures: int, n: int, confidence: float = 0.95) -> Interval:
    """Clopper-Pearson interval of a failure proportion (``analysis.stats.clopper_pearson``)."""
    return clopper_pearson(failures, n, confidence)


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def final_val(row: pd.Series, out: Output) -> float | None:
    """The last point of the validation curve of ``out`` (None if diverged or missing)."""
    curve = row.get(f"{out.metric}_curve")
    if not isinstance(curve, (list, tuple, np.ndarray)) or len(curve) == 0:
        return None
    return _num(curve[-1])


def design_of(row: pd.Series) -> str:
    """'fcn+softargmax', with ' +DS' for deep supervision: one (trunk, head) design."""
    return f"{row['model']}+{row['param_head']}" + (" +DS" if bool(row.get("param_deepsup")) else "")


def with_design(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its ``design`` label and the learning rate as a number (``lr_value``)."""
    return df.assign(design=df.apply(design_of, axis=1), lr_value=pd.to_numeric(df["lr"], errors="coerce"))


def val_gain(row: pd.Series, out: Output) -> float | None:
    s, c = final_val(row, out), _num(row.get(f"{out.metric}_val_const"))
    if s is None or c is None or headroom(out, c) <= 0:
        return None
    return float(signed(s - c, out.higher)) / headroom(out, c)


def selected_lr(rows: pd.DataFrame, outputs: Sequence[Output]) -> float:
    """The rate with the highest mean validation gain / headroom over seeds and outputs (diverged: 0)."""
    def score(part: pd.DataFrame) -> float:
        return float(np.mean([val_gain(r, o) or 0.0 for _, r in part.iterrows() for o in outputs]))
    means = {lr: score(part) for lr, part in rows.groupby("lr_value", sort=True)}
    return max(means, key=lambda lr: (means[lr], -lr))  # a tie goes to the smaller rate


def _interval_cols(prefix: str, values: list[float]) -> dict[str, float]:
    if not values:
        return {prefix: math.nan, f"{prefix}_lo": math.nan, f"{prefix}_hi": math.nan}
    iv = t_interval(values)
    return {prefix: iv.estimate, f"{prefix}_lo": iv.lo, f"{prefix}_hi": iv.hi}


def _target(df: pd.DataFrame, chosen: dict[str, float], out: Output) -> float:
    """const + TARGET_FRAC x (best design's mean final validation score - const)."""
    finals = []
    for d, lr in chosen.items():
        vals = [final_val(r, out) for _, r in df[(df.design == d) & (df.lr_value == lr)].iterrows()]
        vals = [v for v in vals if v is not None]
        if vals:
            finals.append(float(np.mean(vals)))
    const = float(pd.to_numeric(df[f"{out.metric}_val_const"], errors="coerce").mean())
    best = max(finals, key=lambda v: signed(v, out.higher), default=const)
    return const + TARGET_FRAC * (best - const)


def _seed_rows(rows: pd.DataFrame, out: Output, target: float, budget: int) -> dict[str, list]:
    """Per-seed values at the selected rate: test score, gain, steps to target, beats the constant."""
    acc: dict[str, list] = {"score": [], "gain": [], "steps": [], "censored": [], "fails": []}
    for _, r in rows.iterrows():
        score, const = _num(r.get(out.metric)), _num(r.get(f"{out.metric}_const"))
        curve = r.get(f"{out.metric}_curve")
        steps, cens = steps_to_target(list(r.get("eval_steps") or []), list(curve) if curve is not None else [],
                                      target, out.higher, budget)
        acc["steps"].append(steps)
        acc["censored"].append(cens)
        acc["fails"].append(not bool(r.get(f"{out.metric}_beats")))
        if score is not None and const is not None:
            acc["score"].append(score)
            acc["gain"].append(float(signed(score - const, out.higher)))
    return acc


def _band_per_seed(rows: pd.DataFrame, outputs: Sequence[Output], out: Output) -> list[float]:
    bands = []
    for _, part in rows.groupby("seed", sort=True):
        band = lr_band({float(r.lr_value): val_gain(r, out) for _, r in part.iterrows()})
        if band is not None:
            bands.append(band)
    return bands


def difficulty_table(df: pd.DataFrame, task: str) -> pd.DataFrame:
    """One row per (design, output) with the four metrics and their 95% intervals over seeds.

    ``df``: the difficulty probe's ok records of ``task``. Columns: design, model, head,
    deepsup, output, lr, n_seeds, final(_lo/_hi), const, beats, steps(_lo/_hi), censored,
    band(_lo/_hi), fail(_lo/_hi), fail_decides.
    """
    outputs = OUTPUTS[task]
    if df.empty:
        return pd.DataFrame()
    df = with_design(df)
    budget = int(max((max(s) for s in df["eval_steps"] if isinstance(s, (list, tuple, np.ndarray)) and len(s)),
                     default=0))
    chosen = {d: selected_lr(part, outputs) for d, part in df.groupby("design", sort=True)}
    rows = []
    for out in outputs:
        target = _target(df, chosen, out)
        for d, lr in chosen.items():
            part = df[df.design == d]
            rows.append(_design_row(part, part[part.lr_value == lr], out, target, budget, lr, outputs))
    return pd.DataFrame(rows)


def _design_row(part: pd.DataFrame, at_lr: pd.DataFrame, out: Output, target: float, budget: int, lr: float,
                outputs: Sequence[Output]) -> dict[str, Any]:
    first = part.iloc[0]
    acc = _seed_rows(at_lr, out, target, budget)
    const = float(pd.to_numeric(at_lr[f"{out.metric}_const"], errors="coerce").mean())
    gain_iv = t_interval(acc["gain"]) if acc["gain"] else None
    room = headroom(out, const) if math.isfinite(const) else math.nan
    n = len(at_lr)
    fail = failure_interval(sum(acc["fails"]), n)
    if gain_iv is not None and gain_iv.defined:
        beats = math.isfinite(room) and room > 0 and beats_constant(gain_iv.lo, room)
    else:  # one seed: that seed's own within-run (bootstrap) gate
        beats = not any(acc["fails"])
    return {"design": first["design"], "model": first["model"], "head": first["param_head"],
            "deepsup": bool(first.get("param_deepsup")), "output": out.name, "metric": out.metric,
            "higher": out.higher, "lr": lr, "n_seeds": n, **_interval_cols("final", acc["score"]), "const": const,
            "headroom": room, "beats": beats, "target": target, **_interval_cols("steps", acc["steps"]),
            "censored": int(sum(acc["censored"])), **_interval_cols("band", _band_per_seed(part, outputs, out)),
            "fail": fail.estimate, "fail_lo": fail.lo, "fail_hi": fail.hi,
            "fail_decides": n >= MIN_FAILURE_SEEDS, "budget": budget}
