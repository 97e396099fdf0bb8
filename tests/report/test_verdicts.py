"""Verdict rules on synthetic records: supported, partly, not supported and missing data."""
from __future__ import annotations

from fcnprobe.report.data import RunData
from fcnprobe.report.verdicts import compute_verdicts
from synthetic_run import ALL_GOOD, FCN_FAILS, contract, cue, make_run


def _verdicts(tmp_path, records):
    run = RunData.load(make_run(tmp_path, records))
    return {v.key: v for v in compute_verdicts(run)}


def test_no_records_means_not_measured(tmp_path):
    v = _verdicts(tmp_path, [])
    assert {x.verdict for x in v.values()} == {"not measured"}
    assert len(v) == 7  # claims 1-4 and the seed's three examples


def test_claim3_supported_when_local_fcns_all_fail(tmp_path):
    v = _verdicts(tmp_path, [cue("fcn", FCN_FAILS, 13), cue("dilated", [1, .95, .9, .7, .55, .5], 35, i=1)])
    assert v["claim3"].verdict == "supported"
    assert "fcn 100% within its 6 px TRF radius and 53% beyond" in v["claim3"].evidence


def test_claim3_partly_when_a_dilated_fcn_reaches_everywhere(tmp_path):
    v = _verdicts(tmp_path, [cue("fcn", FCN_FAILS, 13), cue("dilated", ALL_GOOD, 35, i=1)])
    assert v["claim3"].verdict == "partly" and "dilated reach every distance" in v["claim3"].evidence


def test_claim3_not_supported_when_fcn_sees_beyond_its_trf(tmp_path):
    v = _verdicts(tmp_path, [cue("fcn", ALL_GOOD, 13)])
    assert v["claim3"].verdict == "not supported"


def test_claim1_partly_when_global_pooling_rescues(tmp_path):
    v = _verdicts(tmp_path, [cue("fcn", FCN_FAILS, 13), cue("fcn_gap", ALL_GOOD, None, i=1)])
    assert v["claim1"].verdict == "partly"
    v = _verdicts(tmp_path / "b", [cue("fcn", FCN_FAILS, 13), cue("fcn_gap", FCN_FAILS, None, i=1)])
    assert v["claim1"].verdict == "supported"


def test_seed_examples_compare_printed_shapes(tmp_path):
    v = _verdicts(tmp_path, [contract("seed_simple_fcn", "dense:10", 256, [1, 10, 256, 256]),
                             contract("seed_attempted_vector", "vector:5", 256, [1, 5, 128, 128], i=1)])
    assert v["example1"].verdict == "supported"
    assert v["example2"].verdict == "not supported"
    assert v["example3"].verdict == "not measured"


def test_claim2_from_contract(tmp_path):
    recs = [contract("fcn", "dense:4", h, [1, 4, h, h], i=h) for h in (32, 48)]
    recs.append(contract("cnn_fc", "dense:4", 48, None, ok=False, matches=False, error_type="ValueError", i=3))
    v = _verdicts(tmp_path, recs)
    assert v["claim2"].verdict == "supported" and "2/2 dense FCN cells" in v["claim2"].evidence
    assert "cnn_fc runs at 0/1 sizes" in v["claim2"].evidence
    bad = [contract("fcn", "dense:4", 32, [1, 4, 16, 16])]
    assert _verdicts(tmp_path / "b", bad)["claim2"].verdict == "not supported"


def test_claim1_supported_needs_fcn_gap_to_fail_beyond_the_fcn_reach(tmp_path):
    near_good = [0.99, 0.97, 0.95, 0.9, 0.88, 0.85]  # min bin < 0.9 but far above failure
    v = _verdicts(tmp_path, [cue("fcn", FCN_FAILS, 13), cue("fcn_gap", near_good, None, i=1)])
    assert v["claim1"].verdict == "partly"


def test_untrained_fcn_gives_not_measured(tmp_path):
    untrained = [0.6, 0.55, 0.5, 0.5, 0.5, 0.5]
    v = _verdicts(tmp_path, [cue("fcn", untrained, 13), cue("fcn_gap", FCN_FAILS, None, i=1)])
    assert v["claim1"].verdict == v["claim3"].verdict == "not measured"
    assert "cannot tell a reach limit from a failure to learn" in v["claim3"].evidence
