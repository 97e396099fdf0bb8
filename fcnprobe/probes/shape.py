"""The shape probe: the seed's claim 2 ("the output dimension of an FCN is tied to
input dimensions") as a measured table, and what the add-ons cost and achieve.

Three kinds of cell (the ``task`` field says which):

* ``contract`` -- one model x head x input size: the output shape or the error,
  whether it follows the input, whether it is the shape the head asks for. A
  forward that fails is the finding, so it is an ``ok`` record with
  ``forward_ok=False`` (not a sweep error). The seed's three models run with the
  seed's heads, and their 256x256 shapes are compared with the shapes the seed prints.
  Each case is first run on the 'meta' device (shapes and FLOPs, no arithmetic;
  FLOPs from torch's FlopCounterMode, one multiply-add = 2 FLOPs, convs and
  matmuls only); a case over ``max_exec_gflop`` is not run for real (``executed``
  False), except the seed's models, whose printed shapes must come from a real
  forward. ``control_wrong_rank`` is an unregistered, deliberately broken model
  (rank-3 output) that shows how a wrong rank is recorded.
* ``locate`` -- a box adapter trained on CoordConv's Not-so-Clevr task (Liu et al.,
  NeurIPS 2018) and scored on the held-out positions of one split.
* ``multi_output`` -- the seed's structured output (findings, two numbers, a box)
  from an FCN with adapters, a multi-head cnn_fc, and attention.

Every design of a task trains under the same budget (``fcnprobe.train``, one LR
per family) on the same data stream, and is scored on the same held-out set; a
``*_const`` metric is the score of a model-blind constant, so "learned nothing"
is visible. Post-processing time = the head's forward after the trunk, median of
``torch.utils.benchmark`` ``blocked_autorange`` on 64 test images, per image.
Numpy metrics live in ``fcnprobe/analysis/shape.py``.
"""
from __future__ import annotations

import dataclasses
import fnmatch
from typing import Any, Callable

import torch
import torch.nn as nn

from fcnprobe.analysis.shape import SEED_PRINTED
from fcnprobe.config import RunConfig
from fcnprobe.probes.base import Cell, CellContext, CellOutput, Probe, register_probe

SEED_HEADS = {"seed_simple_fcn": "dense:10", "seed_attempted_vector": "vector:5", "seed_bounding_box": "box"}
# The shapes the seed text prints for Examples 1-3 at 1x3x256x256: the claim under test, quoted.
SEED_SIZE = 256  # the seed's examples all use 256x256 inputs
CONTRACT_HEADS = ("dense:4", "vector:5", "box")  # every non-seed model; vector/box via gap on FCNs
EXTRA_ADAPTER_MODEL = "fcn"  # the model that is also run with every registered box adapter
LOCATE_DESIGNS = (("fcn", "gap"), ("fcn", "gmp"), ("fcn", "softargmax"), ("fcn", "heatmap_decode"),
                  ("cnn_fc", "direct"), ("attention", "direct"), ("coordconv", "gap"))
MULTI_DESIGNS = ("fcn_adapters", "cnn_fc_heads", "attention_heads")
TASKS = ("contract", "locate", "multi_output")


class WrongRank(nn.Module):
    """A deliberately broken control: returns (B, C, H), rank 3, for any head."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).mean(-1)  # (B, C, H)


CONTROLS: dict[str, Callable[[Any], nn.Module]] = {"control_wrong_rank": lambda spec: WrongRank(spec.channels)}


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Budget of one training cell; every design of a task gets the same one."""

    steps: int  # optimiser steps
    batch_size: int  # samples per step
    width: int  # trunk channels for every design (parameter parity, not per-design tuning)
    depth: int  # conv layers; fcn TRF = 1 + 2*depth px must cover the 9 px square
    eval_count: int  # held-out samples scored (locate: at most all test positions)
    log_every: int = 10  # steps per loss-curve point
    timing_min_s: float = 0.2  # torch.utils.benchmark min_run_time per timed module


