"""Faults: a worker killed mid-sweep and a Ctrl-C lose no finished record, and a re-run completes the sweep.

(A dask worker lost mid-sweep is tested in test_executors.py, on the same cluster as the equality test.)

The ``toy_fault`` probe's 'die' cell waits until the other cells' records are
on disk, then kills its worker with ``os._exit(1)`` once per armed run
directory; ``toy``'s 'slow' cell sleeps ``TOY_SLEEP`` seconds so a SIGINT lands
mid-cell. Records are compared with an uninterrupted run of the same config.
"""
from __future__ import annotations

import errno
import json
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


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out.update(kids)
        todo += kids
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_sigkill_of_the_driver_leaves_no_worker_behind(tmp_path):
    out = tmp_path / "run"
    proc = _cli(out, sleep="120")
    _wait_for(out, 1, proc)  # the workers are up and running cells
    workers = _descendants(proc.pid)
    assert workers, "no worker processes found"
    proc.kill()
    proc.wait()
    end = time.monotonic() + 5
    while any(_alive(p) for p in workers) and time.monotonic() < end:
        time.sleep(0.1)
    survivors = [p for p in workers if _alive(p)]
    for p in survivors:  # do not leave them to the next test
        os.kill(p, signal.SIGKILL)
    assert not survivors, f"{len(survivors)} workers outlived the driver by 5 s"


def _main(capsys, *args: str) -> tuple[int, str]:
    from fcnprobe import run

    code = run.main(list(args))
    return code, capsys.readouterr().err


TOY = ("toy", "--workers", "1", "--device", "cpu", "--no-progress")


def test_out_that_is_a_file_is_one_line_exit_2(tmp_path, toy_probe, capsys):
    (tmp_path / "f").write_text("x")
    code, err = _main(capsys, *TOY, "--out", str(tmp_path / "f"))
    assert code == 2 and err.count("\n") == 1 and "is an existing file" in err and "Traceback" not in err


def test_read_only_file_system_is_one_line_exit_2(tmp_path, toy_probe, capsys, monkeypatch):
    def refuse(self, *a, **k):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    code, err = _main(capsys, *TOY, "--out", str(tmp_path / "ro"))
    assert code == 2 and err.count("\n") == 1 and "Read-only file system" in err and str(tmp_path / "ro") in err


def _full_disk_after(monkeypatch, writes: int) -> None:
    """Every atomic write after the first ``writes`` fails with ENOSPC."""
    import fcnprobe.results as results

    real, count = results.atomic_write_text, [0]

    def write(path, text):
        count[0] += 1
        if count[0] > writes:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, text)

    monkeypatch.setattr(results, "atomic_write_text", write)


def test_full_disk_keeps_records_exits_1_in_one_line(tmp_path, toy_probe, capsys, monkeypatch):
    _full_disk_after(monkeypatch, 3)  # the manifest and two records
    code, err = _main(capsys, *TOY, "--out", str(tmp_path / "r"))
    assert code == 1 and err.count("\n") == 1 and "No space left on device" in err, err
    assert "2 records are kept" in err and "Traceback" not in err
    assert len(_records(tmp_path / "r")) == 2


def test_full_disk_before_any_record_exits_2_and_debug_shows_traceback(tmp_path, toy_probe, capsys, monkeypatch):
    _full_disk_after(monkeypatch, 0)
    monkeypatch.setenv("FCNPROBE_DEBUG", "1")
    code, err = _main(capsys, *TOY, "--out", str(tmp_path / "r"))
    assert code == 2 and "Traceback" in err and err.strip().splitlines()[-1].startswith("fcnprobe: error: cannot write")


def test_truncated_manifest_is_rebuilt_with_a_warning_and_the_run_resumes(tmp_path, toy_probe, capsys):
    out = tmp_path / "r"
    _main(capsys, *TOY, "--out", str(out))
    manifest = out / "manifest.json"
    manifest.write_text(manifest.read_text()[:40])
    with pytest.warns(UserWarning, match="manifest.json is damaged .* rebuilt from the cell records"):
        code, err = _main(capsys, *TOY, "--out", str(out))
    assert code == 0 and "Traceback" not in err  # all five cells were found done: nothing re-ran
    assert "toy" in json.loads(manifest.read_text())["probes"]
    assert len(_records(out)) == 5


@pytest.mark.parametrize("damage, reason", [
    (lambda d: d.update(metrics={}), "no metrics"),
    (lambda d: d.update(params=None), "'params' is NoneType"),
    (lambda d: d["metrics"].update(value_frac="high"), "metric 'value_frac' holds str"),
    (lambda d: None, "(char "),  # truncated JSON
])
def test_invalid_cell_files_are_listed_and_the_rest_still_load(tmp_path, toy_probe, capsys, damage, reason):
    from fcnprobe.results import RunStore

    out = tmp_path / "r"
    _main(capsys, *TOY, "--out", str(out))
    victim = next(p for p in sorted((out / "cells").glob("*.json")) if '"ok"' in p.read_text())
    data = json.loads(victim.read_text())
    damage(data)
    victim.write_text(json.dumps(data) if reason != "(char " else victim.read_text()[:50])
    records, problems = RunStore(out).scan()
    assert len(records) == 4 and len(problems) == 1
    assert problems[0][0] == str(victim) and reason in problems[0][1]
