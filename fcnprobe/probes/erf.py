"""The ERF probe: batched gradient effective receptive fields and numerical theoretical ones.

* ``effective_receptive_field(model, inputs)``: the input gradient of the centre
  unit (its channels weighted by random signs, see ``gradient_maps``), averaged
  over inputs as mean |g| and mean g^2 (summed over input channels). In eval
  mode samples are independent, so one backward of the sum over the batch gives
  every per-sample gradient at once (RepLKNet's ``visualize_erf.py`` runs one
  image per backward; ``benchmarks/test_bench_erf.py`` measures the difference).
  RepLKNet instead backpropagates ``relu(y).sum()`` and keeps ``relu(g)``; our
  HCA numbers are comparable with their Table 10 in kind, not digit for digit.
* ``numeric_receptive_field(model, image_size)``: the support of the input
  gradient of a linearised copy (activations, BatchNorm, LayerNorm and dropout
  removed, weights made positive, float64). Positive weights cannot cancel, so
  the support is exactly the set of connected pixels, for skips, branches and
  attention too.
* ``theoretical_receptive_field`` is re-exported from ``fcnprobe.models``.

The registered probe ``erf`` measures every family at its default size (random
inits and trained weights) and fcn / dilated at depths 2..32. Metrics are
defined in ``fcnprobe.analysis.erf``. References: Luo et al., NeurIPS 2016;
Ding et al. (RepLKNet), CVPR 2022; Araujo et al., Distill 2019.

Example::

    >>> import torch, fcnprobe
    >>> m = fcnprobe.create_model("fcn")
    >>> r = fcnprobe.effective_receptive_field(m, torch.randn(16, 3, 32, 32))
    >>> r.metrics["trf_px"], r.metrics["trf_numeric_px"]
    (13, 13)
"""
from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from fcnprobe.analysis.erf import default_centre, downsample, map_metrics, support_box
from fcnprobe.models import ProbeNet, create_model, theoretical_receptive_field
from fcnprobe.probes.base import Cell, CellContext, CellOutput, Probe, register_probe

__all__ = ["ERFResult", "ERFSettings", "effective_receptive_field", "linearised_copy",
           "numeric_receptive_field", "theoretical_receptive_field", "unit_map"]

TRAIN_SEED_OFFSET = 7919  # brief training draws from another stream than the ERF inputs
_REMOVED = (nn.ReLU, nn.GELU, nn.LeakyReLU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.modules.batchnorm._BatchNorm,
            nn.LayerNorm, nn.modules.dropout._DropoutNd)  # per-position maps: support-neutral


