"""The difficulty probe: the seed's claim 4 ("training FCNs for structured, multi-part outputs
is harder") measured as *difficulty*, not as accuracy at one budget.

On ``multi_output`` (findings, count, size, box) and ``locate`` (one box), every
trunk in ``trunks`` is trained with every head design in ``heads``:

* ``linear`` -- direct regression, global average pooling + linear, targets standardised;
* ``softargmax`` -- the box from a centre heatmap's spatial-softmax expectation;
* ``heatmap_decode`` -- a foreground heatmap trained on the box mask, decoded to a box;
* ``gap`` -- the pooling adapter (average pooling + linear, sigmoid box).

On multi_output the design names the box head; findings and (count, size) read a
pooled vector (``@linear``, or ``@gap`` in the gap design). Each design trains at
every rate of the preset's grid (``lrs``; empty: the one rate ``lr.learning_rate``
gives) and every seed, for the whole budget: early stopping never applies, because
the difficulty metrics read the whole curve. The FCN trunk also trains with deep
supervision (``models/deepsup.py``) for the heads in ``deepsup_heads``. Training is
``fcnprobe.probes.difficulty_train``; the metrics are ``fcnprobe.analysis.difficulty``.

Time (measured step times at batch 16, 32 px, width 16, depth 4, scaled to the
reference one-thread sgemm rate of 150 GFLOP/s from a box measuring 8-25 GFLOP/s):
one step of every design of the standard grid costs ~196 ms on one core (fcn
8-11 ms per design, cnn_fc 2-9, attention 6-8, fcn + deep supervision ~14), so
``standard`` (500 steps x 3 rates x 3 seeds, 234 cells) is ~15 min of training
plus ~3 min of scoring and set-up on one core (about half on the 2-core pool),
and ``quick`` (120 steps, 25 cells) ~40 s.

Seeds: a preset's ``seeds`` are used when the run gave no ``--seeds`` (the
default ``(0,)``); ``--seeds`` overrides them. Torch is imported only inside cells.
"""
from __future__ import annotations

import dataclasses

from fcnprobe.analysis.difficulty import OUTPUTS
from fcnprobe.config import RunConfig
from fcnprobe.metrics import declare, metric
from fcnprobe.probes.base import Cell, CellContext, CellOutput, Probe, register_probe

TASKS = ("multi_output", "locate")
HEADS = ("linear", "softargmax", "heatmap_decode", "gap")
TRUNKS = ("fcn", "cnn_fc", "attention")
COVERING_TRUNK = "dilated_deep"  # the RF-covering conv-only trunk (TRF >= 2x the image side; issue 16)
DEFAULT_SEEDS = RunConfig().seeds  # a run that did not pass --seeds


def _output_metrics() -> list:
    out, seen = [], set()
    for outs in OUTPUTS.values():
        for o in outs:
            if o.metric in seen:
                continue
            seen.add(o.metric)
            d = "higher" if o.higher else "lower"
            unit = "fraction" if o.metric.endswith("_frac") else "IoU" if "iou" in o.metric else "count/px"
            out += [metric(o.metric, f"{o.name} score (held out)", d, unit=unit),
                    metric(f"{o.metric}_const", f"{o.name} score of the constant guess (held out)", d, unit=unit),
                    metric(f"{o.metric}_val_const", f"{o.name} constant guess (validation)", d, unit=unit),
                    metric(f"{o.metric}_curve", f"{o.name} validation score per evaluation", d, True, unit),
                    metric(f"{o.metric}_gain_lo", f"{o.name} gain over the constant, 95% lower bound", "higher",
                           unit=unit),
                    metric(f"{o.metric}_beats", f"{o.name} beats the constant guess", "higher")]
    return out


_TRAINING = [metric("lr", "learning rate", unit=""), metric("lr_source", "learning-rate source"),
             metric("loss_weights", "multi-task loss weights"), metric("loss_terms", "loss terms"),
             metric("head_specs", "heads per output", is_array=True, unit=""),
             metric("params_count", "parameters (without auxiliary heads)"),
             metric("aux_params_count", "auxiliary-head parameters"), metric("aux_heads_count", "auxiliary taps"),
             metric("eval_steps", "evaluation steps", is_array=True, unit="count"),
             metric("eval_time_s", "validation scoring time", "lower"),
             metric("train_time_s", "training time (without scoring)", "lower"),
             metric("diverged", "loss or output became non-finite"),
             metric("diverged_at_step", "step of divergence", unit="count"),
             metric("loss_curve", "training loss", "lower", True), metric("loss_steps", "loss steps", is_array=True,
                                                                         unit="count"),
             metric("final_loss", "final training loss", "lower"), metric("still_falling", "loss still falling"),
             metric("tail_improvement_frac", "loss improvement over the last 10%"),
             metric("stopped_at_step", "steps taken", unit="count"), metric("stop_reason", "why training ended"),
             metric("test_count", "held-out samples")]
