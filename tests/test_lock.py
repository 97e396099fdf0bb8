"""One writer per run directory: a live lock stops a second run; a stale one is taken over."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from fcnprobe import run

LOCK = ".fcnprobe.lock"


def _lock_by(tmp_path, pid: int) -> None:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / LOCK).write_text(json.dumps({"pid": pid, "host": platform.node()}))


@pytest.fixture
def live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_live_lock_refuses_and_stale_lock_is_taken_over(tmp_path, live_pid):
    from fcnprobe.errors import RunDirBusy
    from fcnprobe.lock import StaleLockWarning, acquire, release

    _lock_by(tmp_path, live_pid)
    with pytest.raises(RunDirBusy, match=f"pid {live_pid}"):
        acquire(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _lock_by(tmp_path, dead.pid)
    with pytest.warns(StaleLockWarning, match="stale"):
        path = acquire(tmp_path)
    assert json.loads(path.read_text())["pid"] == os.getpid()
    release(path)
    assert not path.exists()


def test_second_run_on_the_same_out_stops_with_one_line(tmp_path, live_pid, toy_probe, capsys):
    out = tmp_path / "run"
    _lock_by(out, live_pid)
    code = run.main(["toy", "--out", str(out), "--workers", "1", "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert code == run.EXIT_USAGE and err.count("\n") == 1 and "in use by another fcnprobe run" in err
    assert not list((out / "cells").glob("*.json"))  # it computed nothing


def test_sweep_releases_its_lock(tmp_path, toy_probe):
    from fcnprobe.lock import LOCK as NAME

    assert NAME == LOCK
    assert run.main(["toy", "--out", str(tmp_path), "--workers", "1", "--device", "cpu", "--no-progress"]) == 1
    assert not (tmp_path / LOCK).exists()
