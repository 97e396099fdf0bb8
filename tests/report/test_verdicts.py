"""Verdict rules on synthetic records: claim 2, the seed examples, claim 4's registration and missing data.

Claims 1 and 3 are tested end to end from planted models in ``test_claims13.py``: synthetic
numbers could reach verdicts a real run cannot (issue 15). Claim 4's rule is tested in
``test_claim4.py`` and its card against its table in ``test_claim4_card.py``."""
from __future__ import annotations

from fcnprobe.report.data import RunData
from fcnprobe.report.verdicts import compute_verdicts
from synthetic_run import PROV, contract, make_run
from tests.difficulty_synth import Design, as_records, records


def _verdicts(tmp_path, records):
    run = RunData.load(make_run(tmp_path, records))
    return {v.key: v for v in compute_verdicts(run)}


def test_no_records_means_not_measured(tmp_path):
    v = _verdicts(tmp_path, [])
    assert {x.verdict for x in v.values()} == {"not measured"}
    assert len(v) == 7  # claims 1-4 and the seed's three examples


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


def test_claim4_card_is_the_difficulty_rule(tmp_path):
    from fcnprobe.report.claim4 import RULE

    df = records("locate", [Design("fcn", "softargmax", 150.0), Design("cnn_fc", "linear", 30.0)])
    v = _verdicts(tmp_path, as_records(df, PROV))["claim4"]
    assert v.rule == " ".join(RULE.split()) and "steps to target" in v.rule
    assert v.verdict == "supported" and "locate/box [harder]" in v.evidence, v.evidence
