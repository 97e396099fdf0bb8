"""The difficulty metrics against closed forms (torch-free)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from fcnprobe.analysis.difficulty import (OUTPUTS, constant_prediction, difficulty_table, failure_interval, lr_band,
                                          steps_to_target, unit_scores)
from tests.difficulty_synth import Design, records


def test_steps_to_target_first_crossing_and_censoring():
    steps, curve = [10, 20, 30, 40], [0.1, 0.5, 0.9, 0.95]
    assert steps_to_target(steps, curve, 0.9, True, 40) == (30, False)
    assert steps_to_target(steps, curve, 0.99, True, 40) == (40, True)  # never reached: censored at the budget
    assert steps_to_target(steps, [3.0, 2.0, 1.0, 0.5], 1.0, False, 40) == (30, False)  # lower is better


def test_lr_band_fraction_of_grid_within_90_percent():
    assert lr_band({1e-3: 0.5, 3e-3: 1.0, 1e-2: 0.95}) == pytest.approx(2 / 3)
    assert lr_band({1e-3: None, 3e-3: 1.0, 1e-2: 0.89}) == pytest.approx(1 / 3)  # diverged: outside the band
    assert lr_band({1e-3: -0.1, 3e-3: 0.0}) == 0.0  # nothing learned: no band
    assert lr_band({1e-3: 1.0}) is None  # one rate: undefined


def test_failure_interval_is_clopper_pearson():
    iv = failure_interval(0, 10)
    assert iv.estimate == 0 and iv.lo == 0
    assert iv.hi == pytest.approx(1 - 0.025 ** (1 / 10))  # closed form for k = 0
    assert failure_interval(5, 5).lo == pytest.approx(0.025 ** (1 / 5))


def test_unit_scores_closed_form():
    layout = {"findings": slice(0, 4), "params": slice(4, 6), "box": slice(6, 10)}
    true = np.array([[1, 0, 1, 0, 0.4, 0.5, 0.0, 0.0, 0.5, 0.5]])
    pred = np.array([[2, -1, -1, -3, 0.6, 0.5, 0.0, 0.0, 0.5, 0.25]])
    meta = {"count": np.array([2.0]), "mean_side": np.array([3.0]), "max_count": 5, "max_side": 6}
    s = unit_scores("multi_output", pred, true, meta, layout)
    assert s["findings"][0] == 0.75 and s["count"][0] == pytest.approx(1.0)
    assert s["size"][0] == pytest.approx(0.0) and s["box"][0] == pytest.approx(0.5)
    const = constant_prediction("multi_output", true[0], 3, layout)
    assert (const[:, :4] == 1).all() and const.shape == (3, 10)


def test_table_steps_match_the_closed_form():
    """Steps to 90% of the gain of a curve g(1 - exp(-t/tau)) is tau ln 10, rounded up to the eval grid."""
    tau_fast, tau_slow, every = 30.0, 80.0, 5
    df = records("locate", [Design("cnn_fc", "linear", tau_fast, tau_jitter=0.0),
                            Design("fcn", "softargmax", tau_slow, tau_jitter=0.0)], seeds=3, budget=800, every=every)
    tab = difficulty_table(df, "locate").set_index("design")
    # the target uses the best design's final (both reach the same gain), so the crossing is at tau ln 10
    for design, tau in (("cnn_fc+linear", tau_fast), ("fcn+softargmax", tau_slow)):
        assert tab.loc[design, "steps"] == every * math.ceil(tau * math.log(10) / every - 1e-9)
        assert tab.loc[design, "censored"] == 0
        assert tab.loc[design, "band"] == 1.0 and tab.loc[design, "fail"] == 0.0
        assert bool(tab.loc[design, "beats"])


def test_table_band_and_censoring():
    df = records("locate", [Design("cnn_fc", "linear", 50.0, lr_mult=(0.5, 1.0, 0.5)),
                            Design("fcn", "gap", 5000.0)], seeds=3, budget=400)
    tab = difficulty_table(df, "locate").set_index("design")
    assert tab.loc["cnn_fc+linear", "band"] == pytest.approx(1 / 3)
    assert tab.loc["cnn_fc+linear", "lr"] == 3e-3  # the selected rate is the best one
    assert tab.loc["fcn+gap", "censored"] == 3  # never reaches 90% of the best design's gain
    assert tab.loc["fcn+gap", "steps"] == 400


def test_every_task_has_outputs_with_directions():
    assert [o.name for o in OUTPUTS["multi_output"]] == ["findings", "count", "size", "box"]
    assert all(o.higher == (o.best == 1.0) for outs in OUTPUTS.values() for o in outs)
