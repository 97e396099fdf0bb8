"""Train a group of models that differ only in initial weights, data stream and
learning rate: the seeds of one cell, or the points of a learning-rate grid.

Two strategies give each member exactly what ``fcnprobe.train.train`` would:
its own seed-derived initialisation (``torch.manual_seed(member.seed)`` before
``build``), its own data generator (``member.data_seed``), its own learning rate
under the shared schedule, its own loss curve, validation and early stop.

* ``"vmap"`` -- one vectorised model: ``torch.func.stack_module_state`` stacks
  the members' parameters and buffers to (G, ...), ``functional_call`` under
  ``vmap`` runs all members' forwards as one, one backward gives every member
  its own gradient (the summed losses are independent), and a hand-vectorised
  AdamW applies a per-member learning rate. Batch norm in training mode works
  because its running statistics are stacked and batched too, so each member
  updates its own. A member that stops early is snapshotted and the group runs
  on until the last one stops.
* ``"loop"`` -- lock-step: each member keeps its own model and optimiser, and
  the group advances one step of each in turn.

``"auto"`` picks ``"loop"`` on CPU, where vmap measured 0.5-1.0x of separate
training on one thread (grouped convolutions run slower in oneDNN than separate
ones, and CPU SDPA has no batching rule; ``benchmarks/test_bench_train.py``),
and ``"vmap"`` on CUDA, where small models are launch-bound; that choice is the
expectation of issue 14, not yet measured on a GPU.

    >>> members = [Member(seed=s, lr=5e-3, data_seed=100 + s) for s in range(3)]
    >>> out = train_group(lambda s: create_model("fcn", head="dense:3"), members, task.sample, loss_fn,
    ...                   TrainBudget(800, 16), "cpu")
    >>> out.results[0].losses, out.models[0]

References: torch.func model ensembling tutorial (stack_module_state + vmap);
Loshchilov & Hutter 2019 (AdamW).
"""
from __future__ import annotations

import copy
import dataclasses
import time
from typing import Callable

import torch
import torch.nn as nn

from fcnprobe.device import synchronize
from fcnprobe.errors import CellError
from fcnprobe.tasks.base import Batch
from fcnprobe.train import (WEIGHT_DECAY, EngineOptions, LossFn, Run, Sample, TrainBudget, TrainResult,
                            schedule)

STRATEGIES = ("auto", "vmap", "loop")
ON_DIVERGE = ("raise", "record")
BETAS, EPS = (0.9, 0.999), 1e-8  # torch.optim.AdamW's defaults, which ``train`` uses


@dataclasses.dataclass(frozen=True)
class Member:
    """One model of a group: what may differ between members."""

    seed: int  # weight initialisation: torch.manual_seed(seed) before build(seed)
    lr: float  # peak learning rate (the schedule is shared)
    data_seed: int  # the training data generator's seed (validation derives its own from it)


@dataclasses.dataclass
class GroupResult:
    results: list[TrainResult]  # one per member, in member order (train_time_s: the member's share)
    models: list[nn.Module]  # the trained members (weights as at each member's stop), ready to score
    strategy: str  # "vmap" or "loop": what actually ran
    wall_time_s: float = 0.0  # the whole group, start to last stop


def resolve_strategy(strategy: str, device: str) -> str:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown group strategy {strategy!r}; available: {', '.join(STRATEGIES)}")
    if strategy == "auto":
        return "vmap" if device.startswith("cuda") else "loop"
    return strategy


def build_members(build: Callable[[int], nn.Module], members: list[Member], device: str) -> list[nn.Module]:
    """Each member's model, initialised from its own seed, on ``device`` in training mode."""
    models = []
    for m in members:
        torch.manual_seed(m.seed)
        models.append(build(m.seed).to(device).train())
    return models


def train_group(build: Callable[[int], nn.Module], members: list[Member], sample: Sample, loss_fn: LossFn,
                budget: TrainBudget, device: str, strategy: str = "auto",
                options: EngineOptions | None = None, on_diverge: str = "raise") -> GroupResult:
    """Train every member for ``budget`` (each may stop early); see the module docstring.

    ``on_diverge="record"`` lets a member whose loss turns non-finite stop there
    (``stop_reason`` "diverged: ...") while the others go on, as a learning-rate
    grid needs; the default ``"raise"`` raises the member's CellError.
    """
    if not members:
        raise ValueError("train_group needs at least one member")
    if on_diverge not in ON_DIVERGE:
        raise ValueError(f"unknown on_diverge {on_diverge!r}; available: {', '.join(ON_DIVERGE)}")
    how = resolve_strategy(strategy, device)
    models = build_members(build, members, device)
    start = time.perf_counter()
    record = on_diverge == "record"
    if how == "loop":
        out = _train_loop(models, members, sample, loss_fn, budget, device, options, record)
    else:
        out = _train_vmap(models, members, sample, loss_fn, budget, device, record)
    out.wall_time_s = time.perf_counter() - start
    return out


def _train_loop(models: list[nn.Module], members: list[Member], sample: Sample, loss_fn: LossFn,
                budget: TrainBudget, device: str, options: EngineOptions | None, record: bool = False) -> GroupResult:
    runs = [Run(mod, sample, loss_fn, budget, m.lr, device, m.data_seed, options) for mod, m in zip(models, members)]
    start = time.perf_counter()
    while not all(run.done for run in runs):
        for run in runs:
            if not run.done:
                _guarded(run.advance, run, record)
    synchronize(device)
    wall, steps = time.perf_counter() - start, sum(run.step for run in runs)
    return GroupResult([run.finish(wall * run.step / steps) for run in runs], models, "loop")  # shares by steps


