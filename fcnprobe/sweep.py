"""Run probe cells on an executor, turning every outcome into a stored record.

* Cells run on an executor from ``fcnprobe.executors`` (local spawn pool, dask
  or ray), or in the calling process with ``workers=1`` and the local executor.
* Each record is written the moment it arrives, so an interrupt or a lost
  worker loses only unfinished cells; a re-run resumes (done cells are skipped).
  A cell whose dask/ray worker died is counted as lost, not recorded, and the
  sweep goes on; a broken local pool stops the sweep (``WorkerLost``).
* An exception, out-of-memory or a non-finite metric in a cell becomes a record
  with ``status="error"`` and the sweep goes on (timm's ``_try_run``, mteb).
* A cell that runs past ``--cell-timeout`` becomes an error record with
  ``error_type: Timeout``; on the local executor its worker is killed and
  replaced (``fcnprobe.pool``), in-process (``--workers 1``) an alarm stops it.
* One sweep per run directory (``fcnprobe.lock``); a directory made with other
  settings is refused unless ``overwrite``, which first removes the old records.
* Seeds derive from the cell key; threads are set explicitly per worker.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import math
import random
import time
import traceback
from typing import Any, Iterable

from fcnprobe.config import RunConfig
from fcnprobe.device import release_cuda, resolve_device
from fcnprobe.errors import CellTimeout, SweepInterrupted, WorkerLost
from fcnprobe.executors import CellExecutor, ExecutorSpec, create_executor, init_worker
from fcnprobe.probes.base import PROBES, Cell, CellContext, manifest_declarations
from fcnprobe.results import Record, RunStore
from fcnprobe.utils import error_label, one_line

__all__ = ["run_sweep", "plan", "execute_cell", "SweepSummary", "SweepInterrupted", "WorkerLost"]


@dataclasses.dataclass
class SweepSummary:
    cells: list[Cell]
    skipped: int = 0
    ok: int = 0
    failed: int = 0
    lost: list[str] = dataclasses.field(default_factory=list)  # 'cell_id: why' per cell lost with its worker
    errors: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (model, error) per failed cell
    notes: list[str] = dataclasses.field(default_factory=list)  # one line each for the user (caps, takeovers)

    @property
    def ran(self) -> int:
        return self.ok + self.failed


def _seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _non_finite(metrics: dict[str, Any]) -> str | None:
    """Name of the first metric holding NaN or inf, if any."""
    for name, v in metrics.items():
        vals = v if isinstance(v, (list, tuple)) else [v]
        if any(isinstance(x, float) and not math.isfinite(x) for x in vals):
            return name
    return None


def _fail(rec: Record, exc: BaseException, trace: bool = True) -> None:
    rec.status, rec.error, rec.error_type = "error", one_line(exc, 2000), error_label(exc)
    if trace:
        rec.metrics["traceback"] = traceback.format_exc(limit=6)[-4000:]


def execute_cell(cell: Cell, module: str, ctx: CellContext, alarm_s: float = 0.0) -> tuple[dict, dict]:
    """Run one cell (in a worker or in-process); never raises an Exception.

    ``alarm_s`` > 0 stops the cell with a Timeout record after that many seconds (main thread only).
    """
    import importlib

    from fcnprobe import provenance
    from fcnprobe.pool import alarm
    from fcnprobe.user import check_buildable, ensure_registered, is_user_model

    importlib.import_module(module)  # registers the probe in a fresh worker
    rec = Record(cell.probe, cell.model, cell.task, cell.p, cell.seed, cell.cell_id)
    arrays: dict = {}
    start = time.perf_counter()
    try:
        with alarm(alarm_s):
            ctx.cell_dir.mkdir(parents=True, exist_ok=True)  # a cluster worker may not see the driver's mkdir
            if is_user_model(cell.model):  # a fresh worker has not registered it yet
                ensure_registered(cell.model)
                check_buildable(cell.model)  # a factory that cannot build fails every cell, whatever the probe
            _seed_everything(cell.torch_seed)
            out = PROBES.get(cell.probe).run_cell(cell, ctx)
        rec.metrics, arrays = dict(out.metrics), dict(out.arrays)
        bad = _non_finite(rec.metrics)
        if bad:
            rec.status, rec.error = "error", f"NonFiniteMetric: '{bad}' is NaN or infinite"
            rec.error_type = "NonFiniteMetric"
    except Exception as exc:  # failures are data
        _fail(rec, exc)
        release_cuda(ctx.device)
    rec.wall_time_s = time.perf_counter() - start
    rec.provenance = provenance.collect(ctx.device)
    return rec.to_dict(), arrays


def failure_records(cells: list[Cell], exc: BaseException, device: str) -> list[dict]:
    """One error record per cell of a task that failed as a whole (a timeout of a cell or of a group)."""
    from fcnprobe import provenance

    out, prov = [], provenance.collect(_driver_device(device))  # the same for every member
    for cell in cells:
        rec = Record(cell.probe, cell.model, cell.task, cell.p, cell.seed, cell.cell_id)
        _fail(rec, exc, trace=False)
        rec.wall_time_s = float(getattr(exc, "seconds", 0.0))
        rec.provenance = dict(prov)
        out.append(rec.to_dict())
    return out


def plan(probe_names: Iterable[str], cfg: RunConfig) -> dict[str, list[Cell]]:
    """The cells of each probe, in order, for this config (no filtering of done cells)."""
    return {name: PROBES.get(name).plan(cfg) for name in probe_names}


def _manifest(store: RunStore, cfg: RunConfig, device: str, probe_names: list[str], dropped: set[str]) -> None:
    from fcnprobe import provenance
    from fcnprobe.rundir import settings_dict
    from fcnprobe.train import engine_options

    old = store.read_manifest()
    settings = {k: v for k, v in old.get("settings", {}).items() if k not in dropped}
    versions = {k: v for k, v in old.get("versions", {}).items() if k not in dropped}
    for name in probe_names:
        settings[name] = settings_dict(PROBES.get(name).settings(cfg.preset))
        versions[name] = PROBES.get(name).version
    probes = (set(old.get("probes", [])) - dropped) | set(probe_names)
    store.write_manifest({"config": cfg.to_dict(), "device": device, "settings": settings, "versions": versions,
                          "cell_timeout_s": cfg.resolved_timeout(), "probes": sorted(probes),
                          "engine": engine_options(),  # the training speed-ups in force (fcnprobe.train)
                          **manifest_declarations(probe_names, old),  # metrics, model catalogue: for the report
                          "provenance": provenance.collect(_driver_device(device))})


def _driver_device(device: str) -> str:
    """The device this process can describe: a cluster driver may have no GPU of its own."""
    import torch

    return device if not device.startswith("cuda") or torch.cuda.is_available() else "cpu"


def run_sweep(probe_names: list[str], cfg: RunConfig, progress: bool = True) -> SweepSummary:
    """Run (or resume) the cells of ``probe_names`` into ``cfg.out``; probes run in the given order."""
    from fcnprobe.lock import run_lock
    from fcnprobe.rundir import check_filters, check_out
    from fcnprobe.user import registered

    device = _device(cfg)
    with registered(cfg.user_models):  # probes may read MODELS.meta of a user model
        cells_by_probe = plan(probe_names, cfg)
        summary = SweepSummary([c for cs in cells_by_probe.values() for c in cs])
        check_filters(probe_names, cfg, summary.cells)
        if cfg.dry_run:
            return summary
        with run_lock(check_out(cfg.out)):
            _sweep_locked(probe_names, cfg, device, summary, progress)
    return summary


def _sweep_locked(probe_names: list[str], cfg: RunConfig, device: str, summary: SweepSummary,
                  progress: bool) -> None:
    from fcnprobe.rundir import check_compatible

    store = RunStore(cfg.out)
    notes, dropped = check_compatible(store, cfg, probe_names)
    summary.notes += notes
    _manifest(store, cfg, device, probe_names, dropped)
    done = set() if cfg.overwrite else store.done_ids(cfg.rerun_failed)
    todo = [c for c in summary.cells if c.cell_id not in done]
    summary.skipped = len(summary.cells) - len(todo)
    try:
        _execute(todo, cfg, device, store, summary, progress)
    finally:
        with contextlib.suppress(OSError):  # a full disk: the records are the truth, the table is derived
            store.write_table()


def _device(cfg: RunConfig) -> str:
    """The cells' device; on a dask/ray cluster an explicit cuda is checked by the workers."""
    if cfg.executor != "local" and cfg.device.startswith("cuda"):
        return cfg.device
    return resolve_device(cfg.device)


