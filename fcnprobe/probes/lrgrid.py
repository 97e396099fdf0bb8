"""The learning-rate grid probe: one cell per (family, task) trains every rate of the
grid as one group and records the validation loss at each rate, the rate it selects,
and whether the grid had to be extended past an edge.

The protocol (``fcnprobe.lr``): the same 6 log-spaced peak rates, 3e-4 .. 1e-2,
for every family; each rate trains the *same* initial weights on the *same*
training stream under the shared warm-up + cosine schedule for the full budget
(no early stop: every rate gets every step), so the rate is the only
difference. The score is the training objective on a fixed validation batch
drawn from its own seed: this probe's data seeds derive from its own cell keys
(probe ``lrgrid``), so neither its training nor its validation data is the
held-out set that the context or shape probe scores. A best rate at the grid's
edge trains one more rate one log step beyond that edge, once
(``edge_extended``); ``best_at_edge`` says if the best is still on the edge.

A rate whose loss turns NaN is a result, not a failure: the group goes on and
that rate's validation loss is None. Grouping: ``train_group`` with strategy
``auto`` (lock-step loop on CPU, where it measured faster than vmap: 6 rates at the
quick shape, one thread, sgemm 103 GFLOP/s, seconds per grouped step loop vs vmap:
fcn 0.103 vs 0.192, cnn_fc 0.036 vs 0.044, attention 0.725 vs 0.771; the loop does
the same arithmetic as training the rates one after another; vmap on CUDA).

Tasks: the context tasks (``global_cue``, ``shift`` at one distance,
``same_different``) with the context probe's heads and loss, and the shape
tasks ``locate`` (box L1, the family's native box head or soft-argmax) and
``multi_output`` (the shape probe's per-family design and loss). The
``lrgrid`` preset runs the real grid (1 seed); ``smoke`` is tiny, for tests;
other presets plan no cells. Torch is imported only where cells run.
"""
from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any, Callable

from fcnprobe.config import RunConfig
from fcnprobe.lr import GRID_FAMILIES, GRID_STEPS, GRID_TASKS, edge_side, extend, lr_grid, select
from fcnprobe.metrics import declare, metric
from fcnprobe.probes.base import Cell, CellContext, CellOutput, Probe, register_probe

if TYPE_CHECKING:
    import torch.nn as nn

LR_VAL_SEED_OFFSET = 3_000_017  # the validation batch's stream: never a training or held-out stream
CONTEXT_TASKS = ("global_cue", "shift", "same_different")
SHAPE_TASKS = ("locate", "multi_output")

LRGRID_METRICS = declare([
    metric("lrs", "learning rates tried", is_array=True), metric("val_loss_by_lr", "validation loss", "lower",
                                                                 is_array=True),
    metric("val_acc_by_lr", "validation accuracy", "higher", is_array=True),
    metric("train_loss_by_lr", "final training loss", "lower", is_array=True),
    metric("still_falling_by_lr", "loss still falling at the end", is_array=True),
    metric("stop_reason_by_lr", "why each rate stopped", is_array=True),
    metric("lr", "selected learning rate"), metric("lr_source", "learning rate source"),
    metric("best_val_loss", "validation loss at the selected rate", "lower"),
    metric("const_val_loss", "validation loss of the best constant guess (classification)"),
    metric("learned", "some rate beat the constant guess by more than 1% (None: no constant known)"),
    metric("best_val_acc_frac", "validation accuracy at the selected rate", "higher"),
    metric("edge_extended", "grid extended past an edge (low / high / none)"),
    metric("best_at_edge", "selected rate on the edge of the (extended) grid"),
    metric("family", "model family"), metric("group_strategy", "group training strategy"),
    metric("train_time_s", "training time, all rates", "lower"), metric("steps_count", "training steps"),
    metric("batch_size_count", "batch size"), metric("val_samples_count", "validation samples"),
    metric("params_count", "parameters"),
])


@dataclasses.dataclass(frozen=True)
class LrGridSettings:
    """One preset of the grid; every family and rate gets the same budget."""

    models: tuple[str, ...]  # default families (``--models`` overrides)
    tasks: tuple[str, ...]  # default tasks (``--tasks`` filters)
    image_size: int  # px, the context tasks (locate keeps its own 64 px canvas)
    width: int | None  # channels; the context quick preset's 16
    depth: int | None  # None = the zoo default
    steps: int  # optimiser steps per rate (the full budget: no early stop)
    batch_size: int  # samples per step
    val_samples: int  # the fixed validation batch
    multi_image_size: int = 32  # multi_output's canvas (the shape probe's; its slots need >= 32 px)
    shift_distance: int = 3  # the one distance of ``shift`` (the table's rate serves every d)
    grid: tuple[float, ...] = tuple(lr_grid())  # the one grid (fcnprobe.lr)
    extend_edges: bool = True  # one more rate past an edge that wins
    strategy: str = "auto"  # train_group strategy
    log_every: int = 10  # steps per logged training loss