@dataclasses.dataclass(frozen=True)
class ShapeSettings:
    """Per-preset settings of the shape probe."""

    sizes: tuple[tuple[int, int], ...]  # contract inputs (H, W); 1x1 is the degenerate input
    build_size: int  # image_size contract models are built for (cnn_fc's only working size)
    max_exec_gflop: float | None  # above this a contract case is shape-checked on 'meta' only (None: run all)
    locate: TrainSettings  # per locate cell
    multi: TrainSettings  # per multi_output cell
    multi_image_size: int  # canvas side of the multi_output task
    locate_designs: tuple[tuple[str, str], ...] = LOCATE_DESIGNS  # (model, adapter or 'direct')


_ALL_SIZES = ((32, 32), (48, 48), (64, 64), (100, 100), (256, 256), (48, 80), (1, 1))


def contract_heads(model: str) -> list[str]:
    """Heads a model is checked with: the seed's own, or dense/vector/box (+ fcn with every adapter)."""
    from fcnprobe.models import ADAPTERS

    if model in SEED_HEADS:
        return [SEED_HEADS[model]]
    if model in CONTROLS:
        return ["box"]
    extra = [f"box@{a}" for a in ADAPTERS.names() if a != "gap"] if model == EXTRA_ADAPTER_MODEL else []
    return [*CONTRACT_HEADS, *extra]


@register_probe("shape", order=30)
class ShapeProbe(Probe):
    """Shape contract, box adapters on locate, and structured output on multi_output."""

    settings_by_preset = {
        "smoke": ShapeSettings(sizes=((32, 32), (48, 80)), build_size=32, max_exec_gflop=1.0,
                               locate=TrainSettings(2, 4, 4, 2, 8, 1, 0.002),
                               multi=TrainSettings(2, 4, 4, 2, 8, 1, 0.002), multi_image_size=32,
                               locate_designs=(("fcn", "softargmax"), ("fcn", "heatmap_decode"),
                                               ("cnn_fc", "direct"))),
        "quick": ShapeSettings(sizes=_ALL_SIZES, build_size=32, max_exec_gflop=1.0,
                               locate=TrainSettings(120, 16, 8, 4, 256, 10, 0.1),
                               multi=TrainSettings(150, 32, 16, 4, 512, 10, 0.1), multi_image_size=32),
        "full": ShapeSettings(sizes=_ALL_SIZES, build_size=32, max_exec_gflop=None,
                              locate=TrainSettings(3000, 32, 32, 6, 784, 25, 0.5),
                              multi=TrainSettings(3000, 32, 32, 6, 2048, 25, 0.5), multi_image_size=32),
    }

    def cells(self, cfg: RunConfig, settings: ShapeSettings) -> list[Cell]:
        from fcnprobe.models import list_models

        tasks = self.task_names(cfg, list(TASKS))
        models = self.model_names(cfg, list_models())
        out: list[Cell] = []
        for seed in cfg.seeds:
            if "contract" in tasks:
                out += self._contract_cells(cfg, settings, models, seed)
            if "locate" in tasks:
                out += [Cell.make(self.name, m, "locate", seed=seed, adapter=a, split=sp)
                        for m, a in settings.locate_designs if m in models for sp in ("uniform", "quadrant")]
            if "multi_output" in tasks:
                out += [Cell.make(self.name, multi_model(d), "multi_output", seed=seed, design=d)
                        for d in MULTI_DESIGNS if multi_model(d) in models]
        return out

    def _contract_cells(self, cfg: RunConfig, s: ShapeSettings, models: list[str], seed: int) -> list[Cell]:
        controls = [c for c in CONTROLS if not cfg.models or any(fnmatch.fnmatchcase(c, p) for p in cfg.models)]
        cells = []
        for m in [*models, *controls]:
            sizes = list(s.sizes) + ([(SEED_SIZE, SEED_SIZE)] if m in SEED_HEADS else [])
            cells += [Cell.make(self.name, m, "contract", seed=seed, head=h, height=hh, width=ww)
                      for h in contract_heads(m) for hh, ww in dict.fromkeys(sizes)]
        return cells

    def run_cell(self, cell: Cell, ctx: CellContext) -> CellOutput:
        if cell.task == "contract":
            return CellOutput(metrics=run_contract(cell, ctx))
        if cell.task == "locate":
            return CellOutput(metrics=run_locate(cell, ctx))
        if cell.task == "multi_output":
            return CellOutput(metrics=run_multi(cell, ctx))
        raise ValueError(f"shape probe has no task '{cell.task}'; its tasks: {', '.join(TASKS)}")


