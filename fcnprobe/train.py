"""One training loop for every probe that trains (context, shape): AdamW, a short
linear warm-up then cosine decay, a fixed maximum of steps and batch size, data
drawn on the fly from a seeded task generator, and an optional early stop on a
validation stream (``fcnprobe.convergence``).

The learning rate is set once per family (``lr`` in the model registry's
metadata), never per task, so no model gets a task-specific advantage.

Engine options (``EngineOptions``) are speed-ups that leave the arithmetic the
same up to rounding: channels-last activations for convolutions, the fused AdamW
kernel, and the attention family's explicit attention path (``explicit_attention``).
Each was kept because it measured faster on one CPU thread
(``benchmarks/test_bench_train.py``); ``engine_options()`` is the dict to store
in a run's manifest. ``bf16_autocast`` (forward and loss under
``torch.autocast(bfloat16)``) is there to be measured, and is off: it changes
the arithmetic, and on a CPU with native bf16 (``benchmarks/test_bench_train.py -k
bf16``, quick shape, one thread) it measured 1.58x for fcn, 1.52x dilated, 1.38x
fcn_gap, 1.06x cnn_fc and 0.87x attention: turning it on would give the families
different precisions and different speed-ups. Training many seeds or learning rates together:
``fcnprobe.train_group``.

    >>> res = train(model, task.sample, loss_fn, TrainBudget(800, 16, stop=StopRule()), 5e-3, "cpu", seed=0)
    >>> res.stopped_at_step, res.stop_reason, res.still_falling
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from typing import Any, Callable

import torch
import torch.nn as nn

from fcnprobe.device import synchronize
from fcnprobe.convergence import (NEVER, VAL_SEED_OFFSET, StopRule, relative_improvement, should_stop, still_falling,
                                  tail_window)
from fcnprobe.errors import CellError
from fcnprobe.tasks.base import Batch

DEFAULT_LR = 2e-3  # for families that do not set one
EVAL_CHUNK = 16  # images per evaluation forward (``predict``); see ``forward_chunks``
WARMUP_FRAC = 0.05  # of the steps; attention is unstable without a warm-up
WEIGHT_DECAY = 0.01  # mild; the tasks are infinite streams, overfitting is not the risk

Sample = Callable[[int, torch.Generator], Batch]
LossFn = Callable[[torch.Tensor, Batch], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class TrainBudget:
    """The budget every model gets on a task within one preset."""

    steps: int  # maximum optimiser steps (the schedule always spans all of them)
    batch_size: int  # samples per step
    log_every: int = 10  # steps between recorded loss values
    stop: StopRule = NEVER  # early stopping; NEVER (the default) trains every step


@dataclasses.dataclass(frozen=True)
class EngineOptions:
    """Speed-ups that do not change what is computed (see the module docstring)."""

    channels_last: bool = True  # NHWC activations: oneDNN convs; 1.17-1.52x per family with fused AdamW
    fused_adamw: bool = True  # one kernel per step instead of ~10 ops per parameter: ~1.0-1.1x
    compile: bool = False  # 1.05-1.12x per step, but 40-140 s to compile per family and process on CPU
    explicit_attention: bool = True  # attention trains on MHA's explicit path, not the math SDPA kernel: ~1.2x
    bf16_autocast: bool = False  # not kept: changes the arithmetic, and the gain differs by family (see below)


ENGINE = EngineOptions()
PLAIN = EngineOptions(channels_last=False, fused_adamw=False, compile=False,
                      explicit_attention=False)  # the baseline they are timed against
_IN_FORCE = [ENGINE]  # a stack: ``use_engine`` pushes, its exit pops


def active_engine() -> EngineOptions:
    """The options training uses where a caller passes none (``use_engine`` changes them)."""
    return _IN_FORCE[-1]


@contextlib.contextmanager
def use_engine(options: EngineOptions):
    """Train with ``options`` inside the block, e.g. ``PLAIN`` for the time-to-evidence baseline."""
    _IN_FORCE.append(options)
    try:
        yield options
    finally:
        _IN_FORCE.pop()


def engine_options(options: EngineOptions | None = None) -> dict[str, Any]:
    """The options in force, for the run manifest."""
    return {**dataclasses.asdict(options or active_engine()), "torch_version": torch.__version__}


@dataclasses.dataclass
class TrainResult:
    losses: list[float]  # mean loss over each log window
    loss_steps: list[int]  # the step that closes each window
    final_loss: float
    train_time_s: float
    stopped_at_step: int = 0  # steps actually taken (== budget.steps when not stopped early)
    stop_reason: str = "budget"  # "budget", or the plateau rule's message
    still_falling: bool | None = None  # training loss still improved beyond the rule's tolerance over its last 10%
    tail_improvement_frac: float | None = None  # that improvement, relative to the earlier best
    val_losses: list[float] = dataclasses.field(default_factory=list)  # validation loss per evaluation
    val_steps: list[int] = dataclasses.field(default_factory=list)  # the step of each evaluation


def family_lr(model_name: str) -> float:
    """The learning rate registered for a model family (DEFAULT_LR if none)."""
    from fcnprobe.models import MODELS

    return MODELS.meta(model_name).get("lr", DEFAULT_LR) if model_name in MODELS else DEFAULT_LR


def schedule(step: int, steps: int) -> float:
    """Learning-rate factor at 0-based ``step``: linear warm-up, then cosine to 0 at ``steps``."""
    warm = max(1, int(WARMUP_FRAC * steps))
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))


def make_adamw(params: Any, lr: float, options: EngineOptions | None = None) -> torch.optim.AdamW:
    """AdamW with the shared weight decay; ``params`` may be parameter groups (their own ``lr``)."""
    options = options or active_engine()
    return torch.optim.AdamW(params, lr=lr, weight_decay=WEIGHT_DECAY, fused=options.fused_adamw or None)


def attention_path(model: nn.Module, explicit: bool) -> None:
    """Set the training path of the model's attention layers that offer two
    (``explicit_weights``: ``fcnprobe.models.attention.EncoderLayer``)."""
    for m in model.modules():
        if hasattr(m, "explicit_weights"):
            m.explicit_weights = explicit


def to_engine(x: torch.Tensor, options: EngineOptions | None = None) -> torch.Tensor:
    """Inputs in the engine's memory format (NCHW -> channels-last when on)."""
    options = options or active_engine()
    return x.contiguous(memory_format=torch.channels_last) if options.channels_last and x.dim() == 4 else x


