"""The difficulty probe's training cell: one (trunk, head, rate, deep supervision, seed) on
multi_output or locate, trained for the whole budget (no early stopping) with a held-out
score curve.

Loss, equal weights over the outputs (``LOSS_TERMS``; no learned uncertainty weights):
BCE on the findings logits, MSE on the standardised (count, size) error, L1 on the
standardised box error (``adapters.standardised_error``; ``linear`` heads also get the
training targets' mean/std through ``set_target_stats``), and for a ``heatmap_decode``
box a BCE on the box's pixel mask instead (that head cannot train on its output).
Deep supervision adds ``aux_weight`` x the mean loss of the auxiliary heads.

Every ``eval_every`` steps each output is scored on a fixed validation sample
(its own seed stream); the final scores come from a separate held-out test
sample, with a bootstrap lower bound of the gain over the constant guess
(``stats.bootstrap_interval`` over images) for the "beats the constant" gate.
A rate whose loss or output stops being finite is recorded (``diverged``), not raised.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from fcnprobe.analysis.difficulty import OUTPUTS, constant_prediction, headroom, signed, unit_scores
from fcnprobe.analysis.stats import beats_constant, bootstrap_interval
from fcnprobe.probes.base import Cell, CellContext
from fcnprobe.utils import param_count

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

LOSS_TERMS = "equal weights: findings BCE + count/size MSE (standardised) + box L1 (standardised) or mask BCE"
STATS_SAMPLES = 2048  # training samples behind the target mean/std


def head_specs(task: str, head: str) -> dict[str, str]:
    """Output -> head string: the design's head on the box; findings/params read a pooled vector."""
    if task == "locate":
        return {"box": f"box@{head}"}
    vec = "gap" if head == "gap" else "linear"
    return {"findings": f"vector:4@{vec}", "params": f"vector:2@{vec}", "box": f"box@{head}"}


def make_task(task: str, s: Any) -> Any:
    from fcnprobe.tasks import create_task

    if task == "locate":
        return create_task("locate", image_size=s.locate_image_size, split="uniform")
    return create_task("multi_output", image_size=s.multi_image_size)


def columns(task: str) -> dict[str, slice]:
    from fcnprobe.tasks.multi_output import LAYOUT

    return {"box": slice(0, 4)} if task == "locate" else dict(LAYOUT)


def box_mask(box: "torch.Tensor", size: tuple[int, int]) -> "torch.Tensor":
    """(B, 4) normalised boxes -> (B, 1, H, W) float mask of the pixels whose centre lies inside."""
    import torch

    h, w = size
    cx = (torch.arange(w, device=box.device, dtype=box.dtype) + 0.5) / w
    cy = (torch.arange(h, device=box.device, dtype=box.dtype) + 0.5) / h
    in_x = (cx >= box[:, 0:1]) & (cx <= box[:, 2:3])  # (B, W)
    in_y = (cy >= box[:, 1:2]) & (cy <= box[:, 3:4])  # (B, H)
    return (in_y[:, :, None] & in_x[:, None, :]).to(box.dtype)[:, None]


def output_loss(name: str, spec: str, y: "torch.Tensor", batch: Any, cols: slice, std: "torch.Tensor"
                ) -> "torch.Tensor":
    import torch.nn.functional as F

    from fcnprobe.models.adapters import standardised_error

    t = batch.targets[:, cols]
    if spec.endswith("@heatmap_decode"):
        return F.binary_cross_entropy_with_logits(y, box_mask(t, tuple(y.shape[-2:])))
    if name == "findings":
        return F.binary_cross_entropy_with_logits(y, t)
    err = standardised_error(y, t, std[cols])
    return err.pow(2).mean() if name == "params" else err.abs().mean()


def make_loss(task: str, specs: dict[str, str], std: "torch.Tensor", aux_weight: float):
    cols = columns(task)

    def total(outs: dict[str, "torch.Tensor"], batch: Any) -> "torch.Tensor":
        terms = [output_loss(k, specs[k], outs[k], batch, cols[k], std) for k in specs]
        return sum(terms) / len(terms)  # equal weights

    def loss(y: dict[str, Any], batch: Any) -> "torch.Tensor":
        main = total(y["main"], batch)
        if not y["aux"]:
            return main
        return main + aux_weight * sum(total(a, batch) for a in y["aux"]) / len(y["aux"])
    return loss