def _context(cell: Cell, cfg: RunConfig, device: str, store: RunStore) -> CellContext:
    probe = PROBES.get(cell.probe)
    return CellContext(device, cfg.preset, probe.settings(cfg.preset), store.root.resolve(),
                       store.cell_dir(cell.cell_id).resolve())


def _store(store: RunStore, summary: SweepSummary, result: tuple[dict, dict]) -> None:
    rec = Record.from_dict(result[0])
    store.write_record(rec, result[1])
    summary.ok += rec.ok
    summary.failed += not rec.ok
    if not rec.ok:
        summary.errors.append((rec.model, rec.error or ""))


def _execute(todo: list[Cell], cfg: RunConfig, device: str, store: RunStore,
             summary: SweepSummary, progress: bool) -> None:
    from tqdm.auto import tqdm

    workers, note = cfg.worker_cap(len(todo))
    threads, timeout = cfg.resolved_threads(), cfg.resolved_timeout()
    summary.notes += [note] if note and todo else []
    bar = tqdm(total=len(todo), desc="cells", unit="cell", disable=not progress or None)
    try:
        if not todo:
            return
        if cfg.executor == "local" and (workers == 1 or len(todo) <= 1):
            init_worker(threads, device)
            for cell in todo:
                ctx = _context(cell, cfg, device, store)
                _store(store, summary, execute_cell(cell, _module(cell), ctx, timeout))
                bar.update()
        else:
            spec = ExecutorSpec(workers, _remote_threads(cfg, threads), device, cfg.address, cfg.gpus_per_cell,
                                timeout if cfg.executor == "local" else 0.0)
            with create_executor(cfg.executor, spec) as ex:
                _execute_on(ex, todo, cfg, device, store, summary, bar)
    except KeyboardInterrupt:
        raise SweepInterrupted(f"interrupted: {summary.ran} cells finished and kept in {store.root}") from None
    finally:
        bar.close()


