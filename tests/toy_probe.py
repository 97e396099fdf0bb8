"""Toy probes for sweep tests (cells that succeed, raise, return NaN or sleep), and a toy task
plus a toy probe with declared metrics, registered from outside the package the way a user
would (CONTRIBUTING.md; tests/test_extend.py runs them end to end)."""
from __future__ import annotations

import time

import torch

from fcnprobe.metrics import declare, metric
from fcnprobe.probes.base import PROBES, Cell, CellOutput, Probe, register_probe
from fcnprobe.tasks import TASKS, Batch, Task, register_task

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


# -- fault injection (tests/test_faults.py, tests/test_executors.py) ----------
FAULT_NAME = "toy_fault"
ARM_MARKER = "arm.marker"  # in the run directory: a test put it there, the 'die' cell may crash;
# holding "wait", the 'die' cell first waits for the other cells of its seed to be stored
DIE_MARKER = "die-s{seed}.marker"  # in the run directory: the 'die' cell of that seed already killed a worker


class ToyFault(Toy):
    """Four ok cells, then one that kills its worker process the first time it runs in an armed run dir.

    Unarmed (no ARM_MARKER in the run directory) every cell is harmless, so a
    sweep over all registered probes never crashes the test process.
    """

    def cells(self, cfg, settings):
        kinds = ["ok", "ok", "ok", "ok", "die"]
        return [Cell.make(FAULT_NAME, "fcn", "none", seed=s, kind=k, i=i)
                for s in cfg.seeds for i, k in enumerate(kinds)]

    def run_cell(self, cell, ctx):
        marker, arm = ctx.run_dir / DIE_MARKER.format(seed=cell.seed), ctx.run_dir / ARM_MARKER
        if cell.p["kind"] == "die" and arm.exists() and not marker.exists():
            marker.touch()
            if arm.read_text().strip() == "wait":
                _wait_for_records(ctx.run_dir, f"{FAULT_NAME}__*__s{cell.seed}__*.json", 4)
            __import__("os")._exit(1)  # a crash: no exception, no record
        return super().run_cell(cell, ctx)


def _wait_for_records(run_dir, pattern, count, timeout_s=60.0):
    """Block until the driver has stored ``count`` records: the other cells finish first."""
    end = time.monotonic() + timeout_s
    while len(list((run_dir / "cells").glob(pattern))) < count and time.monotonic() < end:
        time.sleep(0.05)


def ensure_fault_registered() -> None:
    if FAULT_NAME not in PROBES:
        register_probe(FAULT_NAME, order=998)(ToyFault)


ensure_fault_registered()


# -- a probe that builds its cells' models (tests/test_user_models.py) --------
MODEL_NAME = "toy_model"


class ToyModel(Probe):
    """Build each model with create_model and record its output shape on a 16x16 input."""

    settings_by_preset = {"smoke": None, "quick": None, "full": None}

    def cells(self, cfg, settings):
        return [Cell.make(MODEL_NAME, m, "none", seed=s, head=h)
                for s in cfg.seeds for m in self.model_names(cfg, ["fcn"]) for h in ("dense:2", "vector:3")]

    def run_cell(self, cell, ctx):
        from fcnprobe.models import create_model

        model = create_model(cell.model, head=cell.p["head"], image_size=16)
        out = model(torch.rand(1, 3, 16, 16))  # (1, 2, 16, 16) or (1, 3)
        return CellOutput(metrics={"out_shape": list(out.shape), "out_sum": out.sum().item(),
                                   "params_count": sum(p.numel() for p in model.parameters())})


def ensure_model_registered() -> None:
    if MODEL_NAME not in PROBES:
        register_probe(MODEL_NAME, order=997)(ToyModel)


ensure_model_registered()


# -- a task and a probe added from outside the package (tests/test_extend.py) --
TASK_NAME = "toy_bright"  # is the image brighter than average? image-level, two classes
DECLARED_NAME = "toy_declared"


class ToyBright(Task):
    """Vector task: class 1 when the image's mean is positive (a global OR a pooled FCN solves)."""

    kind = "vector"

    @property
    def chance(self) -> float:
        return 0.5

    @property
    def num_outputs(self) -> int:
        return 2

    def sample(self, n, generator):
        x = torch.randn(n, 3, self.image_size, self.image_size, generator=generator)  # (n, 3, S, S)
        return Batch(x, (x.mean((1, 2, 3)) > 0).long())  # (n,)


class ToyDeclared(Probe):
    """Untrained accuracy on the toy task, and the output scale on a blank image (a variant)."""

    settings_by_preset = {"smoke": 8, "quick": 16, "full": 64}  # samples scored
    metrics = declare([metric("toy_acc_frac", "untrained accuracy on toy_bright", "higher"),
                       metric("toy_out_abs_mean", "mean |output| on a blank image", unit="")])
    variants = ("blank",)

    def cells(self, cfg, settings):
        models = self.model_names(cfg, ["fcn"])
        return ([Cell.make(DECLARED_NAME, m, TASK_NAME, seed=s) for m in models for s in cfg.seeds]
                + [self.variant_cell(m, "blank", s) for m in models for s in cfg.seeds])

    def run_cell(self, cell, ctx):
        from fcnprobe.models import create_model
        from fcnprobe.tasks import create_task

        task = create_task(TASK_NAME, image_size=16)
        model = create_model(cell.model, head=task.head, image_size=16).eval()
        with torch.no_grad():
            if cell.task == TASK_NAME:
                batch = task.sample(ctx.settings, torch.Generator().manual_seed(cell.torch_seed))
                acc = (model(batch.inputs).argmax(1) == batch.targets).float().mean().item()
                return CellOutput(metrics={"toy_acc_frac": acc})
            out = model(torch.zeros(1, 3, 16, 16))
        return CellOutput(metrics={"toy_out_abs_mean": out.abs().mean().item()})


def ensure_declared_registered() -> None:
    if TASK_NAME not in TASKS:
        register_task(TASK_NAME, kind="vector", distance=None)(ToyBright)
    if DECLARED_NAME not in PROBES:
        register_probe(DECLARED_NAME, order=996, help="toy: untrained accuracy and blank-image output")(ToyDeclared)


ensure_declared_registered()


if __name__ == "__main__":  # `python tests/toy_probe.py toy --out DIR ...`: the CLI with the toy probes
    import sys

    from fcnprobe import run

    extra = (NAME, FAULT_NAME, MODEL_NAME, DECLARED_NAME)
    for name in extra:  # register again under the importable name, so workers on any executor find them
        PROBES.remove(name)
    import toy_probe  # noqa: F401  (registered probes are subcommands)
    sys.exit(run.main())