def build_net(cell: Cell, task: Any, s: Any) -> "nn.Module":
    from fcnprobe.models.adapters import build_multi_head
    from fcnprobe.models.deepsup import DeepSupervised

    net = build_multi_head(cell.model, head_specs(cell.task, cell.p["head"]), in_channels=task.in_channels,
                           image_size=task.image_size, width=s.width, depth=s.depth)
    return DeepSupervised(net) if cell.p["deepsup"] else net


def target_stats(task: Any, cell_task: str, seed: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Per-column mean and std of STATS_SAMPLES training targets (the constant guess is their mean)."""
    import torch

    y = sample(task, cell_task, STATS_SAMPLES, torch.Generator().manual_seed(seed)).targets
    return y.mean(0), y.std(0)


def sample(task: Any, cell_task: str, n: int, gen: "torch.Generator", part: str = "train") -> Any:
    return task.sample(n, gen, part) if cell_task == "locate" else task.sample(n, gen)


def set_stats(net: "nn.Module", task: str, mean: "torch.Tensor", std: "torch.Tensor") -> None:
    """Standardise every ``linear`` head on its own columns; findings stay logits (mean 0, std 1)."""
    import torch

    from fcnprobe.models.adapters import set_target_stats

    for k, cols in columns(task).items():
        if k == "findings":
            set_target_stats(net.heads[k], torch.zeros(4), torch.ones(4))
        else:
            set_target_stats(net.heads[k], mean[cols], std[cols])


def scores_of(net: "nn.Module", batch: Any, task: Any, cell_task: str) -> dict[str, np.ndarray]:
    """Per-image scores of every output (raises CellError on a non-finite output)."""
    from fcnprobe.train import predict

    pred = predict(net, batch.inputs).cpu().numpy()
    return unit_scores(cell_task, pred, batch.targets.cpu().numpy(), _meta(batch, task, cell_task),
                       columns(cell_task))


def _meta(batch: Any, task: Any, cell_task: str) -> dict[str, Any]:
    if cell_task == "locate":
        return {}
    return {"count": batch.meta["count"].cpu().numpy(), "mean_side": batch.meta["mean_side"].cpu().numpy(),
            "max_count": task.max_count, "max_side": task.max_side}


def const_scores(batch: Any, mean: np.ndarray, task: Any, cell_task: str) -> dict[str, np.ndarray]:
    true = batch.targets.cpu().numpy()
    pred = constant_prediction(cell_task, mean, len(true), columns(cell_task))
    return unit_scores(cell_task, pred, true, _meta(batch, task, cell_task), columns(cell_task))


def train_curve(model: "nn.Module", view: "nn.Module", loss: Any, task: Any, cell: Cell, s: Any, lr: float,
                val: Any, seed: int, dev: str) -> dict[str, Any]:
    """Train every step (no early stop), scoring the validation sample every ``eval_every`` steps."""
    from fcnprobe.errors import CellError
    from fcnprobe.train import Run, TrainBudget

    budget = TrainBudget(s.steps, s.batch_size, s.log_every)  # stop=NEVER: the whole curve is the measurement
    run = Run(view, lambda n, g: sample(task, cell.task, n, g), loss, budget, lr, dev, seed)
    curve: dict[str, list] = {o.name: [] for o in OUTPUTS[cell.task]}
    steps, eval_s, diverged, start = [], 0.0, None, time.perf_counter()
    try:
        while run.step < budget.steps:
            run.advance()
            if run.step % s.eval_every == 0 or run.step == budget.steps:
                t0 = time.perf_counter()
                for k, v in scores_of(model, val, task, cell.task).items():
                    curve[k].append(float(v.mean()))
                steps.append(run.step)
                view.train()
                eval_s += time.perf_counter() - t0
    except CellError as exc:
        diverged = str(exc)
    elapsed = time.perf_counter() - start
    res = run.res if diverged else run.finish(elapsed)
    return {"curve": curve, "eval_steps": steps, "eval_time_s": eval_s, "train_time_s": elapsed - eval_s,
            "diverged": diverged is not None, "diverged_at_step": run.step if diverged else None,
            "loss_curve": res.losses, "loss_steps": res.loss_steps,
            "final_loss": res.losses[-1] if res.losses else None, "still_falling": res.still_falling,
            "tail_improvement_frac": res.tail_improvement_frac, "stopped_at_step": run.step,
            "stop_reason": "diverged" if diverged else res.stop_reason}


def _rate(cell: Cell, s: Any, preset: str) -> tuple[float, str]:
    """The cell's rate and where it came from: a grid point, or ``lr.learning_rate`` when the preset has no grid."""
    from fcnprobe.lr import learning_rate

    default, source = learning_rate(cell.model, cell.task, preset)
    if cell.p["lr"] == "default":
        return default, source
    return float(cell.p["lr"]), f"difficulty grid {list(s.lrs)} (one grid for every design; {source}: {default:g})"


def final_scores(net: "nn.Module", test: Any, val: Any, mean: np.ndarray, task: Any, cell_task: str,
                 diverged: bool) -> dict[str, Any]:
    """Held-out score, constant scores and the beats-the-constant gate per output."""
    from fcnprobe.errors import CellError

    tconst, vconst = const_scores(test, mean, task, cell_task), const_scores(val, mean, task, cell_task)
    try:
        scores = None if diverged else scores_of(net, test, task, cell_task)
    except CellError:
        scores = None
    out: dict[str, Any] = {}
    for o in OUTPUTS[cell_task]:
        const = float(tconst[o.name].mean())
        out.update({f"{o.metric}_const": const, f"{o.metric}_val_const": float(vconst[o.name].mean())})
        if scores is None:
            out.update({o.metric: None, f"{o.metric}_gain_lo": None, f"{o.metric}_beats": False})
            continue
        lo = bootstrap_interval(signed(scores[o.name] - tconst[o.name], o.higher)).lo
        room = headroom(o, const)
        out.update({o.metric: float(scores[o.name].mean()), f"{o.metric}_gain_lo": lo,
                    f"{o.metric}_beats": bool(room > 0 and beats_constant(lo, room))})
    return out


def run_difficulty(cell: Cell, ctx: CellContext) -> dict[str, Any]:
    """Train one design at one rate and seed; the validation curve and held-out scores per output."""
    import torch

    from fcnprobe.models.deepsup import TrainingView, aux_params

    s, dev = ctx.settings, ctx.device
    task = make_task(cell.task, s)
    data_seed = Cell.make("difficulty", "*", cell.task, seed=cell.seed).torch_seed  # same data for every design
    mean, std = target_stats(task, cell.task, data_seed + 1)
    torch.manual_seed(Cell.make("difficulty", cell.model, cell.task, seed=cell.seed, head=cell.p["head"],
                                deepsup=cell.p["deepsup"]).torch_seed)  # one init per design and seed, every rate
    net = build_net(cell, task, s)
    set_stats(net, cell.task, mean, std)
    lr, source = _rate(cell, s, ctx.preset)
    held = "test" if cell.task == "locate" else "train"  # locate scores unseen positions
    val = sample(task, cell.task, s.val_count, torch.Generator().manual_seed(data_seed + 2), held)
    test = sample(task, cell.task, s.test_count, torch.Generator().manual_seed(data_seed + 3), held)
    specs = head_specs(cell.task, cell.p["head"])
    tr = train_curve(net, TrainingView(net), make_loss(cell.task, specs, std.to(dev), s.aux_weight), task, cell,
                     s, lr, _to(val, dev), data_seed, dev)
    scores = final_scores(net, _to(test, dev), val, mean.numpy(), task, cell.task, tr["diverged"])
    curve = tr.pop("curve")
    curves = {f"{o.metric}_curve": curve[o.name] for o in OUTPUTS[cell.task]}
    main = net.net if cell.p["deepsup"] else net
    return {**tr, **curves, **scores, "lr": lr, "lr_source": source, "loss_weights": "equal",
            "loss_terms": LOSS_TERMS, "head_specs": [f"{k}: {v}" for k, v in specs.items()],
            "params_count": param_count(main), "aux_params_count": aux_params(net),
            "aux_heads_count": len(getattr(net, "taps", ())), "test_count": len(test.inputs)}


def _to(batch: Any, dev: str) -> Any:
    """The batch on ``dev`` (validation and test samples are drawn on the CPU)."""
    import dataclasses

    return dataclasses.replace(batch, inputs=batch.inputs.to(dev), targets=batch.targets.to(dev))