def unit_map(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The (B, K, h, w) map whose centre unit we probe: the dense output, else the last spatial map."""
    if isinstance(model, ProbeNet) and not model.info.head.startswith("dense"):
        return model.features(x)
    out = model(x)
    if out.dim() == 4:
        return out
    if hasattr(model, "features"):
        return model.features(x)
    raise ValueError(f"{type(model).__name__} returns {tuple(out.shape)} and has no features(): no spatial unit")


def _centre_unit(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """The centre unit's channel vector for each sample, (B, K), and the unit map's (h, w)."""
    fmap = unit_map(model, x)  # (B, K, h, w)
    h, w = fmap.shape[-2:]
    return fmap[:, :, h // 2, w // 2], (h, w)


def rademacher(n: int, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, k) random signs, drawn on the CPU so every device gets the same ones."""
    gen = generator or torch.Generator().manual_seed(0)
    return torch.randint(0, 2, (n, k), generator=gen).mul(2).sub(1)


def gradient_maps(model: nn.Module, inputs: torch.Tensor, batch_size: int = 32,
                  generator: torch.Generator | None = None) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Mean over inputs of sum_c |g| and of sum_c g^2, each (H, W) float64, and the unit map's (h, w).

    Puts ``model`` in eval mode (BatchNorm must not mix the samples of a batch).
    g is the input gradient of ``sum_k s_k y_k``, the centre unit's K channels
    weighted by random signs s (one draw per input, from ``generator``). Then
    E[g^2] is exactly the squared Jacobian norm ``sum_k (dy_k/dx)^2``
    (Hutchinson), without the cross terms a plain channel sum keeps: those
    cancel exactly after a LayerNorm and follow the untrained softmax-invariant
    direction of a classifier's logits. With one channel, |g| is exact.
    """
    model.eval()
    dev = next(model.parameters()).device
    abs_sum = torch.zeros(inputs.shape[-2:], dtype=torch.float64, device=dev)
    sq_sum, signs, hw = torch.zeros_like(abs_sum), None, (0, 0)
    for i in range(0, len(inputs), batch_size):
        x = inputs[i:i + batch_size].to(dev).detach().requires_grad_(True)  # (b, C, H, W)
        unit, hw = _centre_unit(model, x)  # (b, K)
        if signs is None:  # drawn once for all inputs, so batching never changes the draw
            signs = rademacher(len(inputs), unit.shape[1], generator).to(dev, unit.dtype)  # (N, K)
        (g,) = torch.autograd.grad((unit * signs[i:i + len(x)]).sum(), x)  # one backward per batch
        g = g.double()
        abs_sum += g.abs().sum((0, 1))
        sq_sum += g.pow(2).sum((0, 1))
    n = len(inputs)
    return (abs_sum / n).cpu().numpy(), (sq_sum / n).cpu().numpy(), hw


def linearised_copy(model: nn.Module) -> nn.Module:
    """A float64 copy with per-position nonlinearities and norms removed and positive weights.

    Each weight tensor becomes |w| (floored at 1e-6 of its max, so a zero weight
    still connects) normalised per output row; biases become 0. With positive
    inputs every activation is then positive, so functional ReLUs and max-pools
    pass gradients too. With BatchNorm and dropout gone, train mode computes the
    same function as eval and keeps torch's eval-only fused transformer path
    (which reads LayerNorm attributes) out of the way.
    """
    lin = copy.deepcopy(model).double()
    for parent in list(lin.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, _REMOVED):
                setattr(parent, name, nn.Identity())
    with torch.no_grad():
        for p in lin.parameters():
            if p.dim() >= 2:
                a = p.abs().clamp_min(1e-6 * float(p.abs().max()) + 1e-300)
                p.copy_(a / a.flatten(1).sum(1).view(-1, *[1] * (p.dim() - 1)))
            else:
                p.zero_()
    return lin.train()


def numeric_support(model: nn.Module, in_channels: int, image_size: int,
                    generator: torch.Generator | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """(H, W) input-gradient magnitude of the centre unit of ``linearised_copy(model)`` (float64)."""
    lin = linearised_copy(model)
    dev = next(lin.parameters()).device
    gen = generator or torch.Generator().manual_seed(0)  # CPU: the same input on every device
    x = 0.5 + torch.rand(1, in_channels, image_size, image_size, generator=gen, dtype=torch.float64)
    x = x.to(dev)  # (1, C, H, W), positive: keeps every ReLU open
    unit, hw = _centre_unit(lin, x.requires_grad_(True))  # (1, K), every entry positive
    (g,) = torch.autograd.grad(unit.sum(), x)  # positive weights: no channel can cancel another
    return g.abs().sum((0, 1)).cpu().numpy(), hw


def numeric_receptive_field(model: nn.Module, image_size: int, in_channels: int = 3) -> tuple[int, bool]:
    """(side in px, clipped): side of the numerical support; clipped if it touches the image border."""
    support, _ = numeric_support(model, in_channels, image_size)
    return _support_side(support)


def _support_side(support: np.ndarray) -> tuple[int, bool]:
    y0, y1, x0, x1 = support_box(support)
    h, w = support.shape
    return max(y1 - y0 + 1, x1 - x0 + 1), min(y0, x0) == 0 or y1 == h - 1 or x1 == w - 1


def unit_centre(unit_hw: tuple[int, int], input_hw: tuple[int, int],
                support: np.ndarray) -> tuple[float, float]:
    """Input position (row, col) of the unit at (h // 2, w // 2).

    At input resolution it is (H // 2, W // 2). Otherwise it is the centre of the
    unit's numerical support when that lies inside the image (exact for padded
    strided convs), else the centre of the unit's cell, ``(i + 1/2) H / h - 1/2``.
    """
    if tuple(unit_hw) == tuple(input_hw):
        return default_centre(input_hw)
    if not _support_side(support)[1]:
        y0, y1, x0, x1 = support_box(support)
        return 0.5 * (y0 + y1), 0.5 * (x0 + x1)
    return tuple((u // 2 + 0.5) * s / u - 0.5 for u, s in zip(unit_hw, input_hw))


@dataclasses.dataclass
class ERFResult:
    """ERF maps and metrics of one model; maps are (H, W) float64 at input resolution."""

    erf_abs: np.ndarray  # mean over inputs of sum_c |dy/dx|
    erf_sq: np.ndarray  # mean over inputs of sum_c (dy/dx)^2
    support: np.ndarray  # gradient of the linearised copy; > 0 exactly on the TRF
    centre: tuple[float, float]  # input position of the probed unit (row, col)
    metrics: dict  # see fcnprobe.analysis.erf.map_metrics, plus TRF entries and n_inputs


def effective_receptive_field(model: nn.Module, inputs: torch.Tensor, batch_size: int = 32,
                              image_size: int | None = None,
                              generator: torch.Generator | None = None) -> ERFResult:
    """ERF of the centre unit of ``model`` over ``inputs`` (B, C, H, W), with TRF checks.

    ``generator`` (CPU) draws the channel signs of ``gradient_maps``.
    ``trf_px`` is analytic (None = global), ``trf_numeric_px`` the support side
    of the linearised copy (clipped to the image; see ``trf_numeric_clipped``)
    and ``erf_trf_ratio = erf_std_px / trf_px`` (None when global).
    """
    size = image_size or inputs.shape[-1]
    m_abs, m_sq, hw = gradient_maps(model, inputs, batch_size, generator)
    support, _ = numeric_support(model, inputs.shape[1], inputs.shape[-1])
    centre = unit_centre(hw, tuple(inputs.shape[-2:]), support)
    trf = theoretical_receptive_field(model, size)
    side, clipped = _support_side(support)
    metrics = map_metrics(m_abs, m_sq, centre)
    metrics.update(trf_px=trf, trf_numeric_px=side, trf_numeric_clipped=clipped, n_inputs=len(inputs),
                   erf_trf_ratio=None if trf is None else metrics["erf_std_px"] / trf,
                   unit_row_px=centre[0], unit_col_px=centre[1])
    return ERFResult(m_abs, m_sq, support, centre, metrics)


# --------------------------------------------------------------------------- the probe
@dataclasses.dataclass(frozen=True)
class ERFSettings:
    """Sizes of one preset of the erf probe."""

    n_inputs: int  # inputs averaged per map; the map's Monte Carlo error falls as 1/sqrt(n)
    batch_size: int  # inputs per backward pass (memory bound at depth 32, not speed bound)
    n_inits: int  # random initialisations per family at the default size
    depths: tuple[int, ...]  # the depth sweep, a log-spaced subset of 2..32
    depth_inits: int  # random initialisations per depth
    depth_inputs: int  # inputs per map in the depth sweep (deep nets cost most)
    depth_image_size: int  # px; keeps a depth-32 random-ReLU ERF (std ~ 5 px) clear of the border
    train_steps: int  # brief training when the run holds no context weights
    train_batch: int  # samples per step of that training
    image_size: int = 32  # the zoo's build size
    depth_models: tuple[str, ...] = ("fcn", "dilated")  # the families the issue sweeps over depth
    train_task: str = "global_cue"  # preferred task for trained weights (context probe's, else brief)
    trained_models: tuple[str, ...] | None = None  # families with a trained cell; None = every dense one


SMOKE = ERFSettings(n_inputs=4, batch_size=4, n_inits=1, depths=(2, 8), depth_inits=1, depth_inputs=2,
                    depth_image_size=32, train_steps=3, train_batch=4, trained_models=("fcn",))
QUICK = ERFSettings(n_inputs=32, batch_size=32, n_inits=3, depths=(2, 4, 8, 16, 32), depth_inits=2,
                    depth_inputs=16, depth_image_size=48, train_steps=40, train_batch=16)
FULL = ERFSettings(n_inputs=256, batch_size=64, n_inits=8, depths=(2, 3, 4, 6, 8, 12, 16, 24, 32),
                   depth_inits=5, depth_inputs=128, depth_image_size=96, train_steps=600, train_batch=32)


def _untrained_head(name: str) -> str:
    """dense:4 where the family has a dense head, else its native head (the seed's examples)."""
    from fcnprobe.models import MODELS

    native = MODELS.meta(name)["native"]
    return "dense:4" if "dense" in native else ("box" if native[0] == "box" else f"{native[0]}:4")


def _trained_names(names: list[str], settings: ERFSettings, preset: str) -> list[str]:
    """Families with a trained cell: ``settings.trained_models``, else those the context probe
    trains in this preset (so ``run all`` reuses its weights), else all, plus user models
    (the context probe trains those too); dense heads only: global_cue is dense."""
    from fcnprobe.models import MODELS
    from fcnprobe.probes.base import PROBES

    wanted = settings.trained_models
    if wanted is None and "context" in PROBES:
        wanted = getattr(PROBES.get("context").settings(preset), "models", None)
    return [n for n in names if (wanted is None or n in wanted or MODELS.meta(n).get("family") == "user")
            and "dense" in MODELS.meta(n)["native"]]


@register_probe("erf", order=20)
class ERFProbe(Probe):
    """ERF and TRF of every family (random inits and trained) and of fcn / dilated against depth."""

    settings_by_preset = {"smoke": SMOKE, "quick": QUICK, "full": FULL}

    def cells(self, cfg, settings: ERFSettings) -> list[Cell]:
        from fcnprobe.models import list_models

        names = self.model_names(cfg, list_models())
        noise = bool(self.task_names(cfg, ["noise"]))  # untrained cells read white noise
        trained = _trained_names(names, settings, cfg.preset) if self.task_names(cfg, [settings.train_task]) else []
        deep = [n for n in names if n in settings.depth_models] if noise else []
        cells = []
        for seed in cfg.seeds:
            for name in names:
                base = dict(sweep="family", depth=None, image_size=settings.image_size)  # None: family default
                cells += [Cell.make("erf", name, "noise", seed, trained=False, init=i, **base)
                          for i in range(settings.n_inits if noise else 0)]
                if name in trained:
                    cells.append(Cell.make("erf", name, settings.train_task, seed, trained=True, init=0, **base))
            cells += [Cell.make("erf", name, "noise", seed, sweep="depth", trained=False, init=i, depth=d,
                                image_size=settings.depth_image_size)
                      for name in deep for d in settings.depths for i in range(settings.depth_inits)]
        return cells

    def run_cell(self, cell: Cell, ctx: CellContext) -> CellOutput:
        s, p = ctx.settings, cell.p
        gen = torch.Generator(device=ctx.device).manual_seed(cell.torch_seed)
        extra: dict = {"weights_source": None, "weights_task": None}
        if p["trained"]:
            model, task, extra = _trained_model(cell, ctx)
            inputs = task.sample(s.n_inputs, gen).inputs  # (N, C, H, W) from the task it learned
        else:
            model = create_model(cell.model, head=_untrained_head(cell.model), image_size=p["image_size"],
                                 depth=p["depth"]).to(ctx.device)
            n = s.depth_inputs if p["sweep"] == "depth" else s.n_inputs
            inputs = torch.randn(n, _in_channels(model), p["image_size"], p["image_size"],
                                 generator=gen, device=ctx.device)  # (N, C, H, W) white noise
        signs = torch.Generator().manual_seed(cell.torch_seed)  # CPU: same signs on every device
        res = effective_receptive_field(model, inputs, s.batch_size, generator=signs)
        info = getattr(model, "info", None)
        extra.update(model_width=getattr(info, "width", None), model_depth=getattr(info, "depth", None),
                     map_size_px=int(inputs.shape[-1]))
        arrays = {"erf_abs": downsample(res.erf_abs), "erf_sq": downsample(res.erf_sq)}
        return CellOutput(metrics={**res.metrics, **extra}, arrays=arrays)


def _in_channels(model: nn.Module) -> int:
    info = getattr(model, "info", None)
    return info.in_channels if info is not None else 3


def _context_record(run_dir, model: str, task: str, seed: int = 0):
    """The context probe's record with weights for ``model``, preferring the same seed, then ``task``."""
    from fcnprobe.results import RunStore

    recs = [r for r in RunStore(run_dir).read_records()
            if r.probe == "context" and r.ok and r.model == model and r.metrics.get("weights_file")]
    recs.sort(key=lambda r: (r.seed != seed, r.task != task, r.seed, r.task, r.cell_id))
    return recs[0] if recs else None


def _trained_model(cell: Cell, ctx: CellContext) -> tuple[nn.Module, object, dict]:
    """Context-probe weights when the run has them, else a brief training on the preferred task."""
    from fcnprobe.tasks import create_task

    s = ctx.settings
    rec = _context_record(ctx.run_dir, cell.model, s.train_task, cell.seed)
    if rec is not None:
        rp = rec.params
        model = create_model(cell.model, head=rp["head"], image_size=rp["image_size"],
                             width=rp.get("width"), depth=rp.get("depth"))
        task_kw = {k: v for k, v in rp.items() if k not in ("head", "width", "depth")}  # image_size, distance
        state = torch.load(ctx.run_dir / rec.metrics["weights_file"], map_location=ctx.device, weights_only=True)
        model.load_state_dict(state)
        task = create_task(rec.task, **task_kw)
        return model.to(ctx.device).eval(), task, {"weights_source": "context", "weights_task": rec.task,
                                                    "weights_cell": rec.cell_id}
    return _brief_train(cell, ctx, create_task(s.train_task, image_size=cell.p["image_size"]))


def _brief_train(cell: Cell, ctx: CellContext, task):
    """Train ``s.train_steps`` steps on ``task`` with the family's learning rate."""
    from fcnprobe.train import TrainBudget, family_lr, train

    s = ctx.settings
    model = create_model(cell.model, head=task.head, image_size=cell.p["image_size"], depth=cell.p["depth"])
    loss_fn = _loss_for(task.kind)
    seed = (cell.torch_seed + TRAIN_SEED_OFFSET) % 2**31  # training data never repeats the ERF inputs
    res = train(model, task.sample, loss_fn, TrainBudget(s.train_steps, s.train_batch), family_lr(cell.model),
                ctx.device, seed)
    return model.eval(), task, {"weights_source": "brief", "weights_task": task.name,
                                "train_steps": s.train_steps, "train_final_loss": res.final_loss}


def _loss_for(kind: str):
    """Cross-entropy for dense and vector class targets (IGNORE_INDEX = -100 masked), L1 for boxes."""
    if kind == "box":
        return lambda out, batch: F.l1_loss(out, batch.targets)
    return lambda out, batch: F.cross_entropy(out, batch.targets)
