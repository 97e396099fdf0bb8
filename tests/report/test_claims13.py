"""Claims 1 and 3 reach every verdict from planted models run end to end through the context probe (smoke).

One sweep trains (one dummy parameter) and scores every planted model on same_different and aligned_image;
each scenario reads a subset of those records, as a run with only those models would.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fcnprobe.analysis.stats import bootstrap_interval
from fcnprobe.config import RunConfig
from fcnprobe.report import claims13 as C
from fcnprobe.report.data import RunData
from fcnprobe.report.verdicts import compute_verdicts
from fcnprobe.results import records_to_frame
from fcnprobe.sweep import run_sweep
from planted import PLANTS, register_plants


PLANTED_EVAL = 512  # held-out samples (256 pairs, ~85 per bin): all-right bins then have lower bounds > 0.95


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory) -> RunData:
    from fcnprobe.probes.context import SETTINGS

    register_plants()
    patch = pytest.MonkeyPatch()
    patch.setitem(SETTINGS, "smoke", dataclasses.replace(SETTINGS["smoke"], eval_samples=PLANTED_EVAL))
    out = tmp_path_factory.mktemp("planted") / "run"
    cfg = RunConfig(out=str(out), device="cpu", preset="smoke", workers=1, models=tuple(PLANTS),
                    tasks=("same_different", "aligned_image"))
    try:
        summary = run_sweep(["context"], cfg, progress=False)
    finally:
        patch.undo()
    assert summary.failed == 0
    return RunData.load(out)


def _subset(run: RunData, models: set[str]) -> RunData:
    recs = [r for r in run.records if r.model in models]
    return dataclasses.replace(run, records=recs, df=records_to_frame(recs))


def _verdicts(run: RunData, *models: str) -> dict[str, C.Finding]:
    sub = _subset(run, set(models))
    return {v.key: v for v in compute_verdicts(sub)}


CLAIM3 = [("supported", ("plant_global", "plant_near")), ("partly", ("plant_global", "plant_mid")),
          ("not supported", ("plant_global", "plant_cover")), ("inconclusive", ("plant_global", "plant_noisy")),
          ("not measured", ("plant_const", "plant_cover"))]
CLAIM1 = [("supported", ("plant_global", "plant_near")), ("partly", ("plant_global", "plant_identity")),
          ("not supported", ("plant_global", "plant_cover")), ("inconclusive", ("plant_global", "plant_noisy")),
          ("not measured", ("plant_const", "plant_cover"))]


@pytest.mark.parametrize("want,models", CLAIM3)
def test_claim3_reaches_every_verdict(planted_run, want, models):
    v = _verdicts(planted_run, *models)["claim3"]
    assert v.verdict == want, v.evidence
    assert "−25%" in v.evidence and "+25%" in v.evidence


@pytest.mark.parametrize("want,models", CLAIM1)
def test_claim1_reaches_every_verdict(planted_run, want, models):
    v = _verdicts(planted_run, *models)["claim1"]
    assert v.verdict == want, v.evidence


def test_evidence_names_numbers_with_intervals(planted_run):
    v = _verdicts(planted_run, "plant_global", "plant_near")
    assert "[50%, 50%]" in v["claim3"].evidence and "n=" in v["claim3"].evidence
    assert "clopper-pearson" in v["claim3"].evidence  # the global design's all-right bin: an exact bound
    assert "Holm-adjusted p" in v["claim3"].evidence and "claim1, claim3" in v["claim3"].evidence


def test_probe_records_carry_pair_units(planted_run):
    rec = next(r for r in planted_run.records if r.model == "plant_near" and r.task == "same_different")
    units = planted_run.array(rec.cell_id, C.UNITS_ARRAY)
    assert units.shape == (PLANTED_EVAL // 2, len(rec.metrics["dist_bin_lo_px"]))  # pairs
    assert rec.metrics["unit_kind"] == "pair" and rec.metrics["covers_task"] is True
    per_bin = np.nanmean(units, 0)
    acc = [np.nan if a is None else a for a in rec.metrics["acc_by_dist_frac"]]
    assert np.allclose(per_bin, acc, equal_nan=True)  # vector task: one element per image, two per pair
    assert set(np.unique(units[np.isfinite(units)])) <= {0.0, 0.5, 1.0}


def test_design_categories():
    assert C.design("fcn", "dense:2") == "fcn" and C.design("fcn", "vector:2@gap") == "fcn_pool"
    assert C.design("global_op", "vector:2") == "global_op"


def test_thresholds_follow_chance_and_scale():
    succ, fail = C.Thresholds().at(0.5)
    assert (succ, fail) == pytest.approx((0.9, 0.75))
    lo, hi = C.Thresholds().scaled(1.25).at(0.5)
    assert lo == pytest.approx(1.0) and hi == pytest.approx(0.8125)


def test_all_right_units_get_an_exact_lower_bound():
    iv = C._interval(np.ones(72), per_seed=False)
    assert iv.method == "clopper-pearson" and iv.lo == pytest.approx(0.025 ** (1 / 72)) and iv.hi == 1.0


def test_gate_uses_the_lower_bound():
    iv = bootstrap_interval([0.5, 1.0] * 8)
    assert C.passes_gate(iv, 0.5) and not C.passes_gate(bootstrap_interval([0.5] * 15 + [1.0]), 0.5)


def test_the_global_op_gate_is_per_design_and_task():
    import pandas as pd

    from fcnprobe.analysis.stats import Interval

    learned, chance_level = Interval(0.8, 0.75, 0.85, 3, 0.95, "t"), Interval(0.5, 0.49, 0.51, 3, 0.95, "t")
    bins = pd.DataFrame({"design": "global_op", "model": ["g", "g", "h"], "task": ["aligned", "same", "same"],
                         "overall": [chance_level, learned, learned], "chance": 0.5, "lo_px": 0})
    kept, failed = C._gated_global(bins)
    assert failed == ["g (aligned)"]  # g did not learn aligned, but stays in the comparison on same
    assert set(zip(kept.model, kept.task)) == {("g", "same"), ("h", "same")}


def test_shown_bounds_stay_between_0_and_100_percent():
    assert (C._pct(1.04), C._pct(-0.2), C._pct(0.5)) == ("100%", "0%", "50%")