class _Stacked:
    """The vectorised group: stacked (G, ...) parameters/buffers, AdamW moments, and the vmapped loss."""

    def __init__(self, models: list[nn.Module], members: list[Member], loss_fn: LossFn) -> None:
        from torch.func import stack_module_state

        self.params, self.buffers = stack_module_state(models)  # name -> (G, ...)
        self.base = copy.deepcopy(models[0]).to("meta")  # a shape-only template for functional_call
        self.loss_fn = loss_fn
        self.lr = torch.tensor([m.lr for m in members], dtype=torch.float64)  # (G,)
        self.m = {k: torch.zeros_like(p) for k, p in self.params.items()}
        self.v = {k: torch.zeros_like(p) for k, p in self.params.items()}
        self.t = 0

    def losses(self, x: torch.Tensor, targets: torch.Tensor, meta: dict) -> torch.Tensor:
        """Per-member loss (G,) for stacked inputs (G, B, ...)."""
        from torch.func import functional_call, vmap

        def one(p, b, xi, ti, mi):
            return self.loss_fn(functional_call(self.base, (p, b), (xi,)), Batch(xi, ti, mi))

        return vmap(one)(self.params, self.buffers, x, targets, meta)

    @torch.no_grad()
    def adamw(self, factor: float) -> None:
        """One AdamW step, torch.optim.AdamW's arithmetic, with each member's lr x ``factor``."""
        self.t += 1
        b1, b2 = BETAS
        bc1, bc2_sqrt = 1 - b1**self.t, (1 - b2**self.t) ** 0.5
        for k, p in self.params.items():
            g = p.grad
            lr = (self.lr * factor).to(p.dtype).view(-1, *[1] * (p.dim() - 1))  # (G, 1, ...)
            p.mul_(1 - lr * WEIGHT_DECAY)
            self.m[k].lerp_(g, 1 - b1)
            self.v[k].mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (self.v[k].sqrt() / bc2_sqrt).add_(EPS)
            p.sub_(self.m[k] / denom * (lr / bc1))
            p.grad = None

    def load_member(self, i: int, model: nn.Module) -> None:
        """Copy member ``i``'s stacked weights and (persistent) buffers into ``model``."""
        stacked = {**self.params, **self.buffers}
        model.load_state_dict({k: stacked[k][i].detach().clone() for k in model.state_dict()})


def _stack_batches(batches: list[Batch]) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(G, B, ...) inputs and targets, and meta stacked key by key."""
    meta = {k: torch.stack([b.meta[k] for b in batches]) for k in batches[0].meta}
    return (torch.stack([b.inputs for b in batches]), torch.stack([b.targets for b in batches]), meta)


def vmap_runs(models: list[nn.Module], members: list[Member], sample: Sample, loss_fn: LossFn,
              budget: TrainBudget, device: str) -> tuple[list[Run], _Stacked]:
    """Per-member book-keeping runs (no maths of their own) and the stack that does the maths."""
    plain = EngineOptions(channels_last=False, fused_adamw=False)
    runs = [Run(mod, sample, loss_fn, budget, m.lr, device, m.data_seed, plain) for mod, m in zip(models, members)]
    return runs, _Stacked(models, members, loss_fn)


def vmap_step(runs: list[Run], stack: _Stacked, step: int) -> torch.Tensor:
    """One optimiser step of every member at once; returns the per-member losses (G,)."""
    budget = runs[0].budget
    losses = stack.losses(*_stack_batches([r.sample(budget.batch_size, r.gen) for r in runs]))  # (G,)
    losses.sum().backward()  # members are independent: each gets its own gradient
    stack.adamw(schedule(step, budget.steps))
    return losses.detach()


def _train_vmap(models: list[nn.Module], members: list[Member], sample: Sample, loss_fn: LossFn,
                budget: TrainBudget, device: str, record: bool = False) -> GroupResult:
    start = time.perf_counter()
    runs, stack = vmap_runs(models, members, sample, loss_fn, budget, device)
    results: list[TrainResult | None] = [None] * len(runs)
    for step in range(budget.steps):
        losses = vmap_step(runs, stack, step)
        for i, run in enumerate(runs):
            _guarded(lambda: _after_step(run, stack, i, losses[i]), run, record)
            if results[i] is None and run.done:
                stack.load_member(i, run.model)
                synchronize(device)
                results[i] = run.finish((time.perf_counter() - start) / len(runs))  # its share of the group
        if all(r is not None for r in results):
            break
    return GroupResult(results, models, "vmap")


def _after_step(run: Run, stack: _Stacked, i: int, loss: torch.Tensor) -> None:
    """The member's book-keeping; validation reads its current weights from the stack."""
    if run.done:
        return
    if run.val is not None and (run.step + 1) % run.budget.stop.eval_every == 0:
        stack.load_member(i, run.model)
    run.after_step(loss)


def _guarded(step: Callable[[], None], run: Run, record: bool) -> None:
    """Run one member's step; with ``record``, a non-finite loss stops that member instead of the group."""
    try:
        step()
    except CellError as exc:
        if not record:
            raise
        run.reason, run.window = f"diverged: {exc}", []  # the bad window is already logged