def multi_model(design: str) -> str:
    """The registered model family a multi_output design is built from."""
    return design.rsplit("_", 1)[0]


def run_contract(cell: Cell, ctx: CellContext) -> dict[str, Any]:
    """Build the cell's model and check one forward at (height, width); never raises on a bad model."""
    from fcnprobe.models import create_model, parse_head

    p, s = cell.p, ctx.settings
    if cell.model in CONTROLS:
        build = lambda: CONTROLS[cell.model](parse_head(p["head"]))  # noqa: E731
    else:
        build = lambda: create_model(cell.model, head=p["head"], image_size=s.build_size)  # noqa: E731
    out = check_contract(build, p["head"], p["height"], p["width"], device=ctx.device,
                         max_exec_gflop=None if cell.model in SEED_HEADS else s.max_exec_gflop)
    out["build_size"] = s.build_size
    if cell.model in SEED_PRINTED:
        claim = SEED_PRINTED[cell.model] if (p["height"], p["width"]) == (SEED_SIZE, SEED_SIZE) else None
        out["seed_printed_shape"] = claim
        out["matches_seed_print"] = None if claim is None else out["out_shape"] == claim
    return out


def _forward(build: Callable[[], nn.Module], shape: tuple[int, ...], device: str) -> dict[str, Any]:
    """Build and run once on ``device``; on 'meta' only shapes are computed, and FLOPs are counted."""
    from torch.utils.flop_counter import FlopCounterMode

    res: dict[str, Any] = {"shape": None, "gflop": None, "exc": None, "stage": "build"}
    try:
        with torch.device(device):
            model = build().eval()
            x = torch.randn(shape)  # (1, C, H, W); storage-free on meta
        res["stage"] = "forward"
        counter = FlopCounterMode(display=False)
        with torch.inference_mode(), counter:
            y = model(x)
        res["stage"], res["gflop"] = "output", counter.get_total_flops() / 1e9
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"forward returned {type(y).__name__}, not a tensor")
        res["shape"] = list(y.shape)
    except Exception as exc:  # the failure is the finding (e.g. cnn_fc's flatten at another size)
        res["exc"] = exc
    return res


def check_contract(build: Callable[[], nn.Module], head: str, height: int, width: int, in_channels: int = 3,
                   device: str = "cpu", max_exec_gflop: float | None = None) -> dict[str, Any]:
    """Forward one (1, C, H, W) input; a build or forward error is returned as data.

    Every case first runs on the 'meta' device (shapes and FLOPs, no arithmetic).
    It then runs for real on ``device`` unless it would cost more than
    ``max_exec_gflop`` (None: always); a case that fails on meta always runs for
    real, so a recorded error is a real one. ``executed`` says which happened.

    >>> check_contract(lambda: create_model("cnn_fc", head="box"), "box", 48, 48)["error_type"]
    'ValueError'
    """
    from fcnprobe.models import parse_head

    target = list(parse_head(head).output_shape(1, height, width))
    meta = _forward(build, (1, in_channels, height, width), "meta")
    run = meta["exc"] is not None or max_exec_gflop is None or meta["gflop"] <= max_exec_gflop
    real = _forward(build, (1, in_channels, height, width), device) if run else None
    res = real or meta
    rec: dict[str, Any] = {"target_shape": target, "executed": run, "forward_gflop": meta["gflop"],
                           "meta_agrees": None if real is None else (real["shape"] == meta["shape"] and
                                                                     type(real["exc"]) is type(meta["exc"]))}
    if res["exc"] is not None:
        exc = res["exc"]
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return {**rec, "forward_ok": False, "out_shape": None, "out_rank": None, "follows_input": None,
                "matches_target": False, "shape_note": None, "error_type": type(exc).__name__,
                "error_message": msg[:500], "error_stage": res["stage"]}
    shape = res["shape"]
    return {**rec, "forward_ok": True, "out_shape": shape, "out_rank": len(shape),
            "follows_input": len(shape) == 4 and shape[-2:] == [height, width], "matches_target": shape == target,
            "shape_note": shape_note(shape, target), "error_type": None, "error_message": None, "error_stage": None}


