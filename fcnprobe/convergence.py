"""One definition of convergence: early stopping on a validation stream, and the
"still falling" flag on a loss curve, both from the same windowed rule.

The rule (``StopRule``): a series of values where lower is better (a loss) has
*plateaued* when the best of its last ``w`` values is not lower than the best
value before that window by more than the tolerance::

    improvement = min(v[:-w]) - min(v[-w:])
    plateau     = improvement <= max(rel_tol * |min(v[:-w])|, abs_tol)

``abs_tol`` keeps a near-zero loss (0.003 -> 0.002 nats: a solved task) from
counting as 33% progress forever. Early stopping applies the rule to the
validation loss, evaluated every ``eval_every`` steps on a batch drawn from its
own seed (never the scored held-out set), with ``w`` = the evaluations in the
last ``window_frac`` of the budget, and never before ``min_frac`` of the budget;
the same rule holds for every model. "Still falling" applies it to the logged
training loss with ``w`` = the points in the last ``tail_frac`` of the curve: a
run whose loss still improved by more than the tolerance over its last 10% of
steps had not converged.

Why the rule waits for half the budget: on the quick preset's committed sample,
attention on global_cue sat at chance loss (1.3-1.4) for the first ~350 of 800
steps and then fell to 0.11 (accuracy 1.0). A 200-step window from step 200
would have stopped it on that first plateau and recorded a failure that is not
one. The flag ``still_falling`` and ``stop_reason`` are recorded with every run.

Reference: Prechelt, "Early stopping -- but when?" (1998), the plateau family
of criteria.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

TINY = 1e-12  # guards the relative change against a zero loss
VAL_SEED_OFFSET = 2_000_029  # validation data never shares a stream with training or held-out data


@dataclasses.dataclass(frozen=True)
class StopRule:
    """Early-stopping rule on the validation loss; ``enabled=False`` trains the full budget."""

    enabled: bool = True  # claim 4's difficulty cells pass False: they never stop early
    eval_every: int = 100  # steps between validation evaluations: 4-7% of training time at 256 samples
    window_frac: float = 0.25  # the plateau window: evaluations in the last quarter of the budget
    min_frac: float = 0.5  # never stop before half the budget (late learners: see the module docstring)
    rel_tol: float = 0.01  # "improved": the best loss fell by more than 1% of the earlier best ...
    abs_tol: float = 1e-3  # ... and by more than 0.001 (nats for cross-entropy)
    val_samples: int = 256  # the fixed validation batch; 64 was noisy enough to stop a learner (fcn_gap)
    tail_frac: float = 0.1  # the "still falling" window: the last 10% of the logged loss points

    def __post_init__(self) -> None:
        fracs = (self.window_frac, self.min_frac, self.tail_frac)
        if self.eval_every < 1 or self.rel_tol < 0 or self.abs_tol < 0 or not all(0 < f <= 1 for f in fracs):
            raise ValueError(f"invalid StopRule {self}: need eval_every >= 1, tolerances >= 0, "
                             f"fractions in (0, 1]")

    def window(self, max_steps: int) -> int:
        """Evaluations in the plateau window for a budget of ``max_steps`` (at least two: one is all noise)."""
        return max(2, round(self.window_frac * max_steps / self.eval_every))


NEVER = StopRule(enabled=False)  # the full budget, no validation evaluations


def relative_improvement(values: Sequence[float], window: int) -> float:
    """How much the best of the last ``window`` values beat the best before them, relative to the latter.

    ``inf`` when there is nothing before the window (too early to judge).
    """
    if window < 1 or len(values) <= window:
        return math.inf
    before, recent = min(values[:-window]), min(values[-window:])
    return (before - recent) / max(abs(before), TINY)


def improved(values: Sequence[float], window: int, rule: StopRule) -> bool:
    """The rule's test: did the last ``window`` values beat the earlier best by more than the tolerance?"""
    if window < 1 or len(values) <= window:
        return True  # too early to judge
    before = min(values[:-window])
    return before - min(values[-window:]) > max(rule.rel_tol * abs(before), rule.abs_tol)


def should_stop(step: int, val_losses: Sequence[float], rule: StopRule, max_steps: int) -> str | None:
    """The stop reason after ``step`` completed steps of ``max_steps``, or None to go on."""
    if not rule.enabled or step < rule.min_frac * max_steps:
        return None
    if val_losses and not math.isfinite(val_losses[-1]):
        return None  # a NaN is a training failure, reported by the loop, not a plateau
    w = rule.window(max_steps)
    if improved(val_losses, w, rule):
        return None
    return (f"plateau: validation loss improved <= max({rule.rel_tol:g} relative, {rule.abs_tol:g}) "
            f"over the last {w} evaluations ({w * rule.eval_every} steps)")


def tail_window(n_points: int, tail_frac: float) -> int:
    """Logged points in the last ``tail_frac`` of a curve (at least one)."""
    return max(1, math.ceil(tail_frac * n_points))


def still_falling(losses: Sequence[float], rule: StopRule = StopRule()) -> bool | None:
    """Whether the loss improved by more than the rule's tolerance over its last ``rule.tail_frac``.

    None when the curve is too short to have a window and something before it.
    """
    w = tail_window(len(losses), rule.tail_frac)
    return None if len(losses) <= w else improved(losses, w, rule)


# -- what every training record stores about convergence (one call per trained model) --------------------

def summary_metrics() -> list:
    """Declarations of the metrics ``summary`` returns, to add to a training probe's ``declare([...])``."""
    from fcnprobe.metrics import metric

    return [metric("stopped_at_step", "steps taken (early stop or budget)", unit="count"),
            metric("stop_reason", "why training stopped"),
            metric("still_falling", "loss still falling over the last 10% of steps (not converged)"),
            metric("tail_improvement_frac", "loss improvement over the last 10% of steps, relative"),
            metric("val_loss_curve", "validation loss (early-stopping stream)", "lower", is_array=True),
            metric("val_steps", "validation loss steps", is_array=True, unit="count")]


def summary(result) -> dict:
    """The convergence metrics of one ``train.TrainResult`` (declared by ``summary_metrics``).

    ``still_falling`` uses the same window and tolerance as early stopping (see the
    module docstring); None when the curve is too short to judge.

    >>> metrics.update(convergence.summary(train(model, task.sample, loss_fn, budget, lr, "cpu", seed=0)))
    """
    falling = result.still_falling
    return {"stopped_at_step": int(result.stopped_at_step), "stop_reason": str(result.stop_reason),
            "still_falling": None if falling is None else bool(falling),
            "tail_improvement_frac": result.tail_improvement_frac,
            "val_loss_curve": list(result.val_losses), "val_steps": list(result.val_steps)}
