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

Which tasks are swept over a parameter (``shift``'s distance) and how a task's
distances are binned come from the task registry's metadata (``sweep_param``,
``bins``), never from task names. Torch is imported inside the functions that
run cells, so the declarations can be read without it.

Claim tested: the seed's point 3, "FCN architectures ... struggle to integrate
information across the entire input space". References: Luo et al. 2016 (ERF),
Liu et al. 2015 (ParseNet), Yu & Koltun 2016 (dilation), Zheng et al. 2021 (SETR).
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from fcnprobe.analysis.context import (bin_accuracy, dense_bins, failure_distance, split_at_reach,
                                       uniform_bins)
from fcnprobe.config import RunConfig
from fcnprobe.metrics import declare, metric
from fcnprobe.probes.base import Cell, CellContext, CellOutput, Probe, register_probe
from fcnprobe.utils import IGNORE_INDEX, check_finite, param_count

if TYPE_CHECKING:
    import torch

    from fcnprobe.tasks.base import Batch, Task
    from fcnprobe.train import TrainBudget

EVAL_SEED_OFFSET = 1_000_003  # held-out data never shares a generator stream with training
WEIGHTS_FILE = "weights.pt"

CONTEXT_METRICS = declare([
    metric("acc_frac", "held-out accuracy", "higher"), metric("chance_frac", "chance accuracy"),
    metric("acc_by_dist_frac", "accuracy per distance bin", "higher", is_array=True),
    metric("count_by_dist", "samples per distance bin", is_array=True, unit="count"),
    metric("dist_bin_lo_px", "distance bin start", is_array=True), metric("dist_bin_hi_px", "distance bin end",
                                                                          is_array=True),
    metric("failure_dist_px", "failure distance", "higher"), metric("reach_px", "reach of the TRF on this task"),
    metric("acc_within_reach_frac", "accuracy within reach", "higher"),
    metric("acc_beyond_reach_frac", "accuracy beyond reach", "higher"),
    metric("pooled_ceiling_frac", "best accuracy of a pooled symmetric read-out"),
    metric("trf_px", "TRF side"), metric("trf_radius_px", "TRF radius"), metric("params_count", "parameters"),
    metric("lr", "learning rate"), metric("steps_count", "training steps"), metric("batch_size_count", "batch size"),
    metric("head_resolved", "head"), metric("train_time_s", "training time", "lower"),
    metric("final_loss", "final training loss", "lower"), metric("loss_curve", "training loss", is_array=True),
    metric("loss_steps", "loss curve steps", is_array=True, unit="count"), metric("weights_file", "weights file"),
])


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


@register_probe("context", order=10, help="accuracy against cue distance, beside each model's TRF")
class ContextProbe(Probe):
    """Train per (model, task[, d]) and record accuracy by distance, failure distance and TRF."""

    settings_by_preset = SETTINGS
    metrics = CONTEXT_METRICS

    def cells(self, cfg: RunConfig, settings: ContextSettings) -> list[Cell]:
        from fcnprobe.device import resolve_device
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
        import torch

        from fcnprobe.measure.receptive import theoretical_receptive_field
        from fcnprobe.models import create_model
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
                       params_count=param_count(model), lr=lr,
                       steps_count=budget.steps, batch_size_count=budget.batch_size,
                       head_resolved=str(getattr(getattr(model, "info", None), "head", p["head"])),
                       train_time_s=result.train_time_s, final_loss=result.final_loss,
                       loss_curve=result.losses, loss_steps=result.loss_steps,
                       weights_file=str(weights.relative_to(ctx.run_dir)))
        return CellOutput(metrics=metrics)


def data_seed(cell: Cell) -> int:
    """Seed for training and held-out data: the cell key without the model, so every model of a
    (task, size, distance, seed) group sees the same samples; weights init from ``cell.torch_seed``."""
    keys = {k: v for k, v in cell.params if k in ("image_size", _sweep_param(cell.task))}
    return Cell.make(cell.probe, "*", cell.task, seed=cell.seed, **keys).torch_seed


def _sweep_param(task: str) -> str | None:
    """The constructor argument the task sweeps per cell (``TASKS.meta``), e.g. shift's distance."""
    from fcnprobe.tasks import TASKS

    return TASKS.meta(task).get("sweep_param") if task in TASKS else None


def _task_variants(task: str, size: int, settings: ContextSettings) -> list[dict[str, Any]]:
    """Extra task arguments per cell: one per distance that fits the image for a swept task, else one empty."""
    param = _sweep_param(task)
    if param is None:
        return [{}]
    return [{param: d} for d in settings.shift_distances if d < size]


def _build_task(cell: Cell) -> "Task":
    from fcnprobe.tasks import create_task

    param = _sweep_param(cell.task)
    extra = {param: cell.p[param]} if param in cell.p else {}
    return create_task(cell.task, image_size=cell.p["image_size"], **extra)


def _loss(out: "torch.Tensor", batch: "Batch") -> "torch.Tensor":
    """Cross-entropy; dense tasks mask pixels with the ignore index."""
    import torch.nn.functional as F

    return F.cross_entropy(out, batch.targets, ignore_index=IGNORE_INDEX)


def _bins(task: "Task", settings: ContextSettings) -> tuple[list[int], list[int]]:
    """Distance bins by the task's ``bins`` meta: fine near the cue, uniform, or one fixed distance."""
    from fcnprobe.tasks import TASKS

    how = TASKS.meta(task.name).get("bins", "near_cue" if task.kind == "dense" else "uniform")
    if how == "fixed":  # one distance per model
        return [task.distance], [task.distance]
    if how == "near_cue":
        s = task.image_size
        return dense_bins(s - 1, step=settings.bin_step_px, fine_until=min(12, s - 1))
    return uniform_bins(task.min_distance, task.max_distance, settings.pair_bin_px)


def _evaluate(model: "torch.nn.Module", task: "Task", cell: Cell, ctx: CellContext, trf: int | None) -> dict[str, Any]:
    """Held-out accuracy overall, per distance bin and either side of the task's reach."""
    import torch

    from fcnprobe.train import predict

    gen = torch.Generator(device=ctx.device).manual_seed((data_seed(cell) + EVAL_SEED_OFFSET) % 2**31)
    batch = task.heldout(ctx.settings.eval_samples, gen)
    out = check_finite(predict(model, batch.inputs), "eval_forward")  # (B, C, H, W) or (B, C)
    correct = (out.argmax(1) == batch.targets).cpu().numpy()
    valid = (batch.targets != IGNORE_INDEX).cpu().numpy()
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

