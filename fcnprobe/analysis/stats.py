"""Intervals, multiple-testing correction and the verdict gates every claim shares (numpy + scipy only).

* ``t_interval`` -- across seeds: Student's t over per-seed means (``scipy.stats.t``).
* ``bootstrap_interval`` -- within one run: ``scipy.stats.bootstrap`` over the
  independent units, one number per unit. For paired tasks a unit is a held-out
  *pair* (its score, or its A - B difference), never a pixel: pixels of one image
  are not independent, and resampling them gives intervals that are far too narrow.
* ``clopper_pearson`` -- the exact binomial interval of a proportion (``scipy.stats.binomtest``):
  seed failure rates, and one seed's n-of-n held-out pairs, where a bootstrap has zero width.
* ``holm`` -- Holm's step-down adjusted p-values (Holm 1979). scipy ships only
  Benjamini-Hochberg / Yekutieli (``false_discovery_control``), so it is written here.
* ``beats_constant`` -- the one definition of "learned something": the lower 95%
  bound of the gain over the constant guess, signed by the metric's direction,
  exceeds ``BEATS_FRACTION`` (5%) of the headroom (best possible - constant).
* ``interval_verdict`` / ``sensitivity`` -- a verdict needs the whole interval past
  its threshold; otherwise it is "inconclusive". ``sensitivity`` reports how the
  verdict moves when the threshold moves by +-25%.

An interval from one value (one seed, one unit) is undefined: it is returned as
(-inf, +inf) with ``defined=False``, so every verdict on it is "inconclusive".
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import numpy as np
from scipy import stats

BEATS_FRACTION = 0.05  # a design "beats the constant guess" when its gain's lower bound exceeds 5% of the headroom
SENSITIVITY = 0.25  # thresholds move by +-25% in the robustness view
VERDICTS = ("supported", "not supported", "inconclusive")
DIRECTIONS = ("above", "below")  # the claim holds when the quantity is above / below the threshold


@dataclasses.dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval."""

    estimate: float  # the statistic on the full sample (the mean for t_interval)
    lo: float  # lower bound; -inf when undefined
    hi: float  # upper bound; +inf when undefined
    n: int  # seeds or units behind it
    confidence: float  # e.g. 0.95
    method: str  # 't', 'bootstrap-BCa', 'bootstrap-percentile', 'degenerate' or 'undefined'

    @property
    def defined(self) -> bool:
        return math.isfinite(self.lo) and math.isfinite(self.hi)

    def to_dict(self) -> dict[str, float | int | str]:
        return dataclasses.asdict(self)


