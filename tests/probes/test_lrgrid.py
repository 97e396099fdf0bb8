"""The lrgrid probe: its cells per preset, one tiny grid cell end to end (records that
conform to the declarations, the selection and edge rule applied to its own numbers),
a diverging member that becomes a result rather than a failure, and the convergence summary."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from fcnprobe.config import RunConfig
from fcnprobe.convergence import summary, summary_metrics
from fcnprobe.lr import edge_side, lr_grid, select
from fcnprobe.metrics import declare, validate_record_dict
from fcnprobe.probes import PROBES, Cell, CellContext
from fcnprobe.probes.lrgrid import SETTINGS
from fcnprobe.tasks.base import Batch
from fcnprobe.train import TrainBudget, TrainResult, train
from fcnprobe.train_group import Member, train_group

PROBE = PROBES.get("lrgrid")
TINY = dataclasses.replace(SETTINGS["smoke"], steps=3, grid=tuple(lr_grid(1e-3, 1e-2, 2)), val_samples=8)


def test_cells_per_preset():
    smoke = PROBE.plan(RunConfig(preset="smoke", seeds=(0, 1)))
    assert len(smoke) == len(SETTINGS["smoke"].models) * len(SETTINGS["smoke"].tasks) * 2
    assert PROBE.plan(RunConfig(preset="quick")) == []  # no settings: no cells
    real = PROBE.plan(RunConfig(preset="lrgrid"))
    assert {c.model for c in real} == set(SETTINGS["lrgrid"].models) and len(real) == 25
    assert all(c.p.get("distance") == SETTINGS["lrgrid"].shift_distance for c in real if c.task == "shift")


@pytest.mark.parametrize("task", ["global_cue", "multi_output"])
def test_one_grid_cell(tmp_path, task):
    cell = Cell.make("lrgrid", "fcn", task)
    out = PROBE.run_cell(cell, CellContext("cpu", "smoke", TINY, tmp_path, tmp_path))
    m = out.metrics
    assert validate_record_dict({"status": "ok", "metrics": m}, PROBE.metrics) == []
    assert m["lrs"] == sorted(m["lrs"]) and m["lr"] == m["lrs"][select(m["lrs"], m["val_loss_by_lr"])]
    grid = list(TINY.grid)
    on_grid = [m["val_loss_by_lr"][m["lrs"].index(lr)] for lr in grid]
    side = edge_side(grid, grid[select(grid, on_grid)])  # with 2 points the best is always on an edge
    assert m["edge_extended"] == side and len(m["lrs"]) == len(grid) + 1
    assert (m["val_acc_by_lr"] is None) == (task == "multi_output")
    assert m["steps_count"] == 3 and m["group_strategy"] == "loop"
    assert (m["learned"] is None) == (m["const_val_loss"] is None) == (task == "multi_output")


def test_constant_guess_loss_is_the_marginal_entropy():
    from fcnprobe.probes.lrgrid import Problem, _constant_loss

    targets = torch.tensor([[0, 0, 1, 1], [2, 2, 2, -100]])  # valid marginal (2/7, 2/7, 3/7)
    prob = Problem(None, None, None, Batch(torch.zeros(2, 4), targets, {}), True)
    p = torch.tensor([2 / 7, 2 / 7, 3 / 7])
    assert _constant_loss(prob) == pytest.approx(float(-(p * p.log()).sum()))


class _Net(nn.Module):
    def __init__(self, poisoned: bool) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 1)
        if poisoned:  # this member's loss is NaN from the first step
            nn.init.constant_(self.lin.weight, float("nan"))

    def forward(self, x):
        return self.lin(x)


def _sample(n, gen):
    x = torch.randn(n, 3, generator=gen)
    return Batch(x, x.sum(1, keepdim=True), {})


def test_a_diverging_member_is_recorded_and_the_others_train():
    members = [Member(seed=s, lr=1e-2, data_seed=7) for s in range(3)]
    budget = TrainBudget(6, 4, log_every=2)
    out = train_group(lambda seed: _Net(seed == 1), members, _sample, lambda y, b: F.mse_loss(y, b.targets),
                      budget, "cpu", "loop", on_diverge="record")
    reasons = [r.stop_reason for r in out.results]
    assert reasons[1].startswith("diverged") and reasons[0] == reasons[2] == "budget"
    assert out.results[0].stopped_at_step == 6 and out.results[1].stopped_at_step == 2
    with pytest.raises(Exception, match="not finite|nan"):
        train_group(lambda seed: _Net(seed == 1), members, _sample, lambda y, b: F.mse_loss(y, b.targets),
                    budget, "cpu", "loop")


def test_convergence_summary_is_declared_and_matches_the_result():
    res = train(_Net(False), _sample, lambda y, b: F.mse_loss(y, b.targets), TrainBudget(40, 8, log_every=2),
                1e-2, "cpu", seed=0)
    s = summary(res)
    assert set(s) == {m.name for m in summary_metrics()}
    assert s["still_falling"] == res.still_falling and s["stopped_at_step"] == 40
    assert validate_record_dict({"status": "ok", "metrics": s}, declare(summary_metrics())) == []
    empty = summary(TrainResult([], [], float("nan"), 0.0))
    assert empty["still_falling"] is None and empty["val_loss_curve"] == []
