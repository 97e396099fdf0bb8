"""The shape probe's trained designs: box adapters on ``locate`` and structured output on ``multi_output``.

Every design of a task trains under the same budget (``fcnprobe.train``, the rate
``lr.learning_rate`` gives, recorded with its source) on the same data stream, and
is scored on the same held-out set; a ``*_const`` metric is the score of a
model-blind constant, so "learned nothing" is visible. Post-processing time = the head's forward after the trunk, median
of ``torch.utils.benchmark`` ``blocked_autorange`` (``fcnprobe.measure.timing``)
on 64 test images, per image. Direct regression is the ``linear`` head (no output
activation) trained on standardised targets: ``adapters.set_target_stats`` with the
training targets' mean/std, and the loss on ``adapters.standardised_error``. The
probe itself (cells, declarations, the shape contract) is ``fcnprobe.probes.shape``;
this module only runs its trained cells. Claim 4's trunk x head grid is the
``difficulty`` probe (``probes/difficulty.py``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fcnprobe.probes.base import Cell, CellContext
from fcnprobe.utils import check_finite, param_count

if TYPE_CHECKING:
    import torch
    import torch.nn as nn


def shared_seed(cell: Cell, **keys: Any) -> int:
    """A seed shared by every design of a task (same data, same test set), varying with --seeds."""
    return Cell.make("shape", "*", cell.task, seed=cell.seed, **keys).torch_seed


def head_timings(net: "nn.Module", x: "torch.Tensor", min_s: float) -> dict[str, float]:
    """Post-processing = everything after the trunk (the head or adapter); the trunk for scale."""
    import torch

    from fcnprobe.measure.timing import time_ms_per_image

    net.eval()
    size = tuple(x.shape[-2:])
    with torch.inference_mode():
        feats = net.trunk(x)  # (B, F, h, w)
    return {"postproc_ms_per_image": time_ms_per_image(lambda: net.head(feats, size), len(x), min_s),
            "trunk_ms_per_image": time_ms_per_image(lambda: net.trunk(x), len(x), min_s)}


def _subset(pos: "torch.Tensor", count: int, seed: int) -> "torch.Tensor":
    """At most ``count`` rows of ``pos``, chosen by a seeded permutation (all when count >= len)."""
    import torch

    if count >= len(pos):
        return pos
    return pos[torch.randperm(len(pos), generator=torch.Generator().manual_seed(seed))[:count]]


def _box_scores(net: "nn.Module", batch: Any, size: int, prefix: str = "", suffix: str = "") -> dict[str, float]:
    from fcnprobe.analysis.shape import box_iou, centre_metrics
    from fcnprobe.train import predict

    pred = check_finite(predict(net, batch.inputs), "eval_forward").cpu().numpy()  # (N, 4)
    true = batch.targets.cpu().numpy()
    scores = {"iou_mean": float(box_iou(pred, true).mean()),
              **centre_metrics(pred, batch.meta["center"].cpu().numpy(), size)}
    return {f"{prefix}{k}{suffix}": v for k, v in scores.items()}


def run_locate(cell: Cell, ctx: CellContext) -> dict[str, Any]:
    """Train one (model, adapter) on a split's train positions; score every (or eval_count) test position."""
    import torch.nn.functional as F

    from fcnprobe.models import ADAPTERS, create_model
    from fcnprobe.models.adapters import HeatmapView, gradient_reaches_trunk, standardised_error
    from fcnprobe.models.layers import ConstantBox
    from fcnprobe.tasks import create_task
    from fcnprobe.lr import learning_rate
    from fcnprobe.train import TrainBudget, train

    s, adapter, dev = ctx.settings.locate, cell.p["adapter"], ctx.device
    task = create_task("locate", split=cell.p["split"])
    head = "box@linear" if adapter == "direct" else f"box@{adapter}"
    net = create_model(cell.model, head=head, in_channels=task.in_channels, image_size=task.image_size,
                       width=s.width, depth=s.depth)
    on_mask = adapter != "direct" and ADAPTERS.meta(adapter).get("trains_on") == "mask"
    if on_mask:  # the seed's route: dense supervision, then post-processing
        model, loss = HeatmapView(net), lambda y, b: F.binary_cross_entropy_with_logits(y, b.meta["mask"])
    else:
        std = standardise(net, task.render(task.positions("train")).targets, ["box"])["box"].to(dev)
        model, loss = net, lambda y, b: standardised_error(y, b.targets, std).abs().mean()
    budget = TrainBudget(s.steps, s.batch_size, s.log_every)
    lr, lr_source = learning_rate(cell.model, "locate", ctx.preset)
    res = train(model, lambda n, g: task.sample(n, g, "train"), loss, budget, lr,
                dev, shared_seed(cell, split=cell.p["split"]))
    seed = shared_seed(cell, split=cell.p["split"], part="eval")
    test = task.render(_subset(task.positions("test"), s.eval_count, seed).to(dev))
    seen = task.render(_subset(task.positions("train"), s.eval_count, seed).to(dev))
    const = ConstantBox(seen.targets.mean(0))  # model-blind baseline: the mean training box
    return {**_box_scores(net, test, task.image_size), **_box_scores(net, seen, task.image_size, "train_"),
            **_box_scores(const, test, task.image_size, suffix="_const"),
            **head_timings(net, test.inputs[:64], s.timing_min_s),
            "differentiable": gradient_reaches_trunk(net, test.inputs[:4]),
            "trains_on": "mask" if on_mask else "box", "test_count": len(test.inputs),
            "params_count": param_count(net), "head_params_count": param_count(net.head),
            "train_time_s": res.train_time_s, "final_loss": res.final_loss, "lr": lr, "lr_source": lr_source,
            "loss_curve": res.losses, "loss_steps": res.loss_steps}


