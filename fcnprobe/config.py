"""The run configuration: one frozen dataclass, filled from CLI flags and stored in
the run's manifest so a result always says how it was made.

Presets name the size of a run; each probe maps the preset name to its own
typed settings (steps, sizes, ...), which are stored in the manifest too.
"""
from __future__ import annotations

import dataclasses
import os

from fcnprobe.errors import UsageError

# smoke: tests, < 1 min; quick: the default, one seed; standard: >= 3 seeds, <= 90 min on 2 cores;
# full: >= 5 seeds, GPU / cluster; lrgrid: the learning-rate grid (fcnprobe.lr), 1 seed
PRESETS = ("smoke", "quick", "standard", "full", "lrgrid")
# seconds one cell may run before it becomes a Timeout error record: ~10x the slowest cell seen per preset
CELL_TIMEOUT_S = {"smoke": 300.0, "quick": 1800.0, "standard": 3600.0, "full": 4 * 3600.0, "lrgrid": 4 * 3600.0}
MAX_IMAGE_SIZE = 8192  # px; larger is a typo on a CPU box, and the meta path still counts what it can
MAX_SEEDS = 1000  # more replicates than this is a typo (0-1000000), not a study


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that decides which cells run and how."""

    out: str = "runs/latest"  # run directory; resumed if it exists
    device: str = "auto"  # auto | cpu | cuda; auto picks cuda when available
    preset: str = "quick"  # one of PRESETS
    seeds: tuple[int, ...] = (0,)  # replicate indices; the torch seed derives from the cell key
    workers: int = 0  # 0 = auto (one per core, capped at 4); 1 = run in this process
    threads: int = 0  # torch threads per worker; 0 = cores // workers
    models: tuple[str, ...] = ()  # glob filters over registered models; empty = the probe's own list
    tasks: tuple[str, ...] = ()  # glob filters over registered tasks
    overwrite: bool = False  # re-run every cell
    rerun_failed: bool = False  # re-run cells whose record has status 'error'
    dry_run: bool = False  # list the cells, run nothing
    executor: str = "local"  # local | dask | ray (fcnprobe.executors)
    address: str | None = None  # dask 'tcp://host:8786' or ray 'auto' / 'ray://host:10001'; None = start one here
    gpus_per_cell: float = 0.0  # ray num_gpus per cell; 0.25 packs 4 cells per GPU; 0 = 1 on CUDA
    user_models: tuple[str, ...] = ()  # 'module.path:factory' user models; with no --models, only these run
    cell_timeout: float | None = None  # seconds per cell; None = CELL_TIMEOUT_S[preset]; 0 = no limit
    image_sizes: tuple[int, ...] = ()  # --image-size: input sides (px) for erf, shape contract, cost; () = preset's
    output: str | None = None  # --output: the part of a dict/tuple/ModelOutput to probe ('out', 'logits', '0')
    layer: str | None = None  # --layer: probe this submodule's output (forward hook), for non-spatial outputs

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise UsageError(f"unknown preset '{self.preset}'; available: {', '.join(PRESETS)}")
        if len(self.seeds) > MAX_SEEDS:
            raise UsageError(f"{len(self.seeds)} seeds asked for; at most {MAX_SEEDS}")
        object.__setattr__(self, "seeds", tuple(dict.fromkeys(self.seeds)))  # 1,1 is one replicate
        if self.cell_timeout is not None and self.cell_timeout < 0:
            raise UsageError("--cell-timeout must be >= 0 (0 = no limit)")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise UsageError(f"unknown device '{self.device}'; use auto, cpu or cuda")
        if self.workers < 0 or self.threads < 0 or self.gpus_per_cell < 0:
            raise UsageError("--workers, --threads and --gpus-per-cell must be >= 0")
        self._check_scale_out()
        object.__setattr__(self, "image_sizes", tuple(dict.fromkeys(self.image_sizes)))
        if any(not 1 <= s <= MAX_IMAGE_SIZE for s in self.image_sizes):
            raise UsageError(f"--image-size must be between 1 and {MAX_IMAGE_SIZE} px")
        for path in self.user_models:
            module, _, factory = path.partition(":")
            if not module or not factory:
                raise UsageError(f"bad --model '{path}': use module.path:factory")

    def _check_scale_out(self) -> None:
        from fcnprobe.executors import check_available  # cheap: imports neither dask nor ray

        check_available(self.executor)
        if self.address and self.executor == "local":
            raise UsageError("--address needs --executor dask or ray")
        if self.gpus_per_cell and self.executor != "ray":
            raise UsageError("--gpus-per-cell needs --executor ray")

    def resolved_workers(self, cells: int | None = None) -> int:
        """Processes to start: --workers (or one per core up to 4), capped at the cells and, locally, the cores."""
        return self.worker_cap(cells)[0]

    def worker_cap(self, cells: int | None = None) -> tuple[int, str | None]:
        """(workers, a note when an explicit --workers was lowered)."""
        cores = os.cpu_count() or 1
        want = self.workers or max(1, min(cores, 4))
        limits = [(cells, "cells to run")] if cells else []
        if self.executor == "local":
            limits.append((cores, "CPU cores"))
        got = min([want, *[n for n, _ in limits]])
        why = [what for n, what in limits if n == got and n < want]
        note = f"--workers {self.workers} capped at {got} ({why[0]})" if self.workers and why else None
        return max(1, got), note

    def resolved_timeout(self) -> float:
        """Seconds a cell may run (0 = no limit)."""
        return CELL_TIMEOUT_S[self.preset] if self.cell_timeout is None else float(self.cell_timeout)

    def resolved_threads(self) -> int:
        cores = os.cpu_count() or 1
        return self.threads or max(1, cores // self.resolved_workers())

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

