"""The shape probe: the seed's claim 2 ("the output dimension of an FCN is tied to
input dimensions") as a measured table, and what the add-ons cost and achieve.

Three kinds of cell (the variant ``contract``, or the task):

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
  (rank-3 output) that shows how a wrong rank is recorded; it runs with zoo
  models, never in a user-only run. ``--image-size N`` (repeatable) replaces the
  preset's sizes with N x N; ``--output KEY`` picks the part of a dict / tuple /
  ``.logits`` output. A plain builder (a factory without ``head``) runs once per
  size with head ``none``: its own output shape, no target.
* ``locate`` -- a box adapter trained on CoordConv's Not-so-Clevr task (Liu et al.,
  NeurIPS 2018) and scored on the held-out positions of one split.
* ``multi_output`` -- the seed's structured output (findings, two numbers, a box)
  from an FCN with adapters, a multi-head cnn_fc, and attention.

The trained cells (same budget and data for every design, ``*_const`` baselines)
run in ``fcnprobe.probes.shape_train``. Numpy metrics live in
``fcnprobe/analysis/shape.py``. Torch is imported inside the functions that run
cells, so the declarations can be read without it.
"""
from __future__ import annotations

import dataclasses
import fnmatch
from typing import TYPE_CHECKING, Any, Callable

from fcnprobe.analysis.shape import SEED_PRINTED
from fcnprobe.config import RunConfig
from fcnprobe.metrics import declare, metric, with_const
from fcnprobe.probes.base import Cell, CellContext, CellOutput, Probe, register_probe
from fcnprobe.utils import one_line

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

SEED_HEADS = {"seed_simple_fcn": "dense:10", "seed_attempted_vector": "vector:5", "seed_bounding_box": "box"}
# The shapes the seed text prints for Examples 1-3 at 1x3x256x256: the claim under test, quoted.
SEED_SIZE = 256  # the seed's examples all use 256x256 inputs
CONTRACT_HEADS = ("dense:4", "vector:5", "box")  # every non-seed model; vector/box via gap on FCNs
EXTRA_ADAPTER_MODEL = "fcn"  # the model that is also run with every registered box adapter
LOCATE_DESIGNS = (("fcn", "gap"), ("fcn", "gmp"), ("fcn", "softargmax"), ("fcn", "heatmap_decode"),
                  ("cnn_fc", "direct"), ("attention", "direct"), ("coordconv", "gap"))
MULTI_DESIGNS = ("fcn_adapters", "cnn_fc_heads", "attention_heads")
CONTRACT = "contract"  # the variant: no registered task, a forward at one size
PLAIN_HEAD = "none"  # the head param of a plain builder's cells: built without a head, no target shape
TASKS = (CONTRACT, "locate", "multi_output")


def _wrong_rank(spec: Any) -> "nn.Module":
    from fcnprobe.models.layers import WrongRank

    return WrongRank(spec.channels)


CONTROLS: dict[str, Callable[[Any], "nn.Module"]] = {"control_wrong_rank": _wrong_rank}

_CONTRACT = [metric("target_shape", "shape asked for", is_array=True, unit=""),
             metric("executed", "ran for real (not only on meta)"),
             metric("forward_gflop", "forward GFLOP (meta count)"), metric("meta_agrees", "meta and real agree"),
             metric("forward_ok", "forward ran"), metric("out_shape", "output shape", is_array=True, unit=""),
             metric("out_rank", "output rank", unit=""), metric("follows_input", "output follows the input size"),
             metric("matches_target", "output is the shape asked for", "higher"),
             metric("out_finite", "output values are finite (None: not run for real)"),
             metric("shape_note", "why not"), metric("error_type", "error type"),
             metric("error_message", "error"), metric("error_stage", "failed at"),
             metric("build_size", "side the model was built for", unit="px"),
             metric("seed_printed_shape", "shape the seed prints", is_array=True, unit=""),
             metric("matches_seed_print", "matches the seed's print")]
