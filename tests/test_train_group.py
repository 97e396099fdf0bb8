"""Grouped training: a member trained in a group matches the same member trained alone
(float64, first 50 steps, within 1e-6), batch norm included, for both strategies."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fcnprobe.convergence import StopRule
from fcnprobe.models import create_model
from fcnprobe.tasks import create_task
from fcnprobe.tasks.base import Batch
from fcnprobe.train import TrainBudget, train
from fcnprobe.train_group import Member, resolve_strategy, train_group

STEPS = 50
TASK = create_task("global_cue", image_size=12)
MEMBERS = [Member(seed=1, lr=5e-3, data_seed=11), Member(seed=2, lr=2e-3, data_seed=12),
           Member(seed=3, lr=1e-2, data_seed=13)]


def _sample(n: int, gen: torch.Generator) -> Batch:
    b = TASK.sample(n, gen)
    return Batch(b.inputs.double(), b.targets, b.meta)  # float64 so the comparison is arithmetic, not rounding


def _loss(out: torch.Tensor, batch: Batch) -> torch.Tensor:
    return F.cross_entropy(out, batch.targets, ignore_index=-100)


def _build(name: str):
    return lambda seed: create_model(name, head=TASK.head, image_size=12, width=8, depth=2).double()


def _alone(name: str, member: Member, budget: TrainBudget):
    torch.manual_seed(member.seed)
    model = _build(name)(member.seed)
    return model, train(model, _sample, _loss, budget, member.lr, "cpu", member.data_seed)


@pytest.mark.parametrize("name, strategy", [("fcn", "vmap"), ("fcn", "loop"), ("attention", "vmap")])
def test_member_in_group_matches_member_alone(name, strategy):
    """fcn has batch norm (running stats compared too); attention has layer norm and SDPA."""
    budget = TrainBudget(STEPS, 4, log_every=1)
    group = train_group(_build(name), MEMBERS, _sample, _loss, budget, "cpu", strategy=strategy)
    assert group.strategy == strategy
    for i in (0, 2):
        model, alone = _alone(name, MEMBERS[i], budget)
        assert len(group.results[i].losses) == STEPS
        assert group.results[i].losses == pytest.approx(alone.losses, abs=1e-6, rel=0)
        for (k, a), b in zip(model.state_dict().items(), group.models[i].state_dict().values()):
            assert torch.allclose(a.double(), b.double(), atol=1e-6), k  # weights and BN running stats
    assert group.results[0].losses != pytest.approx(group.results[1].losses, abs=1e-3)  # members differ


def test_early_stopping_member_matches_alone_in_vmap_group():
    rule = StopRule(eval_every=5, window_frac=0.25, min_frac=0.25, rel_tol=0.5, val_samples=8)  # loose: stops soon
    budget = TrainBudget(40, 4, log_every=5, stop=rule)
    group = train_group(_build("fcn"), MEMBERS[:2], _sample, _loss, budget, "cpu", strategy="vmap")
    for i, res in enumerate(group.results):
        _, alone = _alone("fcn", MEMBERS[i], budget)
        assert res.stopped_at_step == alone.stopped_at_step < 40
        assert res.val_losses == pytest.approx(alone.val_losses, abs=1e-6)
        assert res.stop_reason == alone.stop_reason and res.stop_reason.startswith("plateau")


def test_unknown_strategy_and_auto():
    with pytest.raises(ValueError, match="available"):
        resolve_strategy("threads", "cpu")
    assert resolve_strategy("auto", "cpu") == "loop" and resolve_strategy("auto", "cuda:0") == "vmap"
