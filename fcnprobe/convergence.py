"""One definition of convergence: early stopping on a validation stream, and the
"still falling" flag on a loss curve, both from the same windowed rule.

The rule (``StopRule``): a series of values where lower is better (a loss) has
*plateaued* when the best of its last ``window`` values is not lower than the
best value before that window by more than ``rel_tol`` of the latter::

    improvement = (min(v[:-w]) - min(v[-w:])) / max(|min(v[:-w])|, tiny)
    plateau     = improvement <= rel_tol

Early stopping applies it to the validation loss, evaluated every
``eval_every`` steps on a batch drawn from its own seed (never the scored
held-out set); the same rule holds for every model. "Still falling" applies it
to the training loss curve with the window set to the last ``tail_frac`` of the
logged points: a run whose loss still improved by more than ``rel_tol`` over
its last 10% of steps had not converged.

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
    eval_every: int = 50  # steps between validation evaluations (one small eval-mode forward each)
    window: int = 4  # evaluations without enough improvement before stopping (200 steps at the default)
    rel_tol: float = 0.01  # "enough": the best loss fell by more than 1% of the earlier best
    min_steps: int = 200  # never stop before this many steps (the warm-up and first descent)
    val_samples: int = 64  # samples in the fixed validation batch
    tail_frac: float = 0.1  # the "still falling" window: the last 10% of the logged loss points

    def __post_init__(self) -> None:
        if self.eval_every < 1 or self.window < 1 or self.rel_tol < 0 or not 0 < self.tail_frac <= 1:
            raise ValueError(f"invalid StopRule {self}: eval_every, window >= 1, rel_tol >= 0, "
                             f"0 < tail_frac <= 1")


NEVER = StopRule(enabled=False)  # the full budget, no validation evaluations


def relative_improvement(values: Sequence[float], window: int) -> float:
    """How much the best of the last ``window`` values beat the best before them (fraction, lower=better).

    ``inf`` when there is nothing before the window (too early to judge), so no
    rule calls a short series a plateau.
    """
    if window < 1 or len(values) <= window:
        return math.inf
    before, recent = min(values[:-window]), min(values[-window:])
    return (before - recent) / max(abs(before), TINY)


def plateaued(values: Sequence[float], rule: StopRule) -> bool:
    """True when the validation series has not improved by more than ``rule.rel_tol`` in ``rule.window``."""
    return relative_improvement(values, rule.window) <= rule.rel_tol


def should_stop(step: int, val_losses: Sequence[float], rule: StopRule) -> str | None:
    """The stop reason after ``step`` completed steps, or None to go on."""
    if not rule.enabled or step < rule.min_steps:
        return None
    if val_losses and not math.isfinite(val_losses[-1]):
        return None  # a NaN is a training failure, reported by the loop, not a plateau
    if plateaued(val_losses, rule):
        return (f"plateau: validation loss improved <= {rule.rel_tol:g} (relative) "
                f"over the last {rule.window} evaluations ({rule.window * rule.eval_every} steps)")
    return None


def tail_window(n_points: int, tail_frac: float) -> int:
    """Logged points in the last ``tail_frac`` of a curve (at least one)."""
    return max(1, math.ceil(tail_frac * n_points))


def still_falling(losses: Sequence[float], rule: StopRule = StopRule()) -> bool | None:
    """Whether the loss improved by more than ``rule.rel_tol`` over its last ``rule.tail_frac``.

    None when the curve is too short to have a window and something before it.
    """
    w = tail_window(len(losses), rule.tail_frac)
    change = relative_improvement(losses, w)
    return None if math.isinf(change) else bool(change > rule.rel_tol)
