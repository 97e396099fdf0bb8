"""One writer per run directory: ``OUT/.fcnprobe.lock`` holds the writer's pid and host.

A second sweep on the same ``--out`` stops with a one-line ``RunDirBusy``. A lock
whose pid is dead on this host (a run killed with -9) is stale: it is taken over
with a warning. A lock from another host cannot be checked and is honoured.
The lock file is created with ``O_CREAT | O_EXCL``, so two starts cannot both win.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import warnings
from pathlib import Path
from typing import Iterator

from fcnprobe.errors import RunDirBusy

LOCK = ".fcnprobe.lock"


class StaleLockWarning(UserWarning):
    """A lock left by a dead process was taken over."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _holder(path: Path) -> dict | None:
    """The lock's content, or None when it is gone or unreadable (half-written counts as stale)."""
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def _create(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump({"pid": os.getpid(), "host": platform.node()}, f)
    return True


def acquire(root: Path) -> Path:
    """Take the lock of run directory ``root`` (created if needed); RunDirBusy if a live run holds it."""
    path = Path(root) / LOCK
    for _ in range(3):  # a stale lock removed by two takers at once: the loser tries again
        if _create(path):
            return path
        held = _holder(path)
        if held is None:
            continue
        pid, host = held.get("pid"), held.get("host")
        if host not in (None, platform.node()):
            raise RunDirBusy(f"{root} is in use by pid {pid} on {host} (lock {path}); "
                             "wait for it, or delete the lock if that run is gone")
        if isinstance(pid, int) and pid != os.getpid() and _alive(pid):
            raise RunDirBusy(f"{root} is in use by another fcnprobe run (pid {pid}); "
                             "wait for it or choose another --out")
        warnings.warn(f"taking over the stale lock of {root} (pid {pid} is gone)", StaleLockWarning, stacklevel=2)
        path.unlink(missing_ok=True)
    raise RunDirBusy(f"could not lock {root}: {path} keeps reappearing")


def release(path: Path) -> None:
    """Remove the lock if this process still holds it."""
    held = _holder(path)
    if held is not None and held.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def run_lock(root: Path) -> Iterator[Path]:
    """``with run_lock(out):`` hold the run directory for the duration of a sweep."""
    path = acquire(root)
    try:
        yield path
    finally:
        release(path)