def shape_note(shape: list[int], target: list[int]) -> str | None:
    """Why an output is not the target shape, in words; None when it is."""
    if shape == target:
        return None
    if len(shape) != len(target):
        kind = "a spatial map" if len(shape) == 4 else f"a rank-{len(shape)} tensor"
        return f"rank {len(shape)}, expected rank {len(target)}: got {kind} {shape} where {target} was asked for"
    return f"got {shape}, expected {target}"


# -- trained designs: locate and multi_output --------------------------------------------


def shared_seed(cell: Cell, **keys: Any) -> int:
    """A seed shared by every design of a task (same data, same test set), varying with --seeds."""
    return Cell.make("shape", "*", cell.task, seed=cell.seed, **keys).torch_seed


def time_ms_per_image(fn: Callable[[], Any], n: int, min_s: float) -> float:
    """Median of torch.utils.benchmark's blocked_autorange (CUDA-synchronised), per image, in ms."""
    from torch.utils.benchmark import Timer

    def run() -> Any:
        with torch.inference_mode():
            return fn()

    t = Timer("run()", globals={"run": run}, num_threads=torch.get_num_threads())
    return t.blocked_autorange(min_run_time=min_s).median / n * 1e3


def head_timings(net: nn.Module, x: torch.Tensor, min_s: float) -> dict[str, float]:
    """Post-processing = everything after the trunk (the head or adapter); the trunk for scale."""
    net.eval()
    size = tuple(x.shape[-2:])
    with torch.inference_mode():
        feats = net.trunk(x)  # (B, F, h, w)
    return {"postproc_ms_per_image": time_ms_per_image(lambda: net.head(feats, size), len(x), min_s),
            "trunk_ms_per_image": time_ms_per_image(lambda: net.trunk(x), len(x), min_s)}


