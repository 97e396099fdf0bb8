"""Claim 4 read as difficulty: every verdict from records a real run could produce."""
from __future__ import annotations

import pandas as pd

from fcnprobe.report.claim4 import claim4, combine, separation
from tests.difficulty_synth import Design, records, run_of


def _verdict(df: pd.DataFrame) -> tuple[str, str]:
    return claim4(run_of(df))


def test_supported_when_the_fcn_needs_more_steps():
    df = records("locate", [Design("fcn", "softargmax", 150.0), Design("fcn", "linear", 300.0),
                            Design("cnn_fc", "linear", 30.0)])
    verdict, ev = _verdict(df)
    assert verdict == "supported", ev
    assert "steps to target" in ev and "learning-rate band" in ev and "seed failure rate" in ev
    assert "fcn+softargmax vs cnn_fc+linear" in ev  # the best design of each side


def test_not_supported_when_the_fcn_is_faster_and_wider_band():
    df = records("locate", [Design("fcn", "softargmax", 30.0),
                            Design("attention", "linear", 150.0, lr_mult=(0.3, 1.0, 0.3))])
    verdict, ev = _verdict(df)
    assert verdict == "not supported", ev


def test_inconclusive_when_intervals_overlap():
    df = records("locate", [Design("fcn", "softargmax", 60.0, tau_jitter=0.4),
                            Design("cnn_fc", "linear", 55.0, tau_jitter=0.4)])
    verdict, ev = _verdict(df)
    assert verdict == "inconclusive", ev


def test_partly_when_outputs_disagree():
    fcn = Design("fcn", "softargmax", {"findings": 30.0, "count": 60.0, "size": 60.0, "box": 200.0},
                 tau_jitter=0.02)
    other = Design("cnn_fc", "linear", {"findings": 150.0, "count": 60.0, "size": 60.0, "box": 40.0},
                   tau_jitter=0.02)
    verdict, ev = _verdict(records("multi_output", [fcn, other]))
    assert verdict == "partly", ev
    assert "multi_output/box [harder]" in ev and "multi_output/findings [easier]" in ev


def test_not_measured_when_a_design_never_beats_the_constant():
    df = records("locate", [Design("fcn", "softargmax", 50.0), Design("cnn_fc", "linear", 50.0, gain_frac=0.02)])
    verdict, ev = _verdict(df)
    assert verdict == "not measured" and "did not beat the constant guess" in ev


def test_the_best_design_is_one_that_beats_the_constant_when_any_does():
    from fcnprobe.report.claim4 import best

    rows = pd.DataFrame({"design": ["noisy", "steady", "flat"], "beats": [False, True, False],
                         "final": [0.77, 0.72, 0.50], "const": 0.54, "headroom": 0.46, "higher": True})
    assert best(rows)["design"] == "steady"  # the higher mean did not clear the gate: not the comparator
    assert best(rows[rows.design != "steady"])["design"] == "noisy"  # none beats: the best, to be gated out


def test_not_measured_without_records():
    assert claim4(run_of(pd.DataFrame()))[0] == "not measured"


def test_deep_supervision_is_kept_out_of_the_comparison():
    df = records("locate", [Design("fcn", "softargmax", 150.0), Design("fcn", "softargmax", 10.0, deepsup=True),
                            Design("cnn_fc", "linear", 30.0)])
    assert _verdict(df)[0] == "supported"


def test_failure_rate_decides_only_with_five_seeds():
    row = {"fail": 1.0, "fail_lo": 0.63, "fail_hi": 1.0, "fail_decides": True}
    other = {"fail": 0.0, "fail_lo": 0.0, "fail_hi": 0.37, "fail_decides": True}
    assert separation(pd.Series(row), pd.Series(other), "fail", +1) == "harder"
    assert separation(pd.Series({**row, "fail_decides": False}), pd.Series(other), "fail", +1) == "n/a"


def test_combine_covers_every_verdict():
    assert combine(["harder", "not measured"]) == "supported"
    assert combine(["easier"]) == "not supported"
    assert combine(["overlap", "overlap"]) == "inconclusive"
    assert combine(["harder", "overlap"]) == "partly"
    assert combine(["mixed"]) == "partly"
    assert combine(["easier", "overlap", "overlap"]) == "not supported"  # contrary evidence, none for the claim
    assert combine(["harder", "easier"]) == "partly"
    assert combine(["not measured"]) == "not measured"


def test_shown_intervals_stay_where_each_metric_lives():
    from fcnprobe.report.claim4 import interval

    row = pd.Series({"band": 0.67, "band_lo": -0.16, "band_hi": 1.5, "steps": 66.7, "steps_lo": -28.2,
                     "steps_hi": 161.5, "n_seeds": 3})
    assert interval(row, "band") == "0.67 [0, 1]"
    assert interval(row, "steps").endswith("[0, 161.5]")
    one = pd.Series({"steps": 120.0, "steps_lo": float("-inf"), "steps_hi": float("inf"), "n_seeds": 1})
    assert interval(one, "steps") == "120 (no interval: one seed)"