SETTINGS = {
    "smoke": LrGridSettings(models=("fcn",), tasks=("global_cue", "multi_output"), image_size=16, width=8, depth=3,
                            steps=6, batch_size=4, val_samples=16, grid=tuple(lr_grid(1e-3, 1e-2, 3)), log_every=2),
    # the real grid: quick's shape (32 px, width 16, batch 16, 800 steps), every default family, 5 tasks
    "lrgrid": LrGridSettings(models=GRID_FAMILIES, tasks=GRID_TASKS, image_size=32, width=16,
                             depth=None, steps=GRID_STEPS, batch_size=16, val_samples=512),
}


@register_probe("lrgrid", order=5, help="learning-rate grid per (family, task) on a validation stream")
class LrGridProbe(Probe):
    """Train the LR grid per (family, task) and record the validation loss at every rate."""

    settings_by_preset = SETTINGS
    metrics = LRGRID_METRICS
    version = 2  # 2: the constant guess's loss and the "learned" flag

    def cells(self, cfg: RunConfig, settings: LrGridSettings) -> list[Cell]:
        out = []
        for model in self.model_names(cfg, list(settings.models)):
            for task in self.task_names(cfg, list(settings.tasks)):
                if ":" in model and task in ("locate", "multi_output"):  # heads are swapped on zoo trunks only
                    continue
                extra = {"distance": settings.shift_distance} if task == "shift" else {}
                out += [Cell.make(self.name, model, task, seed=s, **extra) for s in cfg.seeds]
        return out

    def run_cell(self, cell: Cell, ctx: CellContext) -> CellOutput:
        st = ctx.settings
        prob = _problem(cell, st, ctx.device)
        lrs = list(st.grid)
        results, how = _train_rates(prob, cell, st, ctx.device, lrs)
        side = edge_side(lrs, lrs[_best(lrs, results)]) if st.extend_edges else None
        if side:
            lrs.append(extend(lrs, side))
            more, _ = _train_rates(prob, cell, st, ctx.device, lrs[-1:])
            results += more
        order = sorted(range(len(lrs)), key=lambda i: lrs[i])
        lrs, results = [lrs[i] for i in order], [results[i] for i in order]
        best = _best(lrs, results)
        return CellOutput(metrics=_metrics(cell, st, lrs, results, best, side, how, prob))


# -- one (family, task) problem -------------------------------------------------------------------------------

@dataclasses.dataclass
class Problem:
    build: Callable[[int], "nn.Module"]  # seed -> a fresh model
    sample: Callable  # (n, generator) -> Batch, the training stream
    loss: Callable  # (outputs, batch) -> scalar loss
    val: Any  # the fixed validation Batch
    classify: bool  # accuracy applies (argmax over dim 1 against integer targets)


def data_seed(cell: Cell) -> int:
    """Training data seed: this probe's cell key without the model (every family sees the same stream)."""
    return Cell.make(cell.probe, "*", cell.task, seed=cell.seed, **cell.p).torch_seed


def _problem(cell: Cell, st: LrGridSettings, device: str) -> Problem:
    import torch

    gen = torch.Generator(device=device).manual_seed((data_seed(cell) + LR_VAL_SEED_OFFSET) % 2**31)
    if cell.task in SHAPE_TASKS:
        return _shape_problem(cell, st, gen)
    from fcnprobe.models import create_model
    from fcnprobe.probes.context import _loss
    from fcnprobe.tasks import create_task

    task = create_task(cell.task, image_size=st.image_size, **cell.p)
    build = lambda seed: create_model(cell.model, head=task.head, in_channels=task.in_channels,  # noqa: E731
                                      image_size=st.image_size, width=st.width, depth=st.depth)
    val = task.heldout(st.val_samples, gen) if hasattr(task, "heldout") else task.sample(st.val_samples, gen)
    return Problem(build, task.sample, _loss, val, True)


def _shape_problem(cell: Cell, st: LrGridSettings, gen: Any) -> Problem:
    import torch.nn.functional as F

    from fcnprobe.models import MODELS, create_model
    from fcnprobe.models.adapters import build_multi_head
    from fcnprobe.probes.shape_train import MULTI_HEADS, STATS_SAMPLES, multi_loss, standardise
    from fcnprobe.tasks import create_task

    native = MODELS.meta(cell.model).get("native", ()) if cell.model in MODELS else ()
    if cell.task == "locate":
        task = create_task("locate")
        head = "box" if "box" in native else "box@softargmax"
        build = lambda seed: create_model(cell.model, head=head, in_channels=task.in_channels,  # noqa: E731
                                          image_size=task.image_size, width=st.width, depth=st.depth)
        sample = lambda n, g: task.sample(n, g, "train")  # noqa: E731
        return Problem(build, sample, lambda y, b: F.l1_loss(y, b.targets), sample(st.val_samples, gen), False)
    task = create_task("multi_output", image_size=st.multi_image_size)
    family = MODELS.meta(cell.model).get("family") if cell.model in MODELS else None
    design = {"cnn_fc": "cnn_fc_heads", "attention": "attention_heads"}.get(family, "fcn_adapters")
    heads, stats = MULTI_HEADS[design], task.sample(STATS_SAMPLES, gen).targets

    def build(seed: int) -> Any:  # linear heads de-standardise with the training targets' statistics
        net = build_multi_head(cell.model, heads, in_channels=task.in_channels, image_size=task.image_size,
                               width=st.width, depth=st.depth)
        build.std = standardise(net, stats, list(heads))
        return net

    build(0)  # the statistics depend on the data only: one build fixes the loss's scales
    return Problem(build, task.sample, multi_loss(build.std), task.sample(st.val_samples, gen), False)