def _subset(pos: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """At most ``count`` rows of ``pos``, chosen by a seeded permutation (all when count >= len)."""
    if count >= len(pos):
        return pos
    return pos[torch.randperm(len(pos), generator=torch.Generator().manual_seed(seed))[:count]]


def _box_scores(net: nn.Module, batch: Any, size: int, prefix: str = "", suffix: str = "") -> dict[str, float]:
    from fcnprobe.analysis.shape import box_iou, centre_metrics
    from fcnprobe.train import predict

    pred = predict(net, batch.inputs).cpu().numpy()  # (N, 4)
    true = batch.targets.cpu().numpy()
    scores = {"iou_mean": float(box_iou(pred, true).mean()),
              **centre_metrics(pred, batch.meta["center"].cpu().numpy(), size)}
    return {f"{prefix}{k}{suffix}": v for k, v in scores.items()}


def run_locate(cell: Cell, ctx: CellContext) -> dict[str, Any]:
    """Train one (model, adapter) on a split's train positions; score every (or eval_count) test position."""
    import torch.nn.functional as F

    from fcnprobe.models import ADAPTERS, create_model
    from fcnprobe.models.adapters import HeatmapView, gradient_reaches_trunk
    from fcnprobe.tasks import create_task
    from fcnprobe.train import TrainBudget, family_lr, train

    s, adapter, dev = ctx.settings.locate, cell.p["adapter"], ctx.device
    task = create_task("locate", split=cell.p["split"])
    head = "box" if adapter == "direct" else f"box@{adapter}"
    net = create_model(cell.model, head=head, in_channels=task.in_channels, image_size=task.image_size,
                       width=s.width, depth=s.depth)
    on_mask = adapter != "direct" and ADAPTERS.meta(adapter).get("trains_on") == "mask"
    if on_mask:  # the seed's route: dense supervision, then post-processing
        model, loss = HeatmapView(net), lambda y, b: F.binary_cross_entropy_with_logits(y, b.meta["mask"])
    else:
        model, loss = net, lambda y, b: F.l1_loss(y, b.targets)
    budget = TrainBudget(s.steps, s.batch_size, s.log_every)
    res = train(model, lambda n, g: task.sample(n, g, "train"), loss, budget, family_lr(cell.model),
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
            "params_count": _count(net), "head_params_count": _count(net.head),
            "train_time_s": res.train_time_s, "final_loss": res.final_loss,
            "loss_curve": res.losses, "loss_steps": res.loss_steps}


class ConstantBox(nn.Module):
    """Predicts the same box for every input."""

    def __init__(self, box: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("box", box)  # (4,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.box.expand(len(x), 4)  # (B, 4)


def _count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


MULTI_HEADS = {  # design -> output -> head string; the FCN needs an adapter for each non-dense output
    "fcn_adapters": {"findings": "vector:4@gap", "params": "vector:2@gap", "box": "box@softargmax"},
    "cnn_fc_heads": {"findings": "vector:4", "params": "vector:2", "box": "box"},
    "attention_heads": {"findings": "vector:4", "params": "vector:2", "box": "box"},
}


def multi_loss(y: torch.Tensor, batch: Any) -> torch.Tensor:
    """BCE on findings + MSE on the scaled (count, size) + L1 on the box, unweighted."""
    import torch.nn.functional as F

    from fcnprobe.tasks.multi_output import LAYOUT

    f, p, b = (LAYOUT[k] for k in ("findings", "params", "box"))
    return (F.binary_cross_entropy_with_logits(y[:, f], batch.targets[:, f])
            + F.mse_loss(y[:, p], batch.targets[:, p]) + F.l1_loss(y[:, b], batch.targets[:, b]))


def extra_modules(net: nn.Module) -> list[str]:
    """What each output needed on top of the shared trunk, in words, with its parameter count."""
    from fcnprobe.models import ADAPTERS

    out = []
    for name, spec in net.specs.items():
        _, _, adapter = spec.partition("@")
        what = ADAPTERS.meta(adapter)["summary"] if adapter else f"native {type(net.heads[name]).__name__}"
        out.append(f"{name} ({spec}): {what}; {_count(net.heads[name])} params")
    return out


def run_multi(cell: Cell, ctx: CellContext) -> dict[str, Any]:
    """Train one structured-output design; per-output errors on a shared held-out sample."""
    from fcnprobe.analysis.shape import structured_scores
    from fcnprobe.models.adapters import build_multi_head
    from fcnprobe.tasks import create_task
    from fcnprobe.tasks.multi_output import LAYOUT
    from fcnprobe.train import TrainBudget, family_lr, predict, train

    s, dev, design = ctx.settings.multi, ctx.device, cell.p["design"]
    task = create_task("multi_output", image_size=ctx.settings.multi_image_size)
    net = build_multi_head(cell.model, MULTI_HEADS[design], in_channels=task.in_channels,
                           image_size=task.image_size, width=s.width, depth=s.depth)
    res = train(net, task.sample, multi_loss, TrainBudget(s.steps, s.batch_size, s.log_every),
                family_lr(cell.model), dev, shared_seed(cell))
    test = task.sample(s.eval_count, torch.Generator(dev).manual_seed(shared_seed(cell, part="eval")))
    y = predict(net, test.inputs).cpu().numpy()  # (N, 10)
    scores = structured_scores(y, test.targets.cpu().numpy(), test.meta["count"].cpu().numpy(),
                               test.meta["mean_side"].cpu().numpy(), LAYOUT, task.max_count, task.max_side)
    return {**scores, "extra_modules": extra_modules(net), "extra_params_count": _count(net.heads),
            "params_count": _count(net), "train_time_s": res.train_time_s, "final_loss": res.final_loss,
            "loss_curve": res.losses, "loss_steps": res.loss_steps, "test_count": len(y)}