_TRAINED = [metric("params_count", "parameters"), metric("lr", "learning rate", unit=""),
            metric("lr_source", "learning-rate source"), metric("train_time_s", "training time", "lower"),
            metric("final_loss", "final training loss", "lower"), metric("loss_curve", "training loss", is_array=True),
            metric("loss_steps", "loss curve steps", is_array=True, unit="count"),
            metric("test_count", "held-out samples")]
_BOX = [metric("iou_mean", "box IoU", "higher"), metric("center_acc_frac", "centre hit rate", "higher"),
        metric("center_err_px", "centre error", "lower")]
_LOCATE = [*with_const(_BOX), *[metric(f"train_{m.name}", f"{m.label} on training positions", m.direction)
                                for m in _BOX],
           metric("postproc_ms_per_image", "post-processing time per image", "lower"),
           metric("trunk_ms_per_image", "trunk time per image", "lower"),
           metric("differentiable", "gradient reaches the trunk"), metric("trains_on", "trained on"),
           metric("head_params_count", "head parameters")]
_MULTI = [*with_const([metric("findings_f1", "findings F1", "higher"),
                       metric("findings_acc_frac", "findings accuracy", "higher"),
                       metric("findings_exact_frac", "all findings right", "higher"),
                       metric("count_mae", "count error (MAE)", "lower"), metric("count_acc_frac", "count accuracy",
                                                                                  "higher"),
                       metric("size_mae", "size error (MAE)", "lower"), metric("box_iou_mean", "box IoU", "higher")]),
          metric("extra_modules", "modules added per output", is_array=True),
          metric("extra_params_count", "parameters added for the outputs")]
SHAPE_METRICS = declare(_CONTRACT, _TRAINED, _LOCATE, _MULTI)


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


_SMOKE_TRAIN = TrainSettings(steps=2, batch_size=4, width=4, depth=2, eval_count=8, log_every=1, timing_min_s=0.002)
SMOKE = ShapeSettings(sizes=((32, 32), (48, 80)), build_size=32, max_exec_gflop=1.0, locate=_SMOKE_TRAIN,
                      multi=_SMOKE_TRAIN, multi_image_size=32,
                      locate_designs=(("fcn", "softargmax"), ("fcn", "heatmap_decode"), ("cnn_fc", "direct")))
EXEC_GFLOP = 20.0  # real forwards up to here (~0.15 s at 150 GFLOP/s on one core); above, shapes from 'meta'
QUICK = ShapeSettings(
    sizes=_ALL_SIZES, build_size=32, max_exec_gflop=EXEC_GFLOP, multi_image_size=32,
    locate=TrainSettings(steps=120, batch_size=16, width=16, depth=4, eval_count=256, log_every=10, timing_min_s=0.1),
    multi=TrainSettings(steps=150, batch_size=32, width=16, depth=4, eval_count=512, log_every=10, timing_min_s=0.1))
FULL = ShapeSettings(
    sizes=_ALL_SIZES, build_size=32, max_exec_gflop=None, multi_image_size=32,
    locate=TrainSettings(steps=3000, batch_size=32, width=32, depth=6, eval_count=784, log_every=25, timing_min_s=0.5),
    multi=TrainSettings(steps=3000, batch_size=32, width=32, depth=6, eval_count=2048, log_every=25,
                        timing_min_s=0.5))


def contract_heads(model: str) -> list[str]:
    """Heads a model is checked with: the seed's own, or dense/vector/box (+ fcn with every adapter)."""
    from fcnprobe.models import ADAPTERS

    if model in SEED_HEADS:
        return [SEED_HEADS[model]]
    if model in CONTROLS:
        return ["box"]
    if ":" in model:
        from fcnprobe.user import is_plain_builder

        if is_plain_builder(model):
            return [PLAIN_HEAD]
    extra = [f"box@{a}" for a in ADAPTERS.names() if a != "gap"] if model == EXTRA_ADAPTER_MODEL else []
    return [*CONTRACT_HEADS, *extra]


