"""The training loop and the convergence rule: plateau stop, no stop while improving,
the maximum respected, the rule disabled, and "still falling" on closed-form curves."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from fcnprobe.convergence import (NEVER, StopRule, improved, relative_improvement, should_stop, still_falling,
                                  tail_window)
from fcnprobe.models import create_model
from fcnprobe.tasks import create_task
from fcnprobe.train import EngineOptions, TrainBudget, engine_options, schedule, train

RULE = StopRule(eval_every=10, window_frac=0.3, min_frac=0.1, rel_tol=0.01, abs_tol=1e-3)  # window: 3 evals at 100
MAX = 100


def test_relative_improvement_closed_form():
    assert relative_improvement([4.0, 2.0, 1.9, 1.0], 2) == pytest.approx((2.0 - 1.0) / 2.0)
    assert relative_improvement([1.0, 2.0], 2) == math.inf  # nothing before the window
    assert relative_improvement([0.0, 0.0, 0.0], 1) == 0.0  # a zero loss does not divide by zero


def test_window_is_a_fraction_of_the_budget():
    assert RULE.window(MAX) == 3 and StopRule().window(3000) == 8 and StopRule().window(10) == 2


def test_stops_on_a_plateau():
    flat = [1.0, 0.5] + [0.499] * 3  # the last 3 evaluations beat 0.5 by 0.2% < 1%
    assert not improved(flat, 3, RULE)
    assert should_stop(50, flat, RULE, MAX).startswith("plateau")


def test_near_zero_loss_plateaus_on_the_absolute_tolerance():
    solved = [0.09, 0.01, 0.003, 0.0028, 0.0024, 0.0022]  # 25% relative, but < 0.001 nats
    assert relative_improvement(solved, 3) > RULE.rel_tol and should_stop(60, solved, RULE, MAX)


def test_does_not_stop_while_improving():
    falling = [0.9**k for k in range(30)]  # 10% better per evaluation: 27% over any 3
    assert not any(should_stop(10 * (k + 1), falling[:k + 1], RULE, 300) for k in range(30))


def test_min_frac_and_disabled_rule_never_stop():
    flat = [1.0] * 20
    assert should_stop(100, flat, StopRule(eval_every=10, min_frac=0.5), 400) is None  # 100 < 200
    assert should_stop(200, flat, StopRule(eval_every=10, min_frac=0.5), 400) is not None
    assert should_stop(10_000, flat, NEVER, 10_000) is None
    assert should_stop(100, [1.0, 1.0, 1.0, 1.0, float("nan")], RULE, MAX) is None  # NaN: an error, not a plateau


def test_still_falling_uses_the_last_tenth():
    assert tail_window(100, 0.1) == 10 and tail_window(3, 0.1) == 1
    assert still_falling([1.0 / (k + 1) for k in range(100)]) is True  # 1/k: 10% better over the last tenth
    assert still_falling([1.0] * 50 + [0.5] * 50) is False  # converged by the midpoint
    assert still_falling([1.0]) is None


def test_bad_rule_is_a_clear_error():
    with pytest.raises(ValueError, match="invalid StopRule"):
        StopRule(window_frac=0)


def test_schedule_warms_up_then_decays_to_zero():
    assert schedule(0, 100) == pytest.approx(0.2) and schedule(4, 100) == pytest.approx(1.0)
    assert schedule(100, 100) == pytest.approx(0.0, abs=1e-12)


# -- the loop ---------------------------------------------------------------------------
TASK = create_task("global_cue", image_size=12)


def _loss(out, batch):
    return F.cross_entropy(out, batch.targets, ignore_index=-100)


def _train(budget: TrainBudget, options: EngineOptions = EngineOptions(), seed: int = 0):
    torch.manual_seed(seed)
    model = create_model("fcn", head=TASK.head, image_size=12, width=8, depth=2)
    return train(model, TASK.sample, _loss, budget, 5e-3, "cpu", seed, options)


def test_early_stop_records_step_and_reason_and_respects_the_max():
    loose = StopRule(eval_every=5, window_frac=0.17, min_frac=0.17, rel_tol=0.5, val_samples=8)  # 2 evals
    res = _train(TrainBudget(60, 4, log_every=5, stop=loose))
    assert 10 <= res.stopped_at_step < 60 and res.tail_improvement_frac is not None
    assert res.stop_reason.startswith("plateau")
    assert res.loss_steps[-1] == res.stopped_at_step and res.val_steps[-1] == res.stopped_at_step
    never = StopRule(eval_every=5, window_frac=0.1, min_frac=0.01, rel_tol=1e9, val_samples=8)  # stops at once
    capped = _train(TrainBudget(12, 4, log_every=5, stop=dataclasses.replace(never, enabled=False)))
    assert capped.stopped_at_step == 12 and capped.stop_reason == "budget" and capped.val_losses == []
    assert capped.loss_steps == [5, 10, 12]


def test_validation_does_not_change_the_training_curve():
    plain = _train(TrainBudget(20, 4, log_every=5))
    watched = _train(TrainBudget(20, 4, log_every=5, stop=StopRule(eval_every=5, min_frac=1.0, val_samples=8)))
    assert watched.losses == plain.losses and len(watched.val_losses) == 4


def test_engine_options_are_deterministic_and_agree():
    on, off = EngineOptions(), EngineOptions(channels_last=False, fused_adamw=False)
    a, b, c = (_train(TrainBudget(10, 4, log_every=5), o) for o in (on, on, off))
    assert a.losses == b.losses  # same seed + config = same numbers
    assert a.losses == pytest.approx(c.losses, rel=1e-4)  # the options change speed, not the arithmetic
    assert set(engine_options()) >= {"channels_last", "fused_adamw", "compile", "torch_version"}


def test_bf16_autocast_is_off_by_default_and_changes_the_arithmetic_when_on():
    from fcnprobe.train import ENGINE

    budget = TrainBudget(10, 4, log_every=5)
    fp32, bf16 = _train(budget), _train(budget, dataclasses.replace(ENGINE, bf16_autocast=True))
    assert not ENGINE.bf16_autocast and engine_options()["bf16_autocast"] is False
    assert all(math.isfinite(v) for v in bf16.losses)
    assert bf16.losses != fp32.losses  # bfloat16 rounding: not an arithmetic-preserving option
    assert bf16.losses == pytest.approx(fp32.losses, rel=0.05)  # but the same training, within its rounding


def _native_head(name: str) -> str:
    from fcnprobe.models import MODELS

    native = MODELS.meta(name)["native"]
    return "dense:3" if "dense" in native else ("box" if native[0] == "box" else f"{native[0]}:3")


@pytest.mark.parametrize("name", __import__("fcnprobe.models", fromlist=["list_models"]).list_models())
def test_engine_options_train_every_registered_model_alike(name):
    """Channels-last and fused AdamW on every family: same losses as plain eager (float32 rounding)."""
    from fcnprobe.tasks.base import Batch

    def sample(n, gen):  # (n, 3, 16, 16) noise; the loss only needs outputs to depend on weights
        return Batch(torch.randn(n, 3, 16, 16, generator=gen), torch.zeros(n))

    def loss(out, batch):
        return out.float().pow(2).mean()

    curves = []
    for opts in (EngineOptions(), EngineOptions(channels_last=False, fused_adamw=False)):
        torch.manual_seed(0)
        model = create_model(name, head=_native_head(name), image_size=16, width=8, depth=2)
        curves.append(train(model, sample, loss, TrainBudget(3, 2, log_every=1), 1e-3, "cpu", 0, opts).losses)
    assert curves[0] == pytest.approx(curves[1], rel=1e-4, abs=1e-6)


def test_a_plateau_at_the_last_step_is_the_budget():
    eager = StopRule(eval_every=5, window_frac=0.1, min_frac=1.0, rel_tol=1e9, val_samples=8)  # plateau at step 20
    res = _train(TrainBudget(20, 4, log_every=5, stop=eager))
    assert res.stopped_at_step == 20 and res.stop_reason == "budget" and res.val_steps[-1] == 20


@pytest.mark.parametrize("chunk", [1, 5, 16, 64])
def test_forward_chunks_concatenates_the_same_outputs(chunk):
    from fcnprobe.train import forward_chunks

    torch.manual_seed(0)
    net = create_model("fcn", head="dense:3", width=8, depth=3, image_size=16).eval()
    x = torch.randn(37, 3, 16, 16)
    with torch.no_grad():
        got, want = forward_chunks(net, x, chunk), net(x)
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-6)


def test_forward_chunks_passes_a_non_tensor_output_through_whole():
    from fcnprobe.train import forward_chunks

    calls = []
    model = lambda x: calls.append(len(x)) or {"y": x.sum(1)}
    assert forward_chunks(model, torch.ones(10, 2), 4)["y"].shape == (10,)
    assert calls == [4, 10]  # the first chunk showed a dict: the whole batch in one forward
