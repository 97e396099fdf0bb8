"""Faults: a worker killed mid-sweep and a Ctrl-C lose no finished record, and a re-run completes the sweep.

(A dask worker lost mid-sweep is tested in test_executors.py, on the same cluster as the equality test.)

The ``toy_fault`` probe's 'die' cell waits until the other cells' records are
on disk, then kills its worker with ``os._exit(1)`` once per armed run
directory; ``toy``'s 'slow' cell sleeps ``TOY_SLEEP`` seconds so a SIGINT lands
mid-cell. Records are compared with an uninterrupted run of the same config.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fcnprobe.config import RunConfig
from fcnprobe.results import load_run
from fcnprobe.sweep import WorkerLost, run_sweep

TESTS = Path(__file__).parent
COLUMNS = ["cell_id", "status", "error", "value_frac"]


def _records(out) -> list[tuple]:
    df = load_run(out).sort_values("cell_id")
    return [tuple(r) for r in df[COLUMNS].astype(object).where(df[COLUMNS].notna(), None).itertuples(index=False)]


def _run(out, probe: str, armed: bool = False, **kw):
    Path(out).mkdir(parents=True, exist_ok=True)
    if armed:  # the 'die' cell waits for the four others, then kills its worker
        (Path(out) / "arm.marker").write_text("wait")
    cfg = RunConfig(out=str(out), device="cpu", threads=1, **{"workers": 2, **kw})
    return run_sweep([probe], cfg, progress=False)


@pytest.fixture
def reference(tmp_path, toy_probe):
    """Records of uninterrupted in-process runs (unarmed: nothing dies)."""
    return lambda probe: (_run(tmp_path / f"ref_{probe}", probe, workers=1), _records(tmp_path / f"ref_{probe}"))[1]


def test_killed_local_worker_keeps_finished_records_and_rerun_completes(tmp_path, reference):
    out = tmp_path / "run"
    with pytest.raises(WorkerLost, match="run the same command again"):
        _run(out, "toy_fault", armed=True)
    kept = _records(out)
    assert len(kept) == 4 and all(r[1] == "ok" for r in kept)  # the four finished cells, not the dead one
    again = _run(out, "toy_fault")
    assert (again.ran, again.skipped) == (1, 4)
    assert _records(out) == reference("toy_fault")


def _cli(out: Path, sleep: str, workers: str = "2") -> subprocess.Popen:
    env = {**os.environ, "TOY_SLEEP": sleep, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    cmd = [sys.executable, str(TESTS / "toy_probe.py"), "toy", "--out", str(out), "--workers", workers,
           "--threads", "1", "--device", "cpu", "--no-progress"]
    # a shell's background job ignores SIGINT and Python would inherit that: restore the default
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for(out: Path, count: int, proc: subprocess.Popen, timeout_s: float = 90) -> None:
    end = time.monotonic() + timeout_s
    while len(list((out / "cells").glob("*.json"))) < count:
        assert proc.poll() is None and time.monotonic() < end, proc.communicate()
        time.sleep(0.1)


@pytest.mark.slow
def test_sigint_exits_130_keeps_records_and_resume_matches_uninterrupted(tmp_path, reference):
    out = tmp_path / "run"
    proc = _cli(out, sleep="120")
    _wait_for(out, 4, proc)  # four quick cells stored; the slow one is sleeping
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert len(_records(out)) == 4
    resumed = _cli(out, sleep="0", workers="1")
    stdout, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err  # only the slow cell runs, and it is ok
    assert "1 ok, 0 failed, 4 already done" in stdout
    assert _records(out) == reference("toy")
