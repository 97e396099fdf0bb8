"""fcnprobe.analysis.stats: interval coverage on synthetic data with a known truth, Holm by hand,
and every verdict (including 'inconclusive') reachable."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from fcnprobe.analysis.stats import (beats_constant, bootstrap_interval, holm, interval_verdict, sensitivity,
                                     signed_gain, t_interval)

SIMS = 200


def _coverage(make_interval, draw, truth: float) -> tuple[float, float]:
    """Fraction of SIMS intervals that contain ``truth``, and their mean width."""
    rng = np.random.default_rng(2024)
    hits, widths = 0, []
    for i in range(SIMS):
        iv = make_interval(draw(rng), i)
        hits += iv.lo <= truth <= iv.hi
        widths.append(iv.hi - iv.lo)
    return hits / SIMS, float(np.mean(widths))


def test_t_interval_covers_the_true_mean():
    cov, width = _coverage(lambda x, i: t_interval(x), lambda r: r.normal(0.7, 0.05, size=5), 0.7)
    assert cov >= 0.90
    assert width < 0.2  # finite and informative: 2 * t(0.975, 4) * 0.05 / sqrt(5) ~ 0.12


def test_a_too_narrow_interval_fails_the_coverage_check():
    cov, _ = _coverage(lambda x, i: t_interval(x, confidence=0.5), lambda r: r.normal(0.7, 0.05, size=5), 0.7)
    assert cov < 0.9  # the check can fail


def test_bootstrap_covers_the_true_accuracy_over_held_out_pairs():
    # 60 independent pairs, each scored right (1) or wrong (0) with probability 0.8
    cov, width = _coverage(lambda x, i: bootstrap_interval(x, seed=i, n_resamples=300),
                           lambda r: (r.random(60) < 0.8).astype(float), 0.8)
    assert cov >= 0.90
    assert width < 0.3


def test_bootstrap_is_deterministic_and_takes_a_statistic():
    x = np.random.default_rng(0).normal(size=30)
    a, b = bootstrap_interval(x, np.median, seed=3, n_resamples=200), bootstrap_interval(x, np.median, seed=3,
                                                                                          n_resamples=200)
    assert a == b and a.lo < a.estimate < a.hi and a.estimate == float(np.median(x))


@pytest.mark.parametrize("fn", [t_interval, bootstrap_interval])
def test_one_value_gives_an_undefined_interval_and_an_inconclusive_verdict(fn):
    iv = fn([0.93])
    assert (iv.lo, iv.hi, iv.defined, iv.method) == (-math.inf, math.inf, False, "undefined")
    assert interval_verdict(iv.lo, iv.hi, 0.9) == "inconclusive"


@pytest.mark.parametrize("fn", [t_interval, bootstrap_interval])
def test_equal_values_give_a_zero_width_interval(fn):
    iv = fn([1.0, 1.0, 1.0])
    assert (iv.lo, iv.hi, iv.method) == (1.0, 1.0, "degenerate")


@pytest.mark.parametrize("bad", [[], [0.5, float("nan")], [float("inf"), 1.0]])
def test_bad_input_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="no values|finite"):
        t_interval(bad)


def test_holm_against_a_hand_computed_example():
    # ascending 0.01, 0.02, 0.03, 0.04 (m=4): 4*0.01=0.04, 3*0.02=0.06, 2*0.03=0.06, 1*0.04=0.04 -> running max
    got = holm([0.03, 0.01, 0.04, 0.02])
    assert got == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([]) == []
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([1.5])


@pytest.mark.parametrize("lo,hi,direction,verdict", [
    (0.92, 0.97, "above", "supported"), (0.60, 0.80, "above", "not supported"),
    (0.85, 0.95, "above", "inconclusive"), (0.90, 0.95, "above", "inconclusive"),
    (0.60, 0.80, "below", "supported"), (0.92, 0.97, "below", "not supported"),
    (0.85, 0.95, "below", "inconclusive")])
def test_every_verdict_is_reachable(lo, hi, direction, verdict):
    assert interval_verdict(lo, hi, 0.9, direction) == verdict


def test_inconclusive_from_seed_records_that_straddle_the_threshold():
    iv = t_interval([0.86, 0.93, 0.91])  # per-seed accuracies around the 0.9 success threshold
    assert iv.lo < 0.9 < iv.hi and interval_verdict(iv.lo, iv.hi, 0.9) == "inconclusive"


def test_verdict_rejects_bad_arguments():
    with pytest.raises(ValueError, match="direction"):
        interval_verdict(0.1, 0.2, 0.5, "sideways")
    with pytest.raises(ValueError, match="bad interval"):
        interval_verdict(0.3, 0.2, 0.5)


def test_sensitivity_reports_how_a_verdict_moves():
    s = sensitivity(0.095, 0.12, 0.1)  # a 10% margin whose interval starts just below it
    assert s.thresholds == pytest.approx((0.075, 0.1, 0.125))
    assert s.verdicts == ("supported", "inconclusive", "not supported") and not s.stable
    assert sensitivity(0.5, 0.6, 0.1).stable


def test_beats_constant_is_signed_by_the_metric_direction():
    # accuracy: constant 0.5, best 1.0 -> headroom 0.5, bar 0.025
    assert beats_constant(signed_gain(0.53, 0.5, True), 0.5)
    assert not beats_constant(signed_gain(0.52, 0.5, True), 0.5)
    # an error (lower is better): constant 0.9, best 0.0 -> headroom 0.9, bar 0.045
    assert beats_constant(signed_gain(0.80, 0.9, False), signed_gain(0.0, 0.9, False))
    assert not beats_constant(signed_gain(0.87, 0.9, False), signed_gain(0.0, 0.9, False))
    with pytest.raises(ValueError, match="headroom"):
        beats_constant(0.1, 0.0)


def test_stats_module_does_not_import_torch():
    code = "import sys, fcnprobe.analysis.stats; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