@register_probe("shape", order=30, help="output shape vs input shape, and what the add-ons cost and achieve")
class ShapeProbe(Probe):
    """Shape contract, box adapters on locate, and structured output on multi_output."""

    metrics = SHAPE_METRICS
    variants = (CONTRACT,)
    # 2: real forwards up to 20 GFLOP, tuple/dict outputs; linear heads on standardised targets,
    # lr.learning_rate, locate quick width 16
    version = 2

    settings_by_preset = {"smoke": SMOKE, "quick": QUICK, "standard": QUICK, "full": FULL}

    def cells(self, cfg: RunConfig, settings: ShapeSettings) -> list[Cell]:
        from fcnprobe.models import list_models

        tasks = self.task_names(cfg, list(TASKS[1:]))
        models = self.model_names(cfg, list_models())
        out: list[Cell] = []
        for seed in cfg.seeds:
            if self.wants_variant(cfg, CONTRACT):
                out += self._contract_cells(cfg, settings, models, seed)
            if "locate" in tasks:
                out += [Cell.make(self.name, m, "locate", seed=seed, adapter=a, split=sp)
                        for m, a in settings.locate_designs if m in models for sp in ("uniform", "quadrant")]
            if "multi_output" in tasks:
                out += [Cell.make(self.name, multi_model(d), "multi_output", seed=seed, design=d)
                        for d in MULTI_DESIGNS if multi_model(d) in models]
        return out

    def _contract_cells(self, cfg: RunConfig, s: ShapeSettings, models: list[str], seed: int) -> list[Cell]:
        user_only = bool(cfg.user_models) and not cfg.models
        controls = [c for c in CONTROLS if not user_only and
                    (not cfg.models or any(fnmatch.fnmatchcase(c, p) for p in cfg.models))]
        base = [(n, n) for n in cfg.image_sizes] or list(s.sizes)
        pick = {} if cfg.output is None else {"output": cfg.output}
        cells = []
        for m in [*models, *controls]:
            sizes = base + ([(SEED_SIZE, SEED_SIZE)] if m in SEED_HEADS and not cfg.image_sizes else [])
            cells += [self.variant_cell(m, CONTRACT, seed, head=h, height=hh, width=ww, **pick)
                      for h in contract_heads(m) for hh, ww in dict.fromkeys(sizes)]
        return cells

    def run_cell(self, cell: Cell, ctx: CellContext) -> CellOutput:
        if cell.p.get("variant") == CONTRACT:
            return CellOutput(metrics=run_contract(cell, ctx))
        from fcnprobe.probes.shape_train import run_locate, run_multi

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
    from fcnprobe.models import parse_head
    from fcnprobe.user import build_probe_model

    p, s = cell.p, ctx.settings
    if cell.model in CONTROLS:
        build = lambda: CONTROLS[cell.model](parse_head(p["head"]))  # noqa: E731
    else:
        build = lambda: build_probe_model(cell.model, p["head"], s.build_size)[0]  # noqa: E731
    out = check_contract(build, p["head"], p["height"], p["width"], device=ctx.device,
                         max_exec_gflop=None if cell.model in SEED_HEADS else s.max_exec_gflop,
                         output=p.get("output"), in_channels=_in_channels(cell.model))
    out["build_size"] = s.build_size
    if cell.model in SEED_PRINTED:
        claim = SEED_PRINTED[cell.model] if (p["height"], p["width"]) == (SEED_SIZE, SEED_SIZE) else None
        out["seed_printed_shape"] = claim
        out["matches_seed_print"] = None if claim is None else out["out_shape"] == claim
    return out


def _in_channels(name: str) -> int:
    """3 for the zoo; a user model's first conv decides (a plain builder need not take in_channels)."""
    if ":" not in name:
        return 3
    from fcnprobe.measure.trf_graph import model_in_channels
    from fcnprobe.user import build_probe_model

    try:
        return model_in_channels(build_probe_model(name, "dense:2")[0])
    except Exception:  # noqa: BLE001 -- the build error is recorded by the contract cell itself
        return 3