def _values(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0:
        raise ValueError(f"{what}: no values")
    if not np.isfinite(x).all():
        raise ValueError(f"{what}: values must be finite (got NaN or inf)")
    return x


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _trivial(x: np.ndarray, estimate: float, confidence: float) -> Interval | None:
    """One value: undefined; all values equal: a zero-width interval. Else None."""
    if x.size == 1:
        return Interval(estimate, -math.inf, math.inf, 1, confidence, "undefined")
    if np.ptp(x) == 0:
        return Interval(estimate, estimate, estimate, x.size, confidence, "degenerate")
    return None


def t_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Student-t interval for the mean of per-seed values; n=1 gives (-inf, inf), ``defined`` False.

    >>> t_interval([0.8, 0.9, 1.0]).lo < 0.9 < t_interval([0.8, 0.9, 1.0]).hi
    True
    """
    _check_confidence(confidence)
    x = _values(values, "t_interval")
    mean = float(x.mean())
    trivial = _trivial(x, mean, confidence)
    if trivial is not None:
        return trivial
    sem = float(x.std(ddof=1) / math.sqrt(x.size))
    lo, hi = stats.t.interval(confidence, x.size - 1, loc=mean, scale=sem)
    return Interval(mean, float(lo), float(hi), int(x.size), confidence, "t")


def bootstrap_interval(units: Sequence[float], statistic: Callable[..., np.ndarray] = np.mean,
                       confidence: float = 0.95, seed: int = 0, n_resamples: int = 2000,
                       method: str = "BCa") -> Interval:
    """``scipy.stats.bootstrap`` interval of ``statistic`` over independent units, one number each.

    ``statistic(x, axis=...)`` must reduce along ``axis`` (numpy style). Deterministic
    for a given ``seed``. n=1 gives (-inf, inf); equal values a zero-width interval.
    """
    _check_confidence(confidence)
    x = _values(units, "bootstrap_interval")
    estimate = float(statistic(x, axis=0))
    trivial = _trivial(x, estimate, confidence)
    if trivial is not None:
        return trivial
    res = stats.bootstrap((x,), statistic, n_resamples=n_resamples, confidence_level=confidence,
                          method=method, vectorized=True, random_state=np.random.default_rng(seed))
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(lo) and math.isfinite(hi)):  # BCa can fail on very skewed samples
        return bootstrap_interval(x, statistic, confidence, seed, n_resamples, "percentile")
    return Interval(estimate, lo, hi, int(x.size), confidence, f"bootstrap-{method}")


def clopper_pearson(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Exact (Clopper-Pearson) interval of ``successes / n``; n of n gives ((1 - confidence) / 2) ** (1 / n)."""
    _check_confidence(confidence)
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence, method="exact")
    return Interval(successes / n, float(ci.low), float(ci.high), int(n), confidence, "clopper-pearson")


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values, in the input order: reject H_i at level a iff adjusted_i <= a.

    adjusted_(k) = max_{j <= k} min(1, (m - j + 1) * p_(j)) over the ascending p_(1..m).
    """
    p = np.asarray(pvalues, dtype=float)
    if p.size == 0:
        return []
    if ((p < 0) | (p > 1) | ~np.isfinite(p)).any():
        raise ValueError("holm: p-values must lie in [0, 1]")
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (p.size - np.arange(p.size)) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted.tolist()


def signed_gain(score: float, constant: float, higher_is_better: bool) -> float:
    """Gain over the constant guess in the metric's good direction (positive = better than constant)."""
    return score - constant if higher_is_better else constant - score


def beats_constant(lower_bound_gain: float, headroom: float, fraction: float = BEATS_FRACTION) -> bool:
    """True when the lower bound of the signed gain exceeds ``fraction`` of the headroom.

    ``headroom`` = best possible - constant, signed like the gain (so > 0). A constant
    that is already the best possible score leaves nothing to learn: ValueError.
    """
    if not headroom > 0:
        raise ValueError(f"headroom must be > 0 (best possible beyond the constant guess), got {headroom}")
    return bool(lower_bound_gain > fraction * headroom)


def interval_verdict(lo: float, hi: float, threshold: float, direction: str = "above") -> str:
    """'supported' when the whole interval is past ``threshold`` in ``direction``, 'not supported'
    when it is wholly on the other side, else 'inconclusive' (touching the threshold counts as straddling)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got '{direction}'")
    if math.isnan(lo) or math.isnan(hi) or lo > hi:
        raise ValueError(f"bad interval ({lo}, {hi})")
    above, below = lo > threshold, hi < threshold
    if direction == "below":
        above, below = below, above
    return "supported" if above else "not supported" if below else "inconclusive"


@dataclasses.dataclass(frozen=True)
class Sensitivity:
    """How one verdict moves when its threshold moves by +-``rel``."""

    thresholds: tuple[float, float, float]  # (1 - rel, 1, 1 + rel) x threshold
    verdicts: tuple[str, str, str]  # the verdict at each

    @property
    def stable(self) -> bool:
        return len(set(self.verdicts)) == 1


def sensitivity(lo: float, hi: float, threshold: float, direction: str = "above",
                rel: float = SENSITIVITY) -> Sensitivity:
    """The verdict at threshold x (1 - rel), x 1 and x (1 + rel)."""
    ts = (threshold * (1 - rel), threshold, threshold * (1 + rel))
    return Sensitivity(ts, tuple(interval_verdict(lo, hi, t, direction) for t in ts))
