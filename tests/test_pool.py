"""The killable pool when workers cannot start: every task fails (it used to hang the sweep)."""
from __future__ import annotations

import time

from fcnprobe.pool import KillablePool, WorkerDied


def test_workers_that_cannot_start_fail_every_task_instead_of_hanging():
    pool = KillablePool(1, int, ("not a number",))  # the initializer raises in every worker
    try:
        first = pool.submit(time.sleep, 0)
        assert isinstance(first.exception(timeout=120), WorkerDied)
        later = pool.submit(time.sleep, 0)  # after the pool broke: failed at once, never queued
        assert later.done() and isinstance(later.exception(), WorkerDied)
    finally:
        pool.close()
