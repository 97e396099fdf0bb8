"""The global-context probe: accuracy against cue distance, beside each model's TRF.

For each cell (model, task, image size, shift distance for ``shift``, seed) the
probe trains the model from scratch on the task's generator with one budget for
every model (AdamW, the family's learning rate from the registry, never a
per-task one), scores it on paired held-out samples, bins accuracy by Chebyshev
distance to the cue and derives the *failure distance*: the first bin below the
midpoint of chance and 1 (``fcnprobe.analysis.context``). The theoretical
receptive field (TRF) and the task's *reach* for that TRF are recorded beside
it, so a report can set "where it fails" against "where it must fail".

The trained weights are kept (``weights.pt`` in the cell folder, a state_dict of
CPU tensors; load with ``torch.load(path, weights_only=True)``), and the cell's
params hold everything ``create_model`` needs to rebuild the model: ``head``,
``image_size``, ``width``, ``depth``.

Claim tested: the seed's point 3, "FCN architectures ... struggle to integrate
information across the entire input space". References: Luo et al. 2016 (ERF),
Liu et al. 2015 (ParseNet), Yu & Koltun 2016 (dilation), Zheng et al. 2021 (SETR).
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from fcnprobe.analysis.context import (bin_accuracy, dense_bins, failure_distance, split_at_reach,
                                       uniform_bins)
from fcnprobe.config import RunConfig, resolve_device
from fcnprobe.probes.base import Cell, CellContext, CellOutput, Probe, register_probe
from fcnprobe.tasks.base import Batch

if TYPE_CHECKING:
    from fcnprobe.train import TrainBudget

EVAL_SEED_OFFSET = 1_000_003  # held-out data never shares a generator stream with training
WEIGHTS_FILE = "weights.pt"


@dataclasses.dataclass(frozen=True)
class ContextSettings:
    """One preset of the context probe; every model gets the same budget."""

    models: tuple[str, ...]  # default families (``--models`` overrides)
    tasks: tuple[str, ...]  # default tasks (``--tasks`` filters)
    image_sizes: tuple[int, ...]  # square inputs, px
    cuda_image_sizes: tuple[int, ...]  # extra sizes run only when the device is CUDA
    shift_distances: tuple[int, ...]  # d for ``shift``, px; one model per d
    steps: int  # optimiser steps per cell
    batch_size: int  # samples per step
    eval_samples: int  # held-out samples (paired where the task pairs them)
    width: int | None  # channels for every family; None = the zoo default (32)
    depth: int | None  # layers; None = the zoo default (6: fcn TRF 13 px, radius 6)
    bin_step_px: int  # width of the fine distance bins for dense tasks
    pair_bin_px: int  # width of the centre-distance bins for same_different
    log_every: int = 10  # steps per recorded loss value
    steps_by_task: tuple[tuple[str, int], ...] = ()  # per-task step counts (still the same for every model)

    def budget(self, task: str) -> "TrainBudget":
        """The training budget of ``task``: identical for every model in this preset."""
        from fcnprobe.train import TrainBudget

        return TrainBudget(dict(self.steps_by_task).get(task, self.steps), self.batch_size, self.log_every)


ALL_FAMILIES = ("fcn", "fcn_encdec", "dilated", "cnn_fc", "fcn_gap", "attention", "nonlocal", "coordconv")
TASKS = ("global_cue", "shift", "same_different")

SETTINGS = {
    # tests: seconds, not meaning
    "smoke": ContextSettings(models=("fcn", "fcn_gap"), tasks=TASKS, image_sizes=(16,), cuda_image_sizes=(),
                             shift_distances=(1,), steps=12, batch_size=8, eval_samples=32, width=8, depth=3,
                             bin_step_px=1, pair_bin_px=4, log_every=4),
    # the default run: <= 3 min with --workers 2 on 2 CPU cores. Width 16 (not 32) buys ~3x the
    # steps; shift converges in half the steps of the others, so it gets half and they get more.
    "quick": ContextSettings(models=("fcn", "cnn_fc", "dilated", "attention", "fcn_gap"), tasks=TASKS,
                             image_sizes=(32,), cuda_image_sizes=(), shift_distances=(3, 12),
                             steps=800, batch_size=16, eval_samples=1024, width=16, depth=None,
                             bin_step_px=2, pair_bin_px=4, steps_by_task=(("shift", 400),)),
    # GPU / cluster: every family, more distances; run with --seeds 3 for the 95% CI
    "full": ContextSettings(models=ALL_FAMILIES, tasks=TASKS, image_sizes=(64,), cuda_image_sizes=(128,),
                            shift_distances=(2, 4, 6, 8, 12, 16, 24), steps=3000, batch_size=64,
                            eval_samples=4096, width=None, depth=None, bin_step_px=2, pair_bin_px=4),
}


@register_probe("context", order=10)
class ContextProbe(Probe):
    """Train per (model, task[, d]) and record accuracy by distance, failure distance and TRF."""

    settings_by_preset = SETTINGS

    def cells(self, cfg: RunConfig, settings: ContextSettings) -> list[Cell]:
        from fcnprobe.tasks import create_task

        sizes = list(settings.image_sizes)
        if resolve_device(cfg.device).startswith("cuda"):
            sizes += list(settings.cuda_image_sizes)
        out: list[Cell] = []
        for model in self.model_names(cfg, list(settings.models)):
            for task in self.task_names(cfg, list(settings.tasks)):
                for size in sizes:
                    for extra in _task_variants(task, size, settings):
                        head = create_task(task, image_size=size, **extra).head
                        out += [Cell.make(self.name, model, task, seed=s, head=head, image_size=size,
                                          width=settings.width, depth=settings.depth, **extra)
                                for s in cfg.seeds]
        # longest budgets first, so a pool does not end on one long cell (stable: model order kept)
        return sorted(out, key=lambda c: -settings.budget(c.task).steps)

    def run_cell(self, cell: Cell, ctx: CellContext) -> CellOutput:
        from fcnprobe.models import create_model, theoretical_receptive_field
        from fcnprobe.train import family_lr, train

        p, st = cell.p, ctx.settings
        task = _build_task(cell)
        model = create_model(cell.model, head=p["head"], in_channels=task.in_channels,
                             image_size=p["image_size"], width=p["width"], depth=p["depth"])
        lr = family_lr(cell.model)
        budget = st.budget(cell.task)
        result = train(model, task.sample, _loss, budget, lr, ctx.device, data_seed(cell))
        trf = theoretical_receptive_field(model, p["image_size"])
        metrics = _evaluate(model, task, cell, ctx, trf)
        weights = ctx.cell_dir / WEIGHTS_FILE
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, weights)
        metrics.update(trf_px=trf, trf_radius_px=None if trf is None else (trf - 1) // 2,
                       params_count=sum(q.numel() for q in model.parameters()), lr=lr,
                       steps_count=budget.steps, batch_size_count=budget.batch_size,
                       head_resolved=str(getattr(getattr(model, "info", None), "head", p["head"])),
                       train_time_s=result.train_time_s, final_loss=result.final_loss,
                       loss_curve=result.losses, loss_steps=result.loss_steps,
                       weights_file=str(weights.relative_to(ctx.run_dir)))
        return CellOutput(metrics=metrics)


def data_seed(cell: Cell) -> int:
    """Seed for training and held-out data: the cell key without the model, so every model of a
    (task, size, distance, seed) group sees the same samples; weights init from ``cell.torch_seed``."""
    keys = {k: v for k, v in cell.params if k in ("image_size", "distance")}
    return Cell.make(cell.probe, "*", cell.task, seed=cell.seed, **keys).torch_seed


def _task_variants(task: str, size: int, settings: ContextSettings) -> list[dict[str, Any]]:
    """Extra task arguments per cell: one per shift distance that fits the image, else one empty."""
    if task != "shift":
        return [{}]
    return [{"distance": d} for d in settings.shift_distances if d < size]


def _build_task(cell: Cell):
    from fcnprobe.tasks import create_task

    extra = {"distance": cell.p["distance"]} if "distance" in cell.p else {}
    return create_task(cell.task, image_size=cell.p["image_size"], **extra)


def _loss(out: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Cross-entropy; dense tasks mask pixels with the ignore index (-100)."""
    return F.cross_entropy(out, batch.targets, ignore_index=-100)


