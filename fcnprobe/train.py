"""One training loop for every probe that trains (context, shape): AdamW, a short
linear warm-up then cosine decay, a fixed budget of steps and batch size, data
drawn on the fly from a seeded task generator.

The learning rate is set once per family (``lr`` in the model registry's
metadata), never per task, so no model gets a task-specific advantage.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import torch
import torch.nn as nn

from fcnprobe.device import synchronize
from fcnprobe.errors import CellError
from fcnprobe.tasks.base import Batch

DEFAULT_LR = 2e-3  # for families that do not set one
WARMUP_FRAC = 0.05  # of the steps; attention is unstable without a warm-up
WEIGHT_DECAY = 0.01  # mild; the tasks are infinite streams, overfitting is not the risk


@dataclasses.dataclass(frozen=True)
class TrainBudget:
    """The budget every model gets on a task within one preset."""

    steps: int  # optimiser steps
    batch_size: int  # samples per step
    log_every: int = 10  # steps between recorded loss values


@dataclasses.dataclass
class TrainResult:
    losses: list[float]  # mean loss over each log window
    loss_steps: list[int]  # the step that closes each window
    final_loss: float
    train_time_s: float


def family_lr(model_name: str) -> float:
    """The learning rate registered for a model family (DEFAULT_LR if none)."""
    from fcnprobe.models import MODELS

    return MODELS.meta(model_name).get("lr", DEFAULT_LR) if model_name in MODELS else DEFAULT_LR


def _schedule(step: int, steps: int) -> float:
    warm = max(1, int(WARMUP_FRAC * steps))
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))


def train(model: nn.Module, sample: Callable[[int, torch.Generator], Batch],
          loss_fn: Callable[[torch.Tensor, Batch], torch.Tensor], budget: TrainBudget,
          lr: float, device: str, seed: int) -> TrainResult:
    """Train ``model`` in place; raises CellError if the loss stops being finite."""
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=WEIGHT_DECAY)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _schedule(s, budget.steps))
    gen = torch.Generator(device=device).manual_seed(seed)
    losses, steps, window = [], [], []
    start = time.perf_counter()
    for step in range(budget.steps):
        batch = sample(budget.batch_size, gen)
        loss = loss_fn(model(batch.inputs), batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        window.append(loss.detach())
        if len(window) == budget.log_every or step == budget.steps - 1:
            losses.append(torch.stack(window).mean().item())  # the only host sync, once per window
            if not math.isfinite(losses[-1]):
                raise CellError(f"training loss became {losses[-1]} by step {step + 1}")
            steps.append(step + 1)
            window = []
    synchronize(device)
    return TrainResult(losses, steps, losses[-1] if losses else float("nan"), time.perf_counter() - start)


@torch.inference_mode()
def predict(model: nn.Module, inputs: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Eval-mode outputs for ``inputs`` in chunks; raises CellError on NaN output."""
    model.eval()
    out = torch.cat([model(inputs[i:i + chunk]) for i in range(0, len(inputs), chunk)])
    if not torch.isfinite(out).all():
        raise CellError("model output contains NaN or inf")
    return out
