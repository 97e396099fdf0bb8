"""Where the sweep's cells run: three executors behind one ``concurrent.futures`` interface.

* ``local`` (default): ``fcnprobe.pool.KillablePool``, spawn workers that can be
  killed one at a time (per-cell timeout) and that die with the driver.
  (``--workers 1`` runs the cells in the calling process; the sweep does that
  itself, with no executor, and enforces the timeout with an alarm.)
* ``dask``: a distributed ``Client(address)``; with no address, a
  ``LocalCluster(n_workers=workers, threads_per_worker=1, processes=True)``.
* ``ray``: a remote function with per-task ``num_cpus`` / ``num_gpus`` (a fraction
  such as 0.25 packs four cells on one GPU), wrapped as futures with
  ``ObjectRef.future()``; with no address, ``ray.init(num_cpus=workers * threads)``.

Every executor sets the torch threads of its workers explicitly. ``execute_cell``
never raises, so a dask or ray future that fails means its worker was lost
(killed, out of memory, node gone): the sweep records nothing for that cell, so
a re-run resumes it, and goes on. A broken local pool cannot go on: the sweep
stops, keeps its records, and a re-run resumes. dask and ray already re-run a
task whose worker died (``distributed.scheduler.allowed-failures``, Ray's
``max_retries``); a cell reaches the sweep as lost only when those retries are
spent.

On GPUs, dask gives each cell ``--device`` as is: run one dask worker per GPU
(``CUDA_VISIBLE_DEVICES``, or dask-cuda's ``LocalCUDACluster``); Ray assigns GPUs itself.

References: distributed's ``Client.submit`` and ``Future.add_done_callback``
(https://distributed.dask.org/en/stable/api.html), Ray resources and
``ObjectRef.future`` (https://docs.ray.io/en/latest/ray-core/scheduling/resources.html).
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import importlib
import importlib.util
import logging
import multiprocessing as mp
import os
import signal
import sys
from types import ModuleType
from typing import Any, Callable

from fcnprobe.errors import UsageError
from fcnprobe.registry import Registry

EXECUTORS: Registry = Registry("executor")


@dataclasses.dataclass(frozen=True)
class ExecutorSpec:
    """What an executor needs to start."""

    workers: int  # cells that run at once (local processes, dask workers, ray CPU slots)
    threads: int  # torch threads per cell; also ray's num_cpus per task
    device: str  # resolved device the cells run on
    address: str | None = None  # an existing cluster to join; None = start one here
    gpus_per_cell: float = 0.0  # ray num_gpus per task; 0 = 1 on CUDA, none on CPU
    timeout_s: float = 0.0  # per-task limit; local only (dask/ray cannot kill one task's process); 0 = none


def init_worker(threads: int, device: str) -> None:
    """Per-process setup: explicit threads, flush denormals on CPU, leave Ctrl-C to the driver."""
    _set_threads(threads, device)
    if mp.current_process().name != "MainProcess":
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _set_threads(threads: int, device: str) -> None:
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    if device == "cpu":
        torch.set_flush_denormal(True)


def in_worker(threads: int, device: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` in a dask or ray worker after setting its torch threads."""
    _set_threads(threads, device)
    return fn(*args)


def check_available(name: str) -> None:
    """Unknown executor -> did-you-mean; missing library -> the install hint (imports nothing)."""
    meta = EXECUTORS.meta(name)
    if meta["module"] and importlib.util.find_spec(meta["module"]) is None:
        raise UsageError(f"--executor {name} needs {meta['module']}; "
                         f"install it with: pip install 'fcnprobe[{meta['extra']}]'")


def require(module: str, extra: str) -> ModuleType:
    """Import an optional dependency, or a UsageError with the one-line install hint."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UsageError(f"--executor {extra} needs {module} ({exc}); "
                         f"install it with: pip install 'fcnprobe[{extra}]'") from None


class CellExecutor:
    """A started executor: ``submit(fn, *args) -> Future``, then ``close()``."""

    stops_on_loss = False  # True when one lost worker breaks the whole executor

    def __init__(self, spec: ExecutorSpec) -> None:
        self.spec = spec

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        raise NotImplementedError

    def is_lost(self, exc: BaseException) -> bool:
        """Whether a future's exception means its worker died (not a bug to surface)."""
        return isinstance(exc, Exception)

    def close(self) -> None:
        """Cancel what is queued and stop whatever this executor started."""

    def __enter__(self) -> "CellExecutor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@EXECUTORS.register("local", module=None, extra=None)
class LocalExecutor(CellExecutor):
    """Spawn workers (``KillablePool``); each runs ``init_worker`` once; a timed-out task's worker is replaced."""

    stops_on_loss = True

    def __init__(self, spec: ExecutorSpec) -> None:
        from fcnprobe.pool import KillablePool

        super().__init__(spec)
        if spec.address:
            raise UsageError("--address needs --executor dask or ray")
        self._pool = KillablePool(spec.workers, init_worker, (spec.threads, spec.device), spec.timeout_s)

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        return self._pool.submit(fn, *args)

    def is_lost(self, exc: BaseException) -> bool:
        from fcnprobe.pool import WorkerDied

        return isinstance(exc, WorkerDied)

    def close(self) -> None:
        """Cancel queued cells and kill the workers now (a running cell is abandoned, not recorded)."""
        self._pool.close()


