"""The cost probe's ``trained`` cells: MACs per sample of each configuration the context probe trains.

The report's compute-matched view (issue 13) divides accuracy by training compute,
which needs the MACs of the very configuration trained (head, size, width, depth,
input channels), not the cost table's default build. One counting cell per
distinct configuration of a zoo model in the context probe's plan for the same
run config (users' models are measured by the forward cells, as they build);
``train_macs_per_sample`` = ``TRAIN_FORWARDS`` x the forward MACs (a backward
costs about two forwards; Kaplan et al. 2020). Counted with
``fcnprobe.measure.flops.count_flops`` (conv, linear, matmul and attention MACs).
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from fcnprobe.probes.base import Cell
from fcnprobe.utils import param_count

if TYPE_CHECKING:
    from fcnprobe.config import RunConfig
    from fcnprobe.probes.base import Probe

TRAIN_FORWARDS = 3  # a training step costs ~3 forwards


def trained_cells(probe: "Probe", cfg: "RunConfig") -> list[Cell]:
    """One ``trained`` cell per distinct configuration the context probe trains under ``cfg``."""
    from fcnprobe.probes.base import PROBES
    from fcnprobe.tasks import create_task

    if "context" not in PROBES:
        return []
    seen: dict[tuple, Cell] = {}
    for c in PROBES.get("context").plan(dataclasses.replace(cfg, tasks=())):
        if ":" in c.model:  # a user's factory may not take a head: its forward cells measure it as built
            continue
        p = c.p
        chans = create_task(c.task, image_size=p["image_size"]).in_channels
        key = (c.model, p["head"], p["image_size"], p["width"], p["depth"], chans)
        seen.setdefault(key, probe.variant_cell(c.model, "trained", head=p["head"], size=p["image_size"],
                                                width=p["width"], depth=p["depth"], in_channels=chans))
    return list(seen.values())


def trained_macs(cell: Cell, device: str) -> dict[str, Any]:
    """Forward MACs of one sample of the cell's configuration, and its training MACs per sample."""
    import torch

    from fcnprobe.measure.flops import count_flops
    from fcnprobe.models import create_model

    p = cell.p
    model = create_model(cell.model, head=p["head"], in_channels=p["in_channels"], image_size=p["size"],
                         width=p["width"], depth=p["depth"]).to(device).train()
    x = torch.randn(1, p["in_channels"], p["size"], p["size"], device=device)
    c = count_flops(model, x, cross_check=False)
    return {"macs": c.macs, "flops": c.flops, "other_flops": c.other_flops, "flops_path": c.path,
            "params_count": param_count(model), "train_macs_per_sample": TRAIN_FORWARDS * c.macs,
            "pixels": p["size"] ** 2}
