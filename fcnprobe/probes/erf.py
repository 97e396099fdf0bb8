"""The ERF probe: effective and theoretical receptive fields of every family.

The probe plans cells, calls ``fcnprobe.measure.erf.effective_receptive_field``
and stores its metrics (defined in ``fcnprobe.analysis.erf``) and maps. It
measures every family at its default size, with random inits (variant
``noise``: white-noise inputs) and trained weights (task ``global_cue``: the
context probe's weights when the run has them, else a brief training), and
fcn / dilated at depths 2..32 (variant ``noise``, ``sweep=depth``). In
``standard`` it also measures the trained weights of every context cell on
the dense binned tasks (``trained_tasks``) and seeds (``trained_seeds``), so the
context section can plot accuracy against distance / ERF radius on the very
weights it scored (issue 15).

The TRF is graph-exact (``fcnprobe.measure.trf_graph``: finite, global or
unknown with the reason) for every model, checked in each cell against the
numeric gradient support (``trf_check``: agree | disagree | n/a; a
disagreement is also a line in ``warnings``). ``--image-size`` replaces the
family size (the size is in each cell's params, so in its id); ``--output`` and
``--layer`` pick the probed tensor of any ``nn.Module``. Plain builders (no
``head``) are probed on their own output. User-only runs train nothing unless
``--tasks`` asks for the trained cell.

Torch is imported inside the functions that run cells, so the declarations
below can be read without it. References: Luo et al., NeurIPS 2016; Ding et
al. (RepLKNet), CVPR 2022.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from fcnprobe.analysis.erf import HCA_THRESHOLDS
from fcnprobe.metrics import declare, metric
from fcnprobe.probes.base import Cell, CellContext, CellOutput, Probe, register_probe
from fcnprobe.utils import default_head

if TYPE_CHECKING:
    import torch.nn as nn

TRAIN_SEED_OFFSET = 7919  # brief training draws from another stream than the ERF inputs
NOISE = "noise"  # the variant of untrained cells: white-noise inputs, no task


def _hca_metrics() -> list:
    out = []
    for t in (round(100 * t) for t in HCA_THRESHOLDS):
        out += [metric(f"hca_side_px_t{t}", f"HCA side at {t}% (raw map)"),
                metric(f"hca_area_frac_t{t}", f"HCA area fraction at {t}% (raw map)"),
                metric(f"hca_log_side_px_t{t}", f"HCA side at {t}% (RepLKNet log map)"),
                metric(f"hca_log_area_frac_t{t}", f"HCA area fraction at {t}% (RepLKNet log map)")]
    return out


ERF_METRICS = declare([
    metric("erf_std_px", "ERF std (mean of axes)"), metric("erf_std_y_px", "ERF std, rows"),
    metric("erf_std_x_px", "ERF std, columns"), metric("erf_abs_std_px", "ERF std of |g| map"),
    metric("gauss_sigma_px", "Gaussian fit sigma"), metric("gauss_resid_frac", "Gaussian fit residual", "lower"),
    metric("trf_px", "TRF side (graph; None unless finite)"), metric("trf_kind", "TRF kind (finite|global|unknown)"),
    metric("trf_reason", "why the TRF is global or unknown"), metric("trf_numeric_px", "TRF side (numeric)"),
    metric("trf_check", "graph vs numeric TRF (agree|disagree|n/a)"),
    metric("warnings", "warnings", is_array=True, unit=""), metric("output_key", "probed output part"),
    metric("layer_name", "probed layer"),
    metric("trf_numeric_clipped", "numeric TRF clipped by the image"), metric("erf_trf_ratio", "ERF std / TRF side"),
    metric("n_inputs", "inputs averaged", unit="count"), metric("unit_row_px", "probed unit row"),
    metric("unit_col_px", "probed unit column"), metric("map_size_px", "input side"),
    metric("model_width", "model width (channels)", unit="count"), metric("model_depth", "model depth (layers)",
                                                                           unit="count"),
    metric("weights_source", "weights from"), metric("weights_task", "weights trained on"),
    metric("weights_cell", "weights cell"), metric("train_steps", "brief training steps", unit="count"),
    metric("train_final_loss", "brief training final loss", "lower"),
], _hca_metrics())


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
    # issue 15: the ERF of the very weights the context probe scored, for its distance / ERF-radius view:
    trained_tasks: tuple[str, ...] = ()  # more dense context tasks whose trained cells get an ERF cell each
    trained_seeds: tuple[int, ...] = ()  # their seeds (the context preset's); () = the run's --seeds


SMOKE = ERFSettings(n_inputs=4, batch_size=4, n_inits=1, depths=(2, 8), depth_inits=1, depth_inputs=2,
                    depth_image_size=32, train_steps=3, train_batch=4, trained_models=("fcn",))
QUICK = ERFSettings(n_inputs=32, batch_size=32, n_inits=3, depths=(2, 4, 8, 16, 32), depth_inits=2,
                    depth_inputs=16, depth_image_size=48, train_steps=40, train_batch=16)
STANDARD = dataclasses.replace(QUICK, trained_tasks=("same_different_dense", "left_of"), trained_seeds=(0, 1, 2))
FULL = ERFSettings(n_inputs=256, batch_size=64, n_inits=8, depths=(2, 3, 4, 6, 8, 12, 16, 24, 32),
                   depth_inits=5, depth_inputs=128, depth_image_size=96, train_steps=600, train_batch=32)


def _untrained_head(name: str) -> str:
    """dense:4 where the family has a dense head, else its native head (the seed's examples)."""
    from fcnprobe.models import MODELS

    return default_head(MODELS.meta(name)["native"])


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


@register_probe("erf", order=20, help="effective vs theoretical receptive fields, per family and depth")
class ERFProbe(Probe):
    """ERF and TRF of every family (random inits and trained) and of fcn / dilated against depth."""

    settings_by_preset = {"smoke": SMOKE, "quick": QUICK, "standard": STANDARD, "full": FULL}  # no training but brief
    metrics = ERF_METRICS
    version = 2  # 2: graph TRF, trf_check
    variants = (NOISE,)

    def cells(self, cfg, settings: ERFSettings) -> list[Cell]:
        from fcnprobe.models import list_models

        names = self.model_names(cfg, list_models())
        noise = self.wants_variant(cfg, NOISE)
        trained = _trained_names(names, settings, cfg.preset) if self.task_names(cfg, [settings.train_task]) else []
        trained = [n for n in trained if ":" not in n or cfg.tasks]  # user models: no unrequested training
        deep = [n for n in names if n in settings.depth_models] if noise else []
        pick = {k: v for k, v in (("output", cfg.output), ("layer", cfg.layer)) if v is not None}
        cells = []
        for seed in cfg.seeds:
            for name, size in ((n, s) for n in names for s in cfg.image_sizes or (settings.image_size,)):
                base = dict(sweep="family", depth=None, image_size=size, **pick)  # depth None: family default
                cells += [self.variant_cell(name, NOISE, seed, trained=False, init=i, **base)
                          for i in range(settings.n_inits if noise else 0)]
                if name in trained and not pick:
                    cells.append(Cell.make("erf", name, settings.train_task, seed, trained=True, init=0, **base))
            cells += [self.variant_cell(name, NOISE, seed, sweep="depth", trained=False, init=i, depth=d,
                                        image_size=settings.depth_image_size)
                      for name in deep for d in settings.depths for i in range(settings.depth_inits)]
        return cells + ([] if pick else self._more_trained(cfg, settings, trained, cells))

    def _more_trained(self, cfg, settings: ERFSettings, trained: list[str], planned: list[Cell]) -> list[Cell]:
        """Trained cells for ``trained_tasks`` and ``trained_seeds`` (the context probe's weights per seed)."""
        if not settings.trained_tasks and not settings.trained_seeds:
            return []
        have = {(c.model, c.task, c.seed) for c in planned}
        seeds = settings.trained_seeds if tuple(cfg.seeds) == (0,) and settings.trained_seeds else cfg.seeds
        tasks = self.task_names(cfg, [settings.train_task, *settings.trained_tasks])
        return [Cell.make("erf", n, t, seed, trained=True, init=0, sweep="family", depth=None, image_size=size)
                for t in tasks for seed in seeds for n in trained
                for size in cfg.image_sizes or (settings.image_size,) if (n, t, seed) not in have]

    def run_cell(self, cell: Cell, ctx: CellContext) -> CellOutput:
        import torch

        from fcnprobe.analysis.erf import downsample
        from fcnprobe.measure.erf import effective_receptive_field

        model, inputs, extra = _model_and_inputs(cell, ctx)
        signs = torch.Generator().manual_seed(cell.torch_seed)  # CPU: same signs on every device
        out, layer = cell.p.get("output"), cell.p.get("layer")
        res = effective_receptive_field(model, inputs, ctx.settings.batch_size, generator=signs, output=out,
                                        layer=layer)
        extra.update(output_key=out, layer_name=layer)
        info = getattr(model, "info", None)
        extra.update(model_width=getattr(info, "width", None), model_depth=getattr(info, "depth", None),
                     map_size_px=int(inputs.shape[-1]))
        arrays = {"erf_abs": downsample(res.erf_abs), "erf_sq": downsample(res.erf_sq)}
        return CellOutput(metrics={**res.metrics, **extra}, arrays=arrays)


def _model_and_inputs(cell: Cell, ctx: CellContext) -> tuple["nn.Module", Any, dict]:
    """The cell's model, its (N, C, H, W) inputs and the metrics saying where the weights came from."""
    import torch

    from fcnprobe.user import build_probe_model

    s, p = ctx.settings, cell.p
    gen = torch.Generator(device=ctx.device).manual_seed(cell.torch_seed)
    if p["trained"]:
        model, task, extra = _trained_model(cell, ctx)
        return model, task.sample(s.n_inputs, gen).inputs, extra  # inputs from the task it learned
    model, _ = build_probe_model(cell.model, _untrained_head(cell.model), p["image_size"], depth=p["depth"])
    model = model.to(ctx.device)
    n = s.depth_inputs if p["sweep"] == "depth" else s.n_inputs
    inputs = torch.randn(n, _in_channels(model), p["image_size"], p["image_size"],
                         generator=gen, device=ctx.device)  # (N, C, H, W) white noise
    return model, inputs, {"weights_source": None, "weights_task": None}


def _in_channels(model: "nn.Module") -> int:
    from fcnprobe.measure.trf_graph import model_in_channels

    info = getattr(model, "info", None)
    return info.in_channels if info is not None else model_in_channels(model)


def _context_record(run_dir, model: str, task: str, seed: int = 0):
    """The context probe's record with weights for ``model``, preferring the same seed, then ``task``."""
    from fcnprobe.results import RunStore

    recs = [r for r in RunStore(run_dir).read_records()
            if r.probe == "context" and r.ok and r.model == model and r.metrics.get("weights_file")]
    recs.sort(key=lambda r: (r.seed != seed, r.task != task, r.seed, r.task, r.cell_id))
    return recs[0] if recs else None


def _trained_model(cell: Cell, ctx: CellContext) -> tuple["nn.Module", object, dict]:
    """Context-probe weights when the run has them, else a brief training on the preferred task."""
    import torch

    from fcnprobe.models import create_model
    from fcnprobe.tasks import create_task

    rec = _context_record(ctx.run_dir, cell.model, cell.task, cell.seed)
    if rec is None or ((rec.task, rec.seed) != (cell.task, cell.seed) and cell.task != ctx.settings.train_task):
        return _brief_train(cell, ctx, create_task(cell.task, image_size=cell.p["image_size"]))
    rp = rec.params
    model = create_model(cell.model, head=rp["head"], image_size=rp["image_size"],
                         width=rp.get("width"), depth=rp.get("depth"))
    task_kw = {k: v for k, v in rp.items() if k not in ("head", "width", "depth", "variant")}  # size, distance
    state = torch.load(ctx.run_dir / rec.metrics["weights_file"], map_location=ctx.device, weights_only=True)
    model.load_state_dict(state)
    task = create_task(rec.task, **task_kw)
    return model.to(ctx.device).eval(), task, {"weights_source": "context", "weights_task": rec.task,
                                                "weights_cell": rec.cell_id}


def _brief_train(cell: Cell, ctx: CellContext, task):
    """Train ``s.train_steps`` steps on ``task`` with the family's learning rate."""
    from fcnprobe.models import create_model
    from fcnprobe.train import TrainBudget, family_lr, train

    s = ctx.settings
    model = create_model(cell.model, head=task.head, image_size=cell.p["image_size"], depth=cell.p["depth"])
    seed = (cell.torch_seed + TRAIN_SEED_OFFSET) % 2**31  # training data never repeats the ERF inputs
    res = train(model, task.sample, _loss_for(task.kind), TrainBudget(s.train_steps, s.train_batch),
                family_lr(cell.model), ctx.device, seed)
    return model.eval(), task, {"weights_source": "brief", "weights_task": task.name,
                                "train_steps": s.train_steps, "train_final_loss": res.final_loss}


def _loss_for(kind: str):
    """Cross-entropy for dense and vector class targets (IGNORE_INDEX masked), L1 for boxes."""
    import torch.nn.functional as F

    from fcnprobe.utils import IGNORE_INDEX

    if kind == "box":
        return lambda out, batch: F.l1_loss(out, batch.targets)
    return lambda out, batch: F.cross_entropy(out, batch.targets, ignore_index=IGNORE_INDEX)