def _bins(task, settings: ContextSettings) -> tuple[list[int], list[int]]:
    """Distance bins: fine near the cue for dense tasks, uniform centre-distance bins for pairs."""
    if task.name == "shift":  # one distance per model
        return [task.distance], [task.distance]
    if task.kind == "dense":
        s = task.image_size
        return dense_bins(s - 1, step=settings.bin_step_px, fine_until=min(12, s - 1))
    return uniform_bins(task.min_distance, task.max_distance, settings.pair_bin_px)


def _evaluate(model: torch.nn.Module, task, cell: Cell, ctx: CellContext, trf: int | None) -> dict[str, Any]:
    """Held-out accuracy overall, per distance bin and either side of the task's reach."""
    from fcnprobe.train import predict

    gen = torch.Generator(device=ctx.device).manual_seed((data_seed(cell) + EVAL_SEED_OFFSET) % 2**31)
    batch = task.heldout(ctx.settings.eval_samples, gen)
    out = predict(model, batch.inputs)  # (B, C, H, W) or (B, C)
    correct = (out.argmax(1) == batch.targets).cpu().numpy()
    valid = (batch.targets != -100).cpu().numpy()
    dist = task.distances(batch).cpu().numpy()
    lo, hi = _bins(task, ctx.settings)
    acc, counts = bin_accuracy(correct, dist, lo, hi, valid)
    reach = task.reach(trf)
    within, beyond = split_at_reach(correct, dist, reach, valid)
    metrics = {"acc_frac": float(correct[valid].mean()), "chance_frac": task.chance,
               "acc_by_dist_frac": acc, "count_by_dist": counts, "dist_bin_lo_px": lo, "dist_bin_hi_px": hi,
               "failure_dist_px": failure_distance(acc, lo, task.chance), "reach_px": reach,
               "acc_within_reach_frac": within, "acc_beyond_reach_frac": beyond}
    if hasattr(task, "pooled_ceiling"):
        metrics["pooled_ceiling_frac"] = task.pooled_ceiling
    return metrics