def autocast(options: EngineOptions, device_type: str) -> Any:
    """``torch.autocast`` to bfloat16 when the options ask for it, else a no-op context."""
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=options.bf16_autocast)


class Run:
    """One model's training state, advanced one step at a time (``train`` and lock-step groups)."""

    def __init__(self, model: nn.Module, sample: Sample, loss_fn: LossFn, budget: TrainBudget, lr: float,
                 device: str, seed: int, options: EngineOptions | None = None) -> None:
        options = options or active_engine()
        fmt = torch.channels_last if options.channels_last else torch.contiguous_format
        self.model = model.to(device=device, memory_format=fmt).train()
        attention_path(self.model, options.explicit_attention)
        self.sample, self.loss_fn, self.budget, self.options = sample, loss_fn, budget, options
        self.forward = torch.compile(model) if options.compile else model  # compiles on the first step
        self.opt = make_adamw(model.parameters(), lr, options)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: schedule(s, budget.steps))
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.val = validation_batch(sample, budget.stop, device, seed)
        self.step, self.window, self.reason = 0, [], None
        self.res = TrainResult([], [], float("nan"), 0.0)

    @property
    def done(self) -> bool:
        return self.reason is not None

    def advance(self) -> None:
        """One optimiser step; logs, validates and decides whether to stop."""
        batch = self.sample(self.budget.batch_size, self.gen)
        with autocast(self.options, self.gen.device.type):
            loss = self.loss_fn(self.forward(to_engine(batch.inputs, self.options)), batch).float()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        self.after_step(loss.detach())

    def after_step(self, loss: torch.Tensor) -> None:
        """Book-keeping shared with grouped training: the loss log, validation and the stop rule."""
        self.step += 1
        self.window.append(loss)
        last = self.step == self.budget.steps
        if len(self.window) == self.budget.log_every or last:
            log_window(self.res, self.window, self.step)  # the only host sync, once per window
            self.window = []
        rule = self.budget.stop
        if self.val is not None and self.step % rule.eval_every == 0:
            self.res.val_losses.append(self.validate())
            self.res.val_steps.append(self.step)
            self.reason = should_stop(self.step, self.res.val_losses, rule, self.budget.steps)
        if last:  # a plateau seen at the last step saved nothing: the budget ended the run
            self.reason = "budget"

    @torch.no_grad()
    def validate(self) -> float:
        """The validation batch's loss, forwarded a training batch at a time (``forward_chunks``)."""
        self.model.eval()
        with autocast(self.options, self.gen.device.type):
            out = forward_chunks(self.model, to_engine(self.val.inputs, self.options), self.budget.batch_size)
            loss = self.loss_fn(out, self.val).item()
        self.model.train()
        return loss

    def finish(self, elapsed_s: float) -> TrainResult:
        if self.window:  # stopped between two log points
            log_window(self.res, self.window, self.step)
        return finish_result(self.res, self.step, self.reason or "budget", self.budget.stop, elapsed_s)


