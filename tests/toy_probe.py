"""A toy probe for sweep tests: cells that succeed, raise, return NaN or sleep."""
from __future__ import annotations

import time

import torch

from fcnprobe.probes.base import PROBES, Cell, CellOutput, Probe, register_probe

NAME = "toy"


class Toy(Probe):
    settings_by_preset = {"smoke": {"n": 4}, "quick": {"n": 4}, "full": {"n": 4}}

    def cells(self, cfg, settings):
        kinds = ["ok", "ok", "raise", "nan", "slow"]
        return [Cell.make(NAME, "fcn", "none", seed=s, kind=k, i=i)
                for s in cfg.seeds for i, k in enumerate(kinds)]

    def run_cell(self, cell, ctx):
        kind = cell.p["kind"]
        if kind == "raise":
            raise ValueError("boom\nsecond line")
        if kind == "slow":
            time.sleep(float(__import__("os").environ.get("TOY_SLEEP", "0")))
        value = torch.rand(()).item()  # depends only on the cell's derived seed
        if kind == "nan":
            value = float("nan")
        return CellOutput(metrics={"value_frac": value, "threads_count": torch.get_num_threads()},
                          arrays={"map": torch.arange(6.0).reshape(2, 3).numpy()})


def ensure_registered() -> None:
    if NAME not in PROBES:
        register_probe(NAME, order=999)(Toy)


ensure_registered()