def _forward(build: Callable[[], "nn.Module"], shape: tuple[int, ...], device: str,
             output: str | None = None) -> dict[str, Any]:
    """Build and run once on ``device``; on 'meta' only shapes are computed, and FLOPs are counted."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fcnprobe.measure.outputs import select_output

    res: dict[str, Any] = {"shape": None, "gflop": None, "exc": None, "stage": "build", "finite": None}
    try:
        with torch.device(device):
            model = build().eval()
            x = torch.randn(shape)  # (1, C, H, W); storage-free on meta
        res["stage"] = "forward"
        counter = FlopCounterMode(display=False)
        with torch.inference_mode(), counter:
            y = model(x)
        res["stage"], res["gflop"] = "output", counter.get_total_flops() / 1e9
        y = select_output(y, output)  # a tensor, a dict / tuple / ModelOutput part; ValueError lists the keys
        res["shape"] = list(y.shape)
        res["finite"] = None if device == "meta" else bool(torch.isfinite(y).all())
    except Exception as exc:  # the failure is the finding (e.g. cnn_fc's flatten at another size)
        res["exc"] = exc
    return res


def check_contract(build: Callable[[], "nn.Module"], head: str, height: int, width: int, in_channels: int = 3,
                   device: str = "cpu", max_exec_gflop: float | None = None,
                   output: str | None = None) -> dict[str, Any]:
    """Forward one (1, C, H, W) input; a build or forward error is returned as data.

    Every case first runs on the 'meta' device (shapes and FLOPs, no arithmetic).
    It then runs for real on ``device`` unless it would cost more than
    ``max_exec_gflop`` (None: always); a case that fails on meta always runs for
    real, so a recorded error is a real one. ``executed`` says which happened.

    >>> check_contract(lambda: create_model("cnn_fc", head="box"), "box", 48, 48)["error_type"]
    'ValueError'
    """
    from fcnprobe.models import parse_head

    target = None if head == PLAIN_HEAD else list(parse_head(head).output_shape(1, height, width))
    meta = _forward(build, (1, in_channels, height, width), "meta", output)
    run = meta["exc"] is not None or max_exec_gflop is None or meta["gflop"] <= max_exec_gflop
    real = _forward(build, (1, in_channels, height, width), device, output) if run else None
    res = real or meta
    rec: dict[str, Any] = {"target_shape": target, "executed": run, "forward_gflop": meta["gflop"],
                           "meta_agrees": None if real is None else (real["shape"] == meta["shape"] and
                                                                     type(real["exc"]) is type(meta["exc"]))}
    if res["exc"] is not None:
        exc = res["exc"]
        return {**rec, "forward_ok": False, "out_shape": None, "out_rank": None, "follows_input": None,
                "matches_target": False, "shape_note": None, "error_type": type(exc).__name__,
                "error_message": one_line(exc).partition(": ")[2], "error_stage": res["stage"], "out_finite": None}
    shape = res["shape"]
    return {**rec, "forward_ok": True, "out_shape": shape, "out_rank": len(shape),
            "follows_input": len(shape) == 4 and shape[-2:] == [height, width],
            "matches_target": None if target is None else shape == target,
            "shape_note": shape_note(shape, target), "error_type": None, "error_message": None, "error_stage": None,
            "out_finite": res["finite"]}


def shape_note(shape: list[int], target: list[int]) -> str | None:
    """Why an output is not the target shape, in words; None when it is."""
    if target is None or shape == target:
        return None
    if len(shape) != len(target):
        kind = "a spatial map" if len(shape) == 4 else f"a rank-{len(shape)} tensor"
        return f"rank {len(shape)}, expected rank {len(target)}: got {kind} {shape} where {target} was asked for"
    return f"got {shape}, expected {target}"
