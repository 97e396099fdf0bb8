"""Verdict rules on synthetic records: claim 2, the seed examples, claim 4's registration and missing data.

Claims 1 and 3 are tested end to end from planted models in ``test_claims13.py``: synthetic
numbers could reach verdicts a real run cannot (issue 15). Claim 4's rule is tested in
``test_claim4.py`` and its card against its table in ``test_claim4_card.py``."""
from __future__ import annotations

from fcnprobe.report.data import RunData
from fcnprobe.report.verdicts import compute_verdicts
from synthetic_run import PROV, _rec, contract, cue, make_run
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


def test_claim2_and_examples_show_an_exact_count_with_its_clopper_pearson_interval(tmp_path):
    recs = [contract("fcn", "dense:4", h, [1, 4, h, h], i=h) for h in (32, 48, 64)]
    recs += [contract("seed_simple_fcn", "dense:10", h, [1, 10, h, h], i=100 + h) for h in (32, 256)]
    v = _verdicts(tmp_path, recs)
    assert "5/5 dense FCN cells" in v["claim2"].evidence  # the seed's SimpleFCN is an FCN too
    assert "[95% Clopper–Pearson 48%–100% for an untried case of this kind; exact for the 5 that ran]" in \
        v["claim2"].evidence  # 0.025 ** (1/5) = 0.478
    assert "at 2/2 input sizes its output's spatial size follows the input [95% Clopper–Pearson 16%–100%" in \
        v["example1"].evidence  # 0.025 ** (1/2) = 0.158
    half = [contract("fcn", "dense:4", 32, [1, 4, 32, 32]), contract("fcn", "dense:4", 48, [1, 4, 24, 24], i=1)]
    ev = _verdicts(tmp_path / "b", half)["claim2"].evidence
    assert "1/2 dense FCN cells" in ev and "Clopper–Pearson 1%–99%" in ev, ev


def test_claim4_card_is_the_difficulty_rule(tmp_path):
    from fcnprobe.report.claim4 import RULE

    df = records("locate", [Design("fcn", "softargmax", 150.0), Design("cnn_fc", "linear", 30.0)])
    v = _verdicts(tmp_path, as_records(df, PROV))["claim4"]
    assert v.rule == " ".join(RULE.split()) and "steps to target" in v.rule
    assert v.verdict == "supported" and "locate/box [harder]" in v.evidence, v.evidence


def test_claim2_says_by_construction_and_reads_native_strides_and_adapters(tmp_path):
    recs = [contract("fcn", "dense:4", 32, [1, 4, 32, 32]),
            _rec("realarch", "segformer_b0", "none", {"output_stride": 4.0}, 1),
            _rec("realarch", "vit_tiny", "none", {"output_stride": None}, 2),
            _rec("shape", "fcn", "locate", {"iou_mean": 0.9, "iou_mean_const": 0.02, "head_params_count": 51}, 3,
                 adapter="softargmax"),
            _rec("shape", "fcn", "locate", {"iou_mean": 0.01, "iou_mean_const": 0.02, "head_params_count": 68}, 4,
                 adapter="gmp")]
    ev = _verdicts(tmp_path, recs)["claim2"].evidence
    assert "by construction" in ev and "segformer_b0 4" in ev and "vit_tiny" not in ev
    assert "softargmax IoU 0.90 vs constant 0.02 (51 head params)" in ev and "gmp IoU 0.01" in ev


def test_context_erf_view_reads_the_erf_of_the_same_weights(tmp_path):
    from fcnprobe.report.sections.context import ERF_RADIUS_STDS, bins_frame, erf_radii

    ctx = cue("fcn", [1.0, 0.9, 0.6, 0.5, 0.5, 0.5], 13)
    erf = [_rec("erf", "fcn", "global_cue", {"erf_std_px": 2.5, "weights_source": "context",
                                             "weights_cell": ctx.cell_id}, 1, trained=True),
           _rec("erf", "fcn", "none", {"erf_std_px": 9.0, "weights_source": None, "weights_cell": None}, 2)]
    run = RunData.load(make_run(tmp_path, [ctx, *erf]))
    radii = erf_radii(run)
    assert radii == {ctx.cell_id: ERF_RADIUS_STDS * 2.5}  # the untrained map is not the scored weights'
    frame = bins_frame(run.ok("context", "global_cue"), radii)
    assert (frame.dist_over_erf_radius == (frame.bin_centre_px / 5.0).round(3)).all()
