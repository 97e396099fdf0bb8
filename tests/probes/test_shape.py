"""The shape probe: conv arithmetic, the contract on good and bad models, the seed's three
shapes, metrics against closed forms, and a smoke run with the record names the report reads."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

import fcnprobe
from fcnprobe.analysis.shape import box_iou, centre_metrics, contract_matrix, conv_out_size, multilabel_scores
from fcnprobe.config import RunConfig
from fcnprobe.models.layers import WrongRank
from fcnprobe.probes.shape import SEED_HEADS, SEED_PRINTED, check_contract
from fcnprobe.results import load_run
from fcnprobe.sweep import run_sweep

CONTRACT_METRICS = {"forward_ok", "out_shape", "target_shape", "follows_input", "matches_target",
                    "error_type", "error_message"}
LOCATE_METRICS = {"iou_mean", "center_err_px", "center_acc_frac", "postproc_ms_per_image", "differentiable",
                  "params_count", "train_time_s", "final_loss", "loss_curve", "loss_steps"}
MULTI_METRICS = {"findings_f1", "findings_acc_frac", "count_mae", "size_mae", "box_iou_mean", "loss_curve",
                 "loss_steps", "extra_modules", "params_count", "train_time_s"}


@pytest.mark.parametrize("size", [1, 7, 32, 33, 100])
@pytest.mark.parametrize("k,s,p,d", [(3, 1, 1, 1), (3, 2, 1, 1), (5, 2, 0, 1), (1, 1, 0, 1), (3, 1, 2, 2),
                                     (4, 4, 0, 1), (7, 3, 3, 1)])
def test_conv_out_size_matches_torch(size, k, s, p, d):
    expected = conv_out_size(size, k, s, p, d)
    if d == 1:
        assert expected == (size + 2 * p - k) // s + 1  # the textbook form
    conv = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d)
    if expected < 1:
        with pytest.raises(RuntimeError):
            conv(torch.zeros(1, 1, size, size))
    else:
        assert conv(torch.zeros(1, 1, size, size)).shape[-1] == expected


def _build(name, head, **kw):
    return lambda: fcnprobe.create_model(name, head=head, **kw)


def test_dense_output_follows_the_input_and_vectors_are_fixed():
    dense = check_contract(_build("fcn", "dense:4"), "dense:4", 48, 80)
    assert dense["out_shape"] == [1, 4, 48, 80] and dense["follows_input"] and dense["matches_target"]
    vec = check_contract(_build("fcn", "vector:5"), "vector:5", 48, 80)
    assert vec["out_shape"] == [1, 5] and vec["follows_input"] is False and vec["matches_target"]


def test_cnn_fc_at_another_size_is_a_record_not_a_crash():
    ok = check_contract(_build("cnn_fc", "box", image_size=32), "box", 32, 32)
    bad = check_contract(_build("cnn_fc", "box", image_size=32), "box", 48, 48)
    assert ok["forward_ok"] and ok["out_shape"] == [1, 4]
    assert not bad["forward_ok"] and bad["error_type"] == "ValueError" and "built for 32x32" in bad["error_message"]
    assert bad["out_shape"] is None and bad["follows_input"] is None and bad["error_stage"] == "forward"


def test_one_pixel_input_is_a_record():
    fcn = check_contract(_build("fcn", "dense:4"), "dense:4", 1, 1)
    assert fcn["forward_ok"] and fcn["out_shape"] == [1, 4, 1, 1]
    att = check_contract(_build("attention", "box"), "box", 1, 1)
    assert not att["forward_ok"] and att["error_type"] == "RuntimeError" and att["error_message"]


class TupleOut(nn.Module):
    def forward(self, x):
        return x, x


def test_wrong_rank_wrong_type_and_build_errors_are_records():
    rank = check_contract(lambda: WrongRank(4), "box", 20, 30)
    assert rank["forward_ok"] and rank["out_shape"] == [1, 4, 20] and rank["out_rank"] == 3
    assert not rank["matches_target"] and "rank 3, expected rank 2" in rank["shape_note"]
    tup = check_contract(TupleOut, "box", 8, 8)  # a tuple is probed at its first tensor (or --output)
    assert tup["forward_ok"] and tup["out_shape"] == [1, 3, 8, 8] and not tup["matches_target"]
    bad = check_contract(TupleOut, "box", 8, 8, output="out")
    assert bad["error_type"] == "ValueError" and bad["error_stage"] == "output" and "available" in bad["error_message"]
    build = check_contract(_build("fcn", "vector:5@softargmax"), "vector:5", 8, 8)
    assert build["error_type"] == "UsageError" and build["error_stage"] == "build"


class DictOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, stride=2, padding=1)

    def forward(self, x):
        return {"out": self.conv(x), "aux": x.mean()}


def test_dict_outputs_and_plain_builders():
    rec = check_contract(DictOut, "none", 32, 48, output="out")
    assert rec["forward_ok"] and rec["out_shape"] == [1, 2, 16, 24] and rec["target_shape"] is None
    assert rec["matches_target"] is None and rec["follows_input"] is False


def test_user_only_runs_have_no_control_cells_and_take_image_sizes():
    from fcnprobe.probes.shape import ShapeProbe

    cfg = RunConfig(preset="smoke", user_models=("tests.user_model_fixture:tiny_fcn",), image_sizes=(40, 96),
                    tasks=("contract",))
    cells = ShapeProbe().plan(cfg)
    assert cells and {c.model for c in cells} == {"tests.user_model_fixture:tiny_fcn"}
    assert {(c.p["height"], c.p["width"]) for c in cells} == {(40, 40), (96, 96)}
    zoo = ShapeProbe().plan(RunConfig(preset="smoke", tasks=("contract",)))
    assert any(c.model == "control_wrong_rank" for c in zoo)


def test_meta_only_cases_give_the_same_shape_and_count_flops():
    meta = check_contract(_build("fcn", "dense:4"), "dense:4", 40, 24, max_exec_gflop=0.0)
    real = check_contract(_build("fcn", "dense:4"), "dense:4", 40, 24)
    assert meta["executed"] is False and meta["meta_agrees"] is None and real["meta_agrees"] is True
    assert meta["out_shape"] == real["out_shape"] == [1, 4, 40, 24]
    # 2 flops per multiply-add; fcn depth 6 width 32 plus the 1x1 head, no bias terms counted
    macs = 40 * 24 * (3 * 32 * 9 + 5 * 32 * 32 * 9 + 32 * 4)
    assert meta["forward_gflop"] == pytest.approx(2 * macs / 1e9)


@pytest.mark.parametrize("name", sorted(SEED_HEADS))
def test_seed_models_print_the_seed_shapes(name):
    rec = check_contract(_build(name, SEED_HEADS[name]), SEED_HEADS[name], 256, 256)
    assert rec["executed"] and rec["out_shape"] == SEED_PRINTED[name]
    assert rec["matches_target"] == (name == "seed_simple_fcn")  # Examples 2 and 3 miss their target


def test_box_iou_and_centre_metrics_closed_forms():
    a = np.array([[0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5], [0.1, 0.1, 0.1, 0.1]])
    b = np.array([[0, 0, 0.5, 0.5], [0.25, 0, 0.75, 0.5], [0.5, 0.5, 1, 1], [0.1, 0.1, 0.1, 0.1]])
    np.testing.assert_allclose(box_iou(a, b), [1.0, 1 / 3, 0.0, 0.0])
    pred = np.array([[4, 4, 13, 13], [4.6, 4, 13.6, 13]]) / 64  # centre (8, 8) and (8.6, 8)
    m = centre_metrics(pred, np.array([[8, 8], [8, 8]]), 64)
    assert m["center_acc_frac"] == 0.5 and m["center_err_px"] == pytest.approx(0.3)
    s = multilabel_scores(np.array([[1, 0], [1, 1]]), np.array([[1, 0], [0, 1]]))
    assert s["findings_f1"] == pytest.approx(0.8) and s["findings_acc_frac"] == 0.75


@pytest.mark.slow
def test_smoke_run_records_every_metric_the_report_reads(tmp_path):
    cfg = RunConfig(out=str(tmp_path / "run"), device="cpu", preset="smoke", workers=1, threads=1)
    summary = run_sweep(["shape"], cfg, progress=False)
    assert summary.failed == 0 and summary.ok == len(summary.cells)
    df = load_run(cfg.out)
    kind = df.task.where(df.task != "none", df.param_variant)  # the task, or the variant of a no-task cell
    for task, names in (("contract", CONTRACT_METRICS), ("locate", LOCATE_METRICS), ("multi_output", MULTI_METRICS)):
        rows = df[kind == task]
        assert len(rows) and names <= set(rows.dropna(axis=1, how="all").columns) | {"error_type", "error_message"}
    loc = df[df.task == "locate"]
    assert set(loc.param_split) == {"uniform", "quadrant"}
    assert dict(zip(loc.param_adapter, loc.differentiable)) == {"softargmax": True, "heatmap_decode": False,
                                                                 "direct": True}
    seed = df[(kind == "contract") & (df.param_height == 256)]
    assert sorted(map(tuple, seed.out_shape)) == sorted(tuple(v) for v in SEED_PRINTED.values())
    assert seed.matches_seed_print.all()
    cnn = df[(df.model == "cnn_fc") & (kind == "contract")]
    assert set(cnn[cnn.param_width == 80].forward_ok) == {False}
    matrix = contract_matrix(df)
    assert matrix.loc["fcn box@softargmax", "48x80"].startswith("\u2713")
    assert matrix.loc["seed_attempted_vector vector:5", "256"].startswith("\u2717")
