"""The hierarchy probe (claim 1): how global and abstract each layer is, trained and at init.

For every model the context probe trained on an image-level attribute task, and
for the same model at random init, the probe freezes it, averages every block's
output over space (``measure.hierarchy.collect_features``) on fresh samples
from the task generator, and fits a ridge linear probe per block
(``probe_curve``; Alain & Bengio 2016) with a shuffled-label floor and a
Hewitt & Liang (2019) control task. It records accuracy and *selectivity*
(accuracy - control accuracy) against depth, and the *abstraction depth*: the
first block whose selectivity reaches 90% of the best block's. Attention models
also get the mean attention distance per layer (Raghu et al. 2021).

Read-outs (whole-image attributes) and control types (what the label is a function of):

* same_different -- same/different; types: the ordered colour pair.
* aligned_image  -- same row or not; types: the pair of rows.
* global_cue     -- the cue class, or absent; types: the cue's position (4 px cells),
                    so the control measures how well position alone is memorised.

Trained weights come from the context probe's cells (``weights.pt``, loaded with
``torch.load(weights_only=True)``); the sweep runs probes one after another, so
they exist when this probe runs. A missing context cell is an error record.
Beside each block's selectivity it records how global the block is: its ERF
radius (``measure.hierarchy.layer_erf_radii``, 2 x the ERF std of the block's
centre unit, on the same weights and images; None for token outputs).
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from fcnprobe.config import RunConfig
from fcnprobe.metrics import declare, metric
from fcnprobe.probes.base import Cell, CellContext, CellOutput, Probe, register_probe

if TYPE_CHECKING:
    import numpy as np
    import torch

    from fcnprobe.tasks.base import Batch

SAMPLE_SEED_OFFSET = 2_000_029  # fresh samples: a stream neither training nor the context held-out set uses
ATTENTION_SAMPLES = 64  # images for the mean attention distance
ERF_SAMPLES = 32  # images for each block's ERF radius
TYPE_CELL_PX = 4  # global_cue's control types: the cue position in 4 px cells
STATES = ("trained", "init")

HIERARCHY_METRICS = declare([
    metric("layers", "probed blocks, in forward order", is_array=True, unit=""),
    metric("layers_count", "probed blocks", unit="count"),
    metric("probe_acc_by_layer_frac", "linear-probe accuracy per block", "higher", is_array=True),
    metric("shuffled_acc_by_layer_frac", "shuffled-label floor per block", is_array=True),
    metric("control_acc_by_layer_frac", "control-task accuracy per block", is_array=True),
    metric("selectivity_by_layer_frac", "selectivity (accuracy - control) per block", "higher", is_array=True),
    metric("abstraction_depth", "first block reaching 90% of the best selectivity (0-based)", unit="count"),
    metric("best_selectivity_frac", "best selectivity over blocks", "higher"),
    metric("best_acc_frac", "best probe accuracy over blocks", "higher"), metric("chance_frac", "majority class share"),
    metric("attention_distance_by_layer_px", "mean attention distance per layer", is_array=True),
    metric("erf_radius_by_layer_px", "ERF radius (2 x ERF std) per block; None for token/vector outputs",
           is_array=True),
    metric("samples_count", "probe samples (half train, half test)", unit="count"),
    metric("context_cell", "the context cell whose weights were probed"),
])


@dataclasses.dataclass(frozen=True)
class HierarchySettings:
    """One preset of the hierarchy probe; models, sizes and seeds follow the context probe's preset."""

    tasks: tuple[str, ...]  # image-level attribute tasks probed (those the context probe trained on)
    samples: int  # fresh samples per cell: the first half fits each probe, the second scores it


SETTINGS = {
    "smoke": HierarchySettings(tasks=("same_different", "aligned_image", "global_cue"), samples=64),
    "quick": HierarchySettings(tasks=("same_different", "aligned_image", "global_cue"), samples=512),
    "standard": HierarchySettings(tasks=("same_different", "aligned_image", "global_cue"), samples=1024),
    "full": HierarchySettings(tasks=("same_different", "aligned_image", "global_cue"), samples=2048),
}