@EXECUTORS.register("dask", module="distributed", extra="dask")
class DaskExecutor(CellExecutor):
    """distributed's Client on a given scheduler or on a LocalCluster started here.

    ``Client.get_executor()`` would be the obvious bridge, but its ``_cascade_future``
    can raise inside the event loop when a worker dies while a result is being
    gathered, leaving the concurrent future unresolved forever (distributed
    2026.8; seen in 2 of 5 runs of the lost-worker test). So each dask future
    settles its own ``concurrent.futures.Future`` from a done-callback.
    """

    def __init__(self, spec: ExecutorSpec) -> None:
        super().__init__(spec)
        distributed = require("distributed", "dask")
        self._cluster = None
        if not spec.address:
            self._cluster = _local_cluster(distributed, spec.workers)
        self._client = distributed.Client(spec.address or self._cluster)
        self._futures: list = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        task = self._client.submit(in_worker, self.spec.threads, self.spec.device, fn, *args, pure=False)
        out: cf.Future = cf.Future()
        task.add_done_callback(lambda done: _settle(done, out))
        self._futures.append(task)
        return out

    def close(self) -> None:
        self._client.cancel([f for f in self._futures if not f.done()])
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def _local_cluster(distributed: ModuleType, workers: int) -> Any:
    """One single-threaded dask worker process per cell slot, spawned without dask's malloc settings.

    distributed sets ``MALLOC_TRIM_THRESHOLD_=65536`` in its workers' environment
    (and, as a side effect, in this process's). That turns off glibc's dynamic
    mmap threshold, and torch training ran 1.6-1.7x slower in such a worker
    (60 AdamW steps of fcn: 2.7-3.0 s against 1.6-1.8 s; same numbers).
    """
    import dask

    environ = dask.config.get("distributed.nanny.pre-spawn-environ", {})
    kept = {k: v for k, v in environ.items() if not k.startswith("MALLOC_")}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": kept}):
        return distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                        dashboard_address=None)


def _settle(task: Any, out: cf.Future) -> None:
    """Copy a finished dask future's outcome (result, KilledWorker, cancellation) to ``out``."""
    try:
        result = task.result()
    except BaseException as exc:  # the sweep decides what a failure means
        if not out.done():
            out.set_exception(exc)
        return
    if not out.done():
        out.set_result(result)


@EXECUTORS.register("ray", module="ray", extra="ray")
class RayExecutor(CellExecutor):
    """A Ray remote function per cell with ``num_cpus=threads`` and ``num_gpus`` per task."""

    def __init__(self, spec: ExecutorSpec) -> None:
        super().__init__(spec)
        self._ray = ray = require("ray", "ray")
        self._started = not ray.is_initialized()  # a session the caller opened stays open
        if self._started:
            ray.init(**self._init_args(spec))
        gpus = spec.gpus_per_cell or (1.0 if spec.device.startswith("cuda") else 0.0)
        try:  # an infeasible request would leave every cell pending forever
            check_feasible(ray.cluster_resources(), spec.threads, gpus)
        except UsageError:
            self.close()
            raise
        self._remote = ray.remote(in_worker).options(num_cpus=spec.threads, num_gpus=gpus)
        self._refs: list = []

    @staticmethod
    def _init_args(spec: ExecutorSpec) -> dict[str, Any]:
        quiet = {"logging_level": logging.WARNING, "include_dashboard": False}
        if spec.address:
            return {"address": spec.address, **quiet}
        # local workers import the same modules as this process (test helpers, user models)
        path = os.pathsep.join([p for p in sys.path if p and os.path.isdir(p)])
        return {"num_cpus": spec.workers * spec.threads, "runtime_env": {"env_vars": {"PYTHONPATH": path}},
                **quiet}

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        ref = self._remote.remote(self.spec.threads, self.spec.device, fn, *args)
        fut = ref.future()
        self._refs.append((ref, fut))
        return fut

    def close(self) -> None:
        for ref, fut in getattr(self, "_refs", ()):
            if not fut.done():
                try:
                    self._ray.cancel(ref, force=True)
                except Exception:  # finished or gone meanwhile: nothing to cancel
                    pass
        if self._started:
            self._ray.shutdown()


def check_feasible(resources: dict[str, float], cpus: float, gpus: float) -> None:
    """UsageError when a Ray cluster (``ray.cluster_resources()``) cannot run even one cell."""
    for kind, need, flag in (("CPU", cpus, "--threads"), ("GPU", gpus, "--device / --gpus-per-cell")):
        have = resources.get(kind, 0.0)
        if need > have:
            raise UsageError(f"each cell asks Ray for {need:g} {kind} but the cluster has {have:g}; check {flag}")


def create_executor(name: str, spec: ExecutorSpec) -> CellExecutor:
    """Start the executor registered as ``name`` (unknown names get a did-you-mean)."""
    return EXECUTORS.get(name)(spec)


def list_executors() -> list[str]:
    return EXECUTORS.names()
