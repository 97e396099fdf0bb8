"""A local process pool whose workers can be killed one at a time: per-cell timeouts, no orphans.

``concurrent.futures.ProcessPoolExecutor`` cannot stop one running task: the only
way out of a hanging cell is to break the whole pool. Here each worker is a
spawn process with its own pipe, driven by one manager thread in the caller:

* a task that runs longer than ``timeout_s`` has its worker killed and replaced;
  its future fails with ``CellTimeout`` (the sweep turns that into error records,
  one per cell of the task, so a group of cells trained together shares it);
* a worker that dies on its own fails its future with ``WorkerDied``;
* a worker exits when the driver dies: ``PR_SET_PDEATHSIG`` (Linux) sends it
  SIGKILL, a watchdog thread polls ``os.getppid()``, and a closed pipe ends its loop.

The timeout clock starts when a worker has unpacked the task, so a worker's
start-up (importing torch, the probe's modules) is not counted. ``alarm`` is the in-process fallback
for ``--workers 1``: SIGALRM interrupts Python code between operations, though
not a single C call that never returns.

Reference: ``multiprocessing.connection.wait`` over pipes and process sentinels
(https://docs.python.org/3/library/multiprocessing.html#multiprocessing.connection.wait).
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import ctypes
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterator

from fcnprobe.errors import CellTimeout

POLL_S = 0.05  # manager wake-up period: how late a timeout may be noticed
WATCHDOG_S = 0.5  # how often a worker checks that its driver is alive
START_GRACE_S = 120.0  # extra time to unpickle a task (imports) before its clock starts


class WorkerDied(Exception):
    """A worker process exited while it ran a task (killed, out of memory, os._exit)."""


def _die_with_parent(parent: int) -> None:
    """Exit this worker when the driver goes, however it goes."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the driver died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCHDOG_S)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="fcnprobe-watchdog").start()


def _worker(conn: mpc.Connection, parent: int, init: Callable[..., None], initargs: tuple) -> None:
    """Worker loop: announce readiness, then run tasks until None or a closed pipe."""
    _die_with_parent(parent)
    init(*initargs)
    conn.send(("ready", None))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        fn, args = task  # unpickling imported fn's module: only now does the task's clock start
        conn.send(("start", None))
        try:
            conn.send(("ok", fn(*args)))
        except Exception as exc:  # the future carries it; fall back to text if it does not pickle
            try:
                conn.send(("exc", exc))
            except Exception:
                conn.send(("exc", RuntimeError(f"{type(exc).__name__}: {exc}")))


class _Slot:
    """One worker process, its pipe, and the task it runs."""

    def __init__(self, ctx: Any, init: Callable[..., None], initargs: tuple) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, os.getpid(), init, initargs), daemon=True)
        self.proc.start()
        child.close()
        self.ready, self.future, self.started, self.begun = False, None, 0.0, False

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=5)
        self.conn.close()


def _died(slot: _Slot) -> WorkerDied:
    slot.proc.join(timeout=2)  # a closed pipe can be seen before the exit code is
    return WorkerDied(f"a worker exited with code {slot.proc.exitcode}")


class KillablePool:
    """``submit(fn, *args) -> Future`` on ``workers`` spawn processes; see the module docstring."""

    def __init__(self, workers: int, init: Callable[..., None], initargs: tuple = (),
                 timeout_s: float = 0.0) -> None:
        self._ctx = mp.get_context("spawn")
        self._init, self._initargs, self.timeout_s = init, initargs, timeout_s
        self._queue: collections.deque = collections.deque()
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._slots = [self._new_slot() for _ in range(workers)]
        self._failed_starts = 0  # workers that died before they were ready
        self._broken: Exception | None = None  # set once workers cannot start: every task fails with it
        self._thread = threading.Thread(target=self._manage, daemon=True, name="fcnprobe-pool")
        self._thread.start()

    def _new_slot(self) -> _Slot:
        return _Slot(self._ctx, self._init, self._initargs)

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        fut: cf.Future = cf.Future()
        if self._broken is not None:
            fut.set_exception(self._broken)
            return fut
        with self._lock:
            self._queue.append((fut, fn, args))
        return fut

    def _manage(self) -> None:
        while not self._stop.is_set():
            self._assign()
            waitables = [s.conn for s in self._slots] + [s.proc.sentinel for s in self._slots]
            ready = set(mpc.wait(waitables, timeout=POLL_S))
            for i, slot in enumerate(list(self._slots)):
                if slot.conn in ready:
                    self._receive(i, slot)
                elif slot.proc.sentinel in ready:
                    self._replace(i, _died(slot))
            self._check_timeouts()

    def _assign(self) -> None:
        for slot in self._slots:
            if slot.ready and slot.future is None:
                with self._lock:
                    task = self._queue.popleft() if self._queue else None
                if task is None:
                    return
                fut, fn, args = task
                if fut.set_running_or_notify_cancel():
                    slot.future, slot.started, slot.begun = fut, time.monotonic(), False
                    slot.conn.send((fn, args))

    def _receive(self, i: int, slot: _Slot) -> None:
        try:
            kind, value = slot.conn.recv()
        except (EOFError, OSError):
            self._replace(i, _died(slot))
            return
        if kind in ("ready", "start"):
            slot.ready = True
            slot.started, slot.begun = time.monotonic(), kind == "start"
            return
        fut, slot.future = slot.future, None
        if fut is not None:
            fut.set_exception(value) if kind == "exc" else fut.set_result(value)

    def _check_timeouts(self) -> None:
        if self.timeout_s <= 0:
            return
        now = time.monotonic()
        for i, slot in enumerate(list(self._slots)):
            limit = self.timeout_s if slot.begun else self.timeout_s + START_GRACE_S
            if slot.future is not None and now - slot.started > limit:
                self._replace(i, CellTimeout(self.timeout_s))

    def _replace(self, i: int, why: Exception) -> None:
        """Kill slot ``i``, fail its task with ``why``, and start a fresh worker in its place."""
        slot = self._slots[i]
        slot.kill()
        if slot.future is not None and not slot.future.done():
            slot.future.set_exception(why)
        self._failed_starts += not slot.ready
        if self._failed_starts > 2 * len(self._slots):  # workers cannot even start: fail, do not loop
            self._break(WorkerDied(f"workers fail to start ({why})"))
            return
        self._slots[i] = self._new_slot()

    def _break(self, why: Exception) -> None:
        """Fail every queued and running task with ``why`` and stop managing: no task may wait forever."""
        self._broken = why
        with self._lock:
            while self._queue:
                self._queue.popleft()[0].set_exception(why)
        for slot in self._slots:
            if slot.future is not None and not slot.future.done():
                slot.future.set_exception(why)
        self._stop.set()

    def close(self) -> None:
        """Stop now: queued tasks are cancelled, running ones abandoned, every worker killed."""
        self._stop.set()
        self._thread.join(timeout=10)
        with self._lock:
            while self._queue:
                self._queue.popleft()[0].cancel()
        for slot in self._slots:
            with contextlib.suppress(OSError, ValueError):
                slot.conn.send(None)
            slot.kill()
            if slot.future is not None and not slot.future.done():
                slot.future.cancel() or slot.future.set_exception(WorkerDied("the pool was closed"))


@contextlib.contextmanager
def alarm(seconds: float) -> Iterator[None]:
    """Raise ``CellTimeout`` in this (main) thread after ``seconds``; a no-op elsewhere or for 0."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def fire(signum: int, frame: Any) -> None:
        raise CellTimeout(seconds)

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)  # fires again each second if a probe swallows it
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
