"""The compute-matched view joins each context record to the MAC count of its exact configuration."""
from __future__ import annotations

import dataclasses

import pytest

from fcnprobe.report.data import RunData
from fcnprobe.report.sections.compute import compute_frame, compute_section, summary
from synthetic_run import _rec, make_run


def _ctx(model, acc, seed, steps, width=16, distance=None, i=0):
    extra = {} if distance is None else {"distance": distance}
    rec = _rec("context", model, "shift" if distance is not None else "same_different",
               {"acc_frac": acc, "stopped_at_step": steps, "steps_count": 1200, "batch_size_count": 16}, i,
               head="vector:2", image_size=32, width=width, depth=None, **extra)
    return dataclasses.replace(rec, seed=seed)


def _count(model, macs, width=16, i=0):
    return _rec("cost", model, "none", {"train_macs_per_sample": 3 * macs, "macs": macs}, i, variant="trained",
                head="vector:2", size=32, width=width, depth=None, in_channels=3)


def test_compute_is_macs_per_sample_times_samples_seen(tmp_path):
    recs = [_ctx("fcn", 0.9, 0, 600, i=1), _ctx("fcn", 0.8, 1, 1200, i=2), _ctx("cnn_fc", 0.7, 0, 300, i=3),
            _ctx("fcn", 0.5, 0, 100, width=8, i=4),  # a configuration nobody counted: no compute
            _count("fcn", 1000, i=5), _count("cnn_fc", 100, i=6)]
    frame = compute_frame(RunData.load(make_run(tmp_path, recs))).set_index(["model", "seed", "width"])
    assert frame.loc[("fcn", 0, 16), "train_compute"] == 3 * 1000 * 600 * 16
    assert frame.loc[("fcn", 1, 16), "train_compute"] == 3 * 1000 * 1200 * 16
    assert frame.loc[("cnn_fc", 0, 16), "train_compute"] == 3 * 100 * 300 * 16
    assert frame.loc[("fcn", 0, 8), "train_compute"] != frame.loc[("fcn", 0, 8), "train_compute"]  # NaN
    tab = summary(frame.reset_index())
    fcn = tab[tab.model == "fcn"].iloc[0]
    assert fcn["accuracy"] == pytest.approx((0.9 + 0.8 + 0.5) / 3) and fcn["seeds"] == 3


def test_shift_distances_are_separate_rows_and_no_counts_no_section(tmp_path):
    recs = [_ctx("fcn", 1.0, 0, 500, distance=0, i=1), _ctx("fcn", 0.3, 0, 500, distance=12, i=2),
            _count("fcn", 1000, i=3)]
    run = RunData.load(make_run(tmp_path / "a", recs))
    assert set(summary(compute_frame(run)).task) == {"shift d=0", "shift d=12"}
    sec = compute_section(run)
    assert sec is not None and not sec.figures and len(sec.tables) == 1  # shift: a table, no figure
    assert compute_section(RunData.load(make_run(tmp_path / "b", recs[:2]))) is None