DIFFICULTY_METRICS = declare(_output_metrics(), _TRAINING)


@dataclasses.dataclass(frozen=True)
class DifficultySettings:
    """Per-preset grid and budget; every design of a task gets the same budget and data."""

    steps: int  # optimiser steps, never stopped early
    batch_size: int
    width: int  # trunk width (parameter parity is the families' own sizing)
    depth: int
    eval_every: int  # steps between validation scorings (the score curve)
    val_count: int  # validation samples (curves, rate selection)
    test_count: int  # held-out samples (final scores, beats-the-constant gate)
    lrs: tuple[float, ...]  # the rate grid shared by every design; () = lr.learning_rate only
    seeds: tuple[int, ...]  # used when --seeds is not given
    trunks: tuple[str, ...] = TRUNKS
    heads: tuple[str, ...] = HEADS
    tasks: tuple[str, ...] = TASKS
    deepsup_heads: tuple[str, ...] = HEADS  # fcn also trains with deep supervision on these heads
    deepsup_tasks: tuple[str, ...] = ("multi_output",)
    multi_image_size: int = 32
    locate_image_size: int = 32  # smaller than the shape probe's 64 px: 576 positions, 4x cheaper
    aux_weight: float = 0.3  # weight of the mean auxiliary loss
    log_every: int = 10
    note: str = ""  # what the preset leaves out, for the report


SMOKE = DifficultySettings(steps=4, batch_size=4, width=4, depth=2, eval_every=2, val_count=8, test_count=8,
                           lrs=(), seeds=(0,), trunks=("fcn", "cnn_fc"), heads=("linear", "heatmap_decode"),
                           deepsup_heads=("linear",), log_every=2, note="smoke test: two trunks, two heads")
QUICK = DifficultySettings(steps=120, batch_size=16, width=16, depth=4, eval_every=20, val_count=128,
                           test_count=256, lrs=(), seeds=(0,), deepsup_heads=("linear",),
                           note="quick: one seed and one learning rate per design (no LR band, no seed failure "
                                "rate); deep supervision on the linear head only; no RF-covering trunk")
STANDARD = DifficultySettings(steps=500, batch_size=16, width=16, depth=4, eval_every=25, val_count=256,
                              test_count=512, lrs=(1e-3, 3e-3, 1e-2), seeds=(0, 1, 2),
                              deepsup_heads=("linear", "softargmax"), trunks=TRUNKS + (COVERING_TRUNK,),
                              note="standard: 3 rates, 3 seeds (the seed failure rate decides nothing below 5)")
FULL = DifficultySettings(steps=3000, batch_size=32, width=32, depth=6, eval_every=100, val_count=512,
                          test_count=1024, lrs=(3e-4, 1e-3, 3e-3, 1e-2), seeds=(0, 1, 2, 3, 4),
                          locate_image_size=64, trunks=TRUNKS + (COVERING_TRUNK,), note="full: 4 rates, 5 seeds")


@register_probe("difficulty", order=35, help="claim 4: steps to target, LR band and seed failures per trunk x head")
class DifficultyProbe(Probe):
    """Trunk x head x rate x seed on the structured-output tasks; the whole score curve per cell."""

    metrics = DIFFICULTY_METRICS
    settings_by_preset = {"smoke": SMOKE, "quick": QUICK, "standard": STANDARD, "full": FULL}

    def cells(self, cfg: RunConfig, s: DifficultySettings) -> list[Cell]:
        from fcnprobe.models import list_models

        # zoo trunks only: the grid swaps heads on a trunk, which a user's own network does not expose
        models = [m for m in self.model_names(cfg, [t for t in s.trunks if t in list_models()]) if ":" not in m]
        seeds = s.seeds if cfg.seeds == DEFAULT_SEEDS else cfg.seeds
        rates = s.lrs or ("default",)
        out = []
        for task in self.task_names(cfg, list(s.tasks)):
            for m, head, deep in design_grid(s, task, models):
                out += [Cell.make(self.name, m, task, seed=seed, head=head, lr=lr, deepsup=deep)
                        for lr in rates for seed in seeds]
        return out

    def run_cell(self, cell: Cell, ctx: CellContext) -> CellOutput:
        from fcnprobe.probes.difficulty_train import run_difficulty

        if cell.task not in TASKS:
            raise ValueError(f"difficulty probe has no task '{cell.task}'; its tasks: {', '.join(TASKS)}")
        return CellOutput(metrics=run_difficulty(cell, ctx))


def design_grid(s: DifficultySettings, task: str, models: list[str]) -> list[tuple[str, str, bool]]:
    """(trunk, head, deep supervision) for one task; deep supervision only on the fcn trunk."""
    grid = [(m, h, False) for m in models for h in s.heads]
    if task in s.deepsup_tasks and "fcn" in models:
        grid += [("fcn", h, True) for h in s.deepsup_heads]
    return grid
