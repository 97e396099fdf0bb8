"""Training throughput: samples/s of one training step per family, alone or as a
group, MACs per training sample (for the fraction of an sgemm roofline), and an
interleaved A/B timer for engine options.

Conventions: one multiply-accumulate (MAC) = 2 FLOPs (``fcnprobe.measure.flops``); a
training step costs 3x the forward's MACs (forward, and a backward of about
twice the forward: grads of inputs and of weights), the usual estimate
(Kaplan et al. 2020, sec. 2.1). Timing: ``torch.utils.benchmark`` blocks, the
variants' blocks interleaved (A, B, A, B, ...) so a shared machine's load falls
on both alike; the statistic is the median over blocks, with the IQR as noise.

    >>> steps = {"seq": make_step("fcn", QUICK), "grouped": make_step("fcn", QUICK, group=3)}
    >>> interleaved(steps, reps=5)["grouped"]["samples_per_s_median"]
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import numpy as np
import torch

from fcnprobe.probes.context import _loss  # the context tasks' cross-entropy, with the ignore index
from fcnprobe.train import ENGINE, EngineOptions, Run, TrainBudget
from fcnprobe.train_group import Member, build_members, vmap_runs, vmap_step

TRAIN_MAC_FACTOR = 3  # forward + backward ~= 3 forwards (see the module docstring)
ENDLESS = 10**9  # a budget no timing run reaches: the schedule never leaves the start of its warm-up
# (a tiny learning rate; the arithmetic per step, which is what is timed, is the same)


@dataclasses.dataclass(frozen=True)
class TrainShape:
    """The setting one training step is measured at."""

    image_size: int = 32  # px, the context probe's quick preset
    width: int = 16  # channels, the quick preset
    batch_size: int = 16  # samples per member per step, the quick preset
    task: str = "global_cue"  # a dense task every family can learn
    depth: int | None = None  # the zoo default


QUICK = TrainShape()


def _build(name: str, shape: TrainShape) -> tuple[Callable[[int], torch.nn.Module], Any]:
    from fcnprobe.models import create_model
    from fcnprobe.tasks import create_task

    task = create_task(shape.task, image_size=shape.image_size)
    return (lambda seed: create_model(name, head=task.head, image_size=shape.image_size, width=shape.width,
                                      depth=shape.depth)), task


def make_step(name: str, shape: TrainShape = QUICK, options: EngineOptions = ENGINE, group: int = 1,
              strategy: str = "loop", device: str = "cpu") -> Callable[[], None]:
    """A closure doing one training step of ``group`` members (seeds 0..G-1, lrs spread 2x apart)."""
    build, task = _build(name, shape)
    members = [Member(seed=i, lr=1e-3 * 2 ** (i % 3), data_seed=100 + i) for i in range(group)]
    models = build_members(build, members, device)
    budget = TrainBudget(ENDLESS, shape.batch_size, log_every=ENDLESS)
    if strategy == "vmap":
        runs, stack = vmap_runs(models, members, task.sample, _loss, budget, device)

        def grouped() -> None:
            vmap_step(runs, stack, 0)
        return grouped
    runs = [Run(mod, task.sample, _loss, budget, m.lr, device, m.data_seed, options)
            for mod, m in zip(models, members)]

    def step() -> None:
        for run in runs:
            run.advance()
    return step


def train_macs_per_sample(name: str, shape: TrainShape = QUICK) -> int:
    """MACs of one training sample: TRAIN_MAC_FACTOR x the forward's (fvcore count, batch of 2)."""
    from fcnprobe.measure.flops import count_flops

    build, task = _build(name, shape)
    model = build(0).train()
    x = task.sample(2, torch.Generator().manual_seed(0)).inputs  # (2, C, H, W)
    return TRAIN_MAC_FACTOR * count_flops(model, x, cross_check=False).macs // 2


def interleaved(steps: dict[str, Callable[[], None]], reps: int = 5, block_s: float = 0.2,
                samples: dict[str, int] | None = None, warmup: int = 2) -> dict[str, dict[str, float]]:
    """Median and IQR seconds per call (and samples/s when ``samples`` gives samples per call)."""
    from torch.utils import benchmark

    timers, blocks = {}, {}
    for key, fn in steps.items():
        for _ in range(warmup):
            fn()
        timers[key] = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
        blocks[key] = max(1, math.ceil(block_s / max(timers[key].timeit(1).times[0], 1e-9)))
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(reps):
        for key in steps:
            times[key].append(timers[key].timeit(blocks[key]).times[0])
    return {k: _stats(np.asarray(t), (samples or {}).get(k)) for k, t in times.items()}


def _stats(t: np.ndarray, samples: int | None) -> dict[str, float]:
    med = float(np.median(t))
    out = {"s_per_call_median": med, "s_per_call_iqr": float(np.subtract(*np.percentile(t, [75, 25]))),
           "s_per_call_min": float(t.min()), "s_per_call_max": float(t.max()), "reps": len(t)}
    if samples:
        out["samples_per_s_median"] = samples / med
    return out


def ratio(stats: dict[str, dict[str, float]], fast: str, slow: str) -> float:
    """How many times faster ``fast`` ran than ``slow`` per sample (medians)."""
    return stats[fast]["samples_per_s_median"] / stats[slow]["samples_per_s_median"]