def _remote_threads(cfg: RunConfig, threads: int) -> int:
    """This machine's cores say nothing about a remote cluster's: 1 thread there unless --threads."""
    return (cfg.threads or 1) if cfg.address else threads


def _module(cell: Cell) -> str:
    return type(PROBES.get(cell.probe)).__module__


def _execute_on(ex: CellExecutor, todo: list[Cell], cfg: RunConfig, device: str, store: RunStore,
                summary: SweepSummary, bar: Any) -> None:
    # probes run one after another: a later probe may read an earlier one's artifacts
    for probe in dict.fromkeys(c.probe for c in todo):
        futs = {ex.submit(execute_cell, c, _module(c), _context(c, cfg, device, store)): [c]
                for c in todo if c.probe == probe}
        pending = dict(futs)
        for fut in cf.as_completed(futs):
            _collect(ex, fut, pending, store, summary, device)
            bar.update()


def _collect(ex: CellExecutor, fut: cf.Future, pending: dict[cf.Future, list[Cell]], store: RunStore,
             summary: SweepSummary, device: str) -> None:
    """Store one finished future; a lost worker costs only its own cells (or stops a local pool).

    A future stands for a list of cells: one today; a group trained together later. A timeout
    fails the whole group, and each member gets its own Timeout record.
    """
    cells = pending.pop(fut)
    cell = cells[0]
    try:
        result = fut.result()
    except CellTimeout as exc:
        for rec in failure_records(cells, exc, device):
            _store(store, summary, (rec, {}))
        return
    except Exception as exc:
        if not ex.is_lost(exc):
            raise
        if ex.stops_on_loss:
            _drain(pending, store, summary)
            raise WorkerLost(f"a worker process died; {summary.ran} finished cells are kept in "
                             f"{store.root}; run the same command again to resume") from None
        summary.lost.append(f"{cell.cell_id}: {one_line(exc, 2000)}")
        return
    _store(store, summary, result)


def _drain(pending: dict[cf.Future, list[Cell]], store: RunStore, summary: SweepSummary) -> None:
    """Keep every cell that finished before the pool broke."""
    for fut in list(pending):
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            _store(store, summary, fut.result())
            del pending[fut]
