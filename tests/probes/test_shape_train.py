"""Trained cells: the difficulty probe's cell (grid, no early stop, curves, determinism), deep supervision,
and the shape probe's standardised linear heads."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from fcnprobe.config import RunConfig
from fcnprobe.metrics import validate_record_dict
from fcnprobe.models.adapters import build_multi_head
from fcnprobe.models.deepsup import DeepSupervised, TrainingView, aux_params, trunk_layers
from fcnprobe.probes.base import CellContext
from fcnprobe.probes.difficulty import DIFFICULTY_METRICS, SMOKE, STANDARD, DifficultyProbe
from fcnprobe.probes.difficulty_train import box_mask, head_specs, run_difficulty
from fcnprobe.probes.shape_train import standardise

TINY = dataclasses.replace(SMOKE, steps=3, eval_every=2)


def test_box_mask_closed_form():
    m = box_mask(torch.tensor([[0.25, 0.0, 0.75, 0.5]]), (4, 4))  # columns 1-2, rows 0-1
    expect = torch.zeros(1, 1, 4, 4)
    expect[0, 0, 0:2, 1:3] = 1
    assert torch.equal(m, expect)


def test_head_specs_name_the_box_head():
    assert head_specs("locate", "softargmax") == {"box": "box@softargmax"}
    assert head_specs("multi_output", "gap")["findings"] == "vector:4@gap"
    assert head_specs("multi_output", "heatmap_decode") == {"findings": "vector:4@linear", "params": "vector:2@linear",
                                                            "box": "box@heatmap_decode"}


def test_deep_supervision_taps_every_inner_layer_and_trains_them():
    net = build_multi_head("fcn", head_specs("multi_output", "heatmap_decode"), in_channels=4, image_size=16,
                           width=4, depth=3)
    ds = DeepSupervised(net)
    assert ds.taps == (0, 1) and len(trunk_layers(net.trunk)) == 3 and aux_params(ds) > 0 == aux_params(net)
    y = TrainingView(ds)(torch.randn(2, 4, 16, 16))
    assert len(y["aux"]) == 2 and y["aux"][0]["box"].shape == (2, 1, 16, 16)  # the heatmap, trainable
    sum(v.sum() for a in y["aux"] for v in a.values()).backward()
    assert all(p.grad is not None for p in ds.aux.parameters())
    assert ds(torch.randn(2, 4, 16, 16)).shape == (2, 10)  # evaluation uses the main heads only


def test_grid_plans_every_design_rate_and_seed():
    cells = DifficultyProbe().cells(RunConfig(preset="standard"), STANDARD)
    n_designs = 2 * 4 * 4 + len(STANDARD.deepsup_heads)  # both tasks x 4 trunks x heads + fcn deep supervision
    assert len(cells) == n_designs * len(STANDARD.lrs) * len(STANDARD.seeds)
    assert {c.model for c in cells} == {"fcn", "cnn_fc", "attention", "dilated_deep"}  # + the RF-covering trunk
    covering = build_multi_head("dilated_deep", {"box": "box@softargmax"}, in_channels=4, image_size=32,
                                width=STANDARD.width, depth=STANDARD.depth)
    assert covering.trunk.receptive_field() >= 2 * STANDARD.multi_image_size
    assert {c.seed for c in cells} == {0, 1, 2}
    assert len(DifficultyProbe().cells(RunConfig(preset="standard", seeds=(4,)), STANDARD)) == len(cells) // 3


@pytest.mark.parametrize("task,head,deep", [("multi_output", "softargmax", True), ("locate", "heatmap_decode", False)])
def test_cell_records_curves_without_early_stop_and_is_deterministic(tmp_path: Path, task, head, deep):
    from fcnprobe.probes.base import Cell

    cell = Cell.make("difficulty", "fcn", task, seed=0, head=head, lr="default", deepsup=deep)
    ctx = CellContext("cpu", "smoke", TINY, tmp_path, tmp_path)
    torch.manual_seed(0)
    rec = run_difficulty(cell, ctx)
    assert rec["stopped_at_step"] == TINY.steps and rec["eval_steps"] == [2, 3]
    assert len(rec["box_iou_mean_curve"]) == 2 and rec["lr_source"] and rec["loss_weights"] == "equal"
    assert (rec["aux_heads_count"] > 0) == deep
    record = {"probe": "difficulty", "status": "ok", "metrics": rec, "params": dict(cell.params)}
    assert validate_record_dict(record, DIFFICULTY_METRICS) == []
    again = run_difficulty(cell, ctx)
    assert again["box_iou_mean"] == rec["box_iou_mean"] and again["loss_curve"] == rec["loss_curve"]


def test_standardise_sets_linear_heads_to_target_stats():
    net = build_multi_head("cnn_fc", {"findings": "vector:4@linear", "params": "vector:2@linear",
                                      "box": "box@linear"}, in_channels=4, image_size=32, width=8, depth=2)
    y = torch.rand(64, 10)
    std = standardise(net, y, ["findings", "params", "box"])
    assert torch.allclose(net.heads["box"].fc.weight.new_tensor(0) + net.heads["params"].std, y[:, 4:6].std(0))
    assert torch.equal(std["findings"], torch.ones(4)) and torch.allclose(std["box"], y[:, 6:].std(0))