MULTI_HEADS = {  # design -> output -> head string; every vector is direct regression (@linear), standardised
    "fcn_adapters": {"findings": "vector:4@linear", "params": "vector:2@linear", "box": "box@softargmax"},
    "cnn_fc_heads": {"findings": "vector:4@linear", "params": "vector:2@linear", "box": "box@linear"},
    "attention_heads": {"findings": "vector:4@linear", "params": "vector:2@linear", "box": "box@linear"},
}
STATS_SAMPLES = 2048  # training samples behind the target mean/std


def standardise(net: "nn.Module", targets: "torch.Tensor", outputs: list[str]) -> dict[str, "torch.Tensor"]:
    """Set each named output's ``linear`` head to the targets' mean/std (findings stay logits: 0, 1);
    returns output -> std (the loss's scale; ones for findings)."""
    import torch

    from fcnprobe.models.adapters import set_target_stats
    from fcnprobe.tasks.multi_output import LAYOUT

    cols = {"box": slice(0, 4)} if outputs == ["box"] else LAYOUT
    out = {}
    for k in outputs:
        y = targets[:, cols[k]]
        mean, std = (torch.zeros(y.shape[1]), torch.ones(y.shape[1])) if k == "findings" else (y.mean(0), y.std(0))
        heads = net.heads[k] if hasattr(net, "heads") else net
        set_target_stats(heads, mean, std)
        out[k] = std
    return out


def multi_loss(std: dict[str, "torch.Tensor"]) -> Any:
    """BCE on findings + MSE on the standardised (count, size) + L1 on the standardised box, equal weights."""
    import torch.nn.functional as F

    from fcnprobe.models.adapters import standardised_error
    from fcnprobe.tasks.multi_output import LAYOUT

    f, p, b = (LAYOUT[k] for k in ("findings", "params", "box"))

    def loss(y: "torch.Tensor", batch: Any) -> "torch.Tensor":
        t = batch.targets
        return (F.binary_cross_entropy_with_logits(y[:, f], t[:, f])
                + standardised_error(y[:, p], t[:, p], std["params"].to(y.device)).pow(2).mean()
                + standardised_error(y[:, b], t[:, b], std["box"].to(y.device)).abs().mean())
    return loss


def extra_modules(net: "nn.Module") -> list[str]:
    """What each output needed on top of the shared trunk, in words, with its parameter count."""
    from fcnprobe.models import ADAPTERS

    out = []
    for name, spec in net.specs.items():
        _, _, adapter = spec.partition("@")
        what = ADAPTERS.meta(adapter)["summary"] if adapter else f"native {type(net.heads[name]).__name__}"
        out.append(f"{name} ({spec}): {what}; {param_count(net.heads[name])} params")
    return out


def run_multi(cell: Cell, ctx: CellContext) -> dict[str, Any]:
    """Train one structured-output design; per-output errors on a shared held-out sample."""
    import torch

    from fcnprobe.analysis.shape import structured_scores
    from fcnprobe.models.adapters import build_multi_head
    from fcnprobe.tasks import create_task
    from fcnprobe.tasks.multi_output import LAYOUT
    from fcnprobe.lr import learning_rate
    from fcnprobe.train import TrainBudget, predict, train

    s, dev, design = ctx.settings.multi, ctx.device, cell.p["design"]
    task = create_task("multi_output", image_size=ctx.settings.multi_image_size)
    net = build_multi_head(cell.model, MULTI_HEADS[design], in_channels=task.in_channels,
                           image_size=task.image_size, width=s.width, depth=s.depth)
    stats = task.sample(STATS_SAMPLES, torch.Generator().manual_seed(shared_seed(cell, part="stats"))).targets
    std = {k: v.to(dev) for k, v in standardise(net, stats, list(MULTI_HEADS[design])).items()}
    lr, lr_source = learning_rate(cell.model, "multi_output", ctx.preset)
    res = train(net, task.sample, multi_loss(std), TrainBudget(s.steps, s.batch_size, s.log_every),
                lr, dev, shared_seed(cell))
    test = task.sample(s.eval_count, torch.Generator(dev).manual_seed(shared_seed(cell, part="eval")))
    y = check_finite(predict(net, test.inputs), "eval_forward").cpu().numpy()  # (N, 10)
    scores = structured_scores(y, test.targets.cpu().numpy(), test.meta["count"].cpu().numpy(),
                               test.meta["mean_side"].cpu().numpy(), LAYOUT, task.max_count, task.max_side)
    return {**scores, "extra_modules": extra_modules(net), "extra_params_count": param_count(net.heads),
            "params_count": param_count(net), "train_time_s": res.train_time_s, "final_loss": res.final_loss,
            "lr": lr, "lr_source": lr_source, "loss_curve": res.losses, "loss_steps": res.loss_steps, "test_count": len(y)}