# -- training and scoring ------------------------------------------------------------------------------------

def _train_rates(prob: Problem, cell: Cell, st: LrGridSettings, device: str,
                 lrs: list[float]) -> tuple[list[dict[str, Any]], str]:
    """Train ``lrs`` as one group (same init and data); one score dict per rate, and the strategy used."""
    from fcnprobe.convergence import NEVER
    from fcnprobe.train import TrainBudget
    from fcnprobe.train_group import Member, train_group

    members = [Member(seed=cell.torch_seed, lr=lr, data_seed=data_seed(cell)) for lr in lrs]
    budget = TrainBudget(st.steps, st.batch_size, st.log_every, stop=NEVER)
    out = train_group(prob.build, members, prob.sample, prob.loss, budget, device, st.strategy,
                      on_diverge="record")
    scores = [{**_score(prob, model), "train_loss": res.final_loss, "still_falling": res.still_falling,
               "stop_reason": res.stop_reason, "time_s": res.train_time_s, "params": _params(model)}
              for model, res in zip(out.models, out.results)]
    return scores, out.strategy


def _score(prob: Problem, model: "nn.Module") -> dict[str, float | None]:
    """Validation loss (and accuracy for classification) in eval mode; None where the output is not finite."""
    import torch

    from fcnprobe.utils import IGNORE_INDEX

    model.eval()
    with torch.inference_mode():
        out = model(prob.val.inputs)
        loss = float(prob.loss(out, prob.val))
    if not (math.isfinite(loss) and bool(torch.isfinite(out).all())):
        return {"val_loss": None, "val_acc": None}
    if not prob.classify:
        return {"val_loss": loss, "val_acc": None}
    valid = prob.val.targets != IGNORE_INDEX
    acc = (out.argmax(1) == prob.val.targets)[valid].float().mean().item()
    return {"val_loss": loss, "val_acc": acc}


def _params(model: "nn.Module") -> int:
    from fcnprobe.utils import param_count

    return param_count(model)


def _best(lrs: list[float], results: list[dict[str, Any]]) -> int:
    from fcnprobe.errors import CellError

    try:
        return select(lrs, [r["val_loss"] for r in results])
    except ValueError as exc:
        raise CellError(str(exc)) from None


def _constant_loss(prob: Problem) -> float:
    """Cross-entropy of the best constant guess on the validation batch: the entropy of its class marginal."""
    import torch

    from fcnprobe.utils import IGNORE_INDEX

    t = prob.val.targets[prob.val.targets != IGNORE_INDEX].long()  # valid labels, flattened
    p = torch.bincount(t).double() / t.numel()
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def _metrics(cell: Cell, st: LrGridSettings, lrs: list[float], results: list[dict[str, Any]], best: int,
             side: str | None, how: str, prob: Problem) -> dict[str, Any]:
    from fcnprobe.convergence import StopRule
    from fcnprobe.models import MODELS

    r = results[best]
    const = _constant_loss(prob) if prob.classify else None
    learned = None if const is None or r["val_loss"] is None else r["val_loss"] < const * (1 - StopRule().rel_tol)
    return {"const_val_loss": const, "learned": learned, "lrs": lrs, "val_loss_by_lr": [x["val_loss"] for x in results],
            "val_acc_by_lr": [x["val_acc"] for x in results] if prob.classify else None,
            "train_loss_by_lr": [x["train_loss"] if math.isfinite(x["train_loss"]) else None for x in results],
            "still_falling_by_lr": [x["still_falling"] for x in results],
            "stop_reason_by_lr": [x["stop_reason"] for x in results],
            "lr": lrs[best], "lr_source": "lrgrid: lowest validation loss on this cell's grid",
            "best_val_loss": r["val_loss"], "best_val_acc_frac": r["val_acc"],
            "edge_extended": side or "none", "best_at_edge": edge_side(lrs, lrs[best]) is not None,
            "family": MODELS.meta(cell.model).get("family", cell.model) if cell.model in MODELS else cell.model,
            "group_strategy": how, "train_time_s": sum(x["time_s"] for x in results),
            "steps_count": st.steps, "batch_size_count": st.batch_size, "val_samples_count": st.val_samples,
            "params_count": r["params"]}