@register_probe("hierarchy", order=11, help="layer-wise linear probes on trained context models and at init")
class HierarchyProbe(Probe):
    """Per context cell on an attribute task: probe accuracy and selectivity against depth, trained and at init."""

    settings_by_preset = SETTINGS
    metrics = HIERARCHY_METRICS
    version = 2  # 2: the ERF radius per block (erf_radius_by_layer_px)

    def cells(self, cfg: RunConfig, settings: HierarchySettings) -> list[Cell]:
        from fcnprobe.probes import PROBES

        context = PROBES.get("context")
        out = []
        for c in context.plan(cfg):
            if c.task in settings.tasks and (not cfg.tasks or c.task in self.task_names(cfg, list(settings.tasks))):
                out += [Cell.make(self.name, c.model, c.task, seed=c.seed, state=s, context_cell=c.cell_id,
                                  **{k: v for k, v in c.params}) for s in STATES]
        return out

    def run_cell(self, cell: Cell, ctx: CellContext) -> CellOutput:
        import torch

        from fcnprobe.measure.hierarchy import (abstraction_depth, collect_features, layer_erf_radii,
                                                mean_attention_distance, probe_curve)

        model = _model(cell, ctx)
        batch = _samples(cell, ctx)
        labels, types = read_out(cell.task, batch)
        curve = probe_curve(collect_features(model, batch.inputs), labels, types, split=0.5, seed=cell.seed)
        sel = [r["selectivity"] for r in curve]
        mad = mean_attention_distance(model, batch.inputs[:ATTENTION_SAMPLES])
        erf = layer_erf_radii(model, batch.inputs[:ERF_SAMPLES], [r["layer"] for r in curve], seed=cell.torch_seed)
        counts = torch.bincount(torch.as_tensor(labels))
        return CellOutput(metrics={
            "layers": [r["layer"] for r in curve], "layers_count": len(curve),
            "probe_acc_by_layer_frac": [r["accuracy"] for r in curve],
            "shuffled_acc_by_layer_frac": [r["shuffled_accuracy"] for r in curve],
            "control_acc_by_layer_frac": [r["control_accuracy"] for r in curve], "selectivity_by_layer_frac": sel,
            "abstraction_depth": abstraction_depth(sel), "best_selectivity_frac": max(sel, default=None),
            "best_acc_frac": max((r["accuracy"] for r in curve), default=None),
            "chance_frac": float(counts.max() / counts.sum()), "attention_distance_by_layer_px": list(mad.values()),
            "erf_radius_by_layer_px": list(erf.values()),
            "samples_count": len(labels), "context_cell": cell.p["context_cell"]})


def _model(cell: Cell, ctx: CellContext) -> "torch.nn.Module":
    """The context cell's trained model (its kept weights), or the same architecture at init."""
    import torch

    from fcnprobe.models import create_model
    from fcnprobe.tasks import create_task

    p = cell.p
    task = create_task(cell.task, image_size=p["image_size"])
    model = create_model(cell.model, head=p["head"], in_channels=task.in_channels, image_size=p["image_size"],
                         width=p["width"], depth=p["depth"])
    if p["state"] == "trained":
        path = ctx.run_dir / "cells" / p["context_cell"] / "weights.pt"
        if not path.exists():
            raise FileNotFoundError(f"no context weights for {p['context_cell']}: run the context probe first")
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.to(ctx.device).eval()


def _samples(cell: Cell, ctx: CellContext) -> "Batch":
    import torch

    from fcnprobe.tasks import create_task

    task = create_task(cell.task, image_size=cell.p["image_size"])
    gen = torch.Generator(device=ctx.device).manual_seed((cell.torch_seed + SAMPLE_SEED_OFFSET) % 2**31)
    return task.sample(ctx.settings.samples, gen)


def read_out(task: str, batch: "Batch") -> tuple["np.ndarray", "np.ndarray"]:
    """(labels, control types) of a whole-image attribute, per sample."""
    m = {k: v.cpu() for k, v in batch.meta.items()}
    if task == "global_cue":
        labels = batch.targets[:, 0, 0].cpu()
        types = (m["y0"] // TYPE_CELL_PX) * 1000 + m["x0"] // TYPE_CELL_PX
    elif task == "aligned_image":
        labels, types = batch.targets.cpu(), m["y1"] * 1000 + m["y2"]
    elif task == "same_different":
        labels, types = batch.targets.cpu(), m["colour1"] * 1000 + m["colour2"]
    else:
        raise ValueError(f"hierarchy: no read-out for task '{task}'; known: global_cue, aligned_image, same_different")
    return labels.numpy(), types.numpy()