def validation_batch(sample: Sample, rule: StopRule, device: str, seed: int) -> Batch | None:
    """The fixed validation batch (its own seed stream), or None when the rule is off."""
    if not rule.enabled:
        return None
    return sample(rule.val_samples, torch.Generator(device=device).manual_seed((seed + VAL_SEED_OFFSET) % 2**31))


def log_window(res: TrainResult, window: list[torch.Tensor], step: int) -> None:
    """Append the window's mean loss; raises CellError if it is not finite."""
    res.losses.append(torch.stack(window).mean().item())
    res.loss_steps.append(step)
    if not math.isfinite(res.losses[-1]):
        raise CellError(f"training loss became {res.losses[-1]} by step {step}")


def finish_result(res: TrainResult, step: int, reason: str, rule: StopRule, elapsed_s: float) -> TrainResult:
    res.final_loss = res.losses[-1] if res.losses else float("nan")
    res.train_time_s, res.stopped_at_step, res.stop_reason = elapsed_s, step, reason
    res.still_falling = still_falling(res.losses, rule)
    change = relative_improvement(res.losses, tail_window(len(res.losses), rule.tail_frac))
    res.tail_improvement_frac = None if math.isinf(change) else change
    return res


def train(model: nn.Module, sample: Sample, loss_fn: LossFn, budget: TrainBudget, lr: float, device: str,
          seed: int, options: EngineOptions | None = None) -> TrainResult:
    """Train ``model`` in place; raises CellError if the loss stops being finite."""
    start = time.perf_counter()
    run = Run(model, sample, loss_fn, budget, lr, device, seed, options)
    while not run.done and run.step < budget.steps:
        run.advance()
    synchronize(device)
    return run.finish(time.perf_counter() - start)


def forward_chunks(model: nn.Module, inputs: torch.Tensor, chunk: int) -> Any:
    """``model(inputs)``, computed ``chunk`` images at a time and concatenated (when the first chunk's
    output is not a tensor, the whole batch is forwarded again in one call).

    Why: a 256-image evaluation forward ran up to 2.8x slower per image than 16 at a time on one
    CPU thread (attention's 256-token maps leave the cache; the conv families 1.2-1.8x), and
    validation is part of training time. The zoo's outputs are bit-identical across chunk sizes
    (measured at 8-256); resnet18_fcn's differ by up to 2e-7.
    """
    first = model(inputs[:chunk])
    if not isinstance(first, torch.Tensor) or len(inputs) <= chunk:
        return first if len(inputs) <= chunk else model(inputs)
    return torch.cat([first] + [model(inputs[i:i + chunk]) for i in range(chunk, len(inputs), chunk)])


@torch.inference_mode()
def predict(model: nn.Module, inputs: torch.Tensor, chunk: int = EVAL_CHUNK) -> torch.Tensor:
    """Eval-mode outputs for ``inputs`` in chunks; raises CellError on NaN output."""
    model.eval()
    out = forward_chunks(model, inputs, chunk)
    if not torch.isfinite(out).all():
        raise CellError("model output contains NaN or inf")
    return out
