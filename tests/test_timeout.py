"""Per-cell timeout: a cell that runs too long becomes a Timeout record and the sweep goes on."""
from __future__ import annotations

import time

from fcnprobe.config import RunConfig
from fcnprobe.probes.base import Cell
from fcnprobe.results import RunStore
from fcnprobe.sweep import run_sweep


def _run(tmp_path, monkeypatch, workers: int):
    monkeypatch.setenv("TOY_SLEEP", "60")  # the 'slow' cell would sleep a minute
    cfg = RunConfig(out=str(tmp_path / "run"), device="cpu", workers=workers, threads=1, cell_timeout=3.0)
    start = time.monotonic()
    summary = run_sweep(["toy"], cfg, progress=False)
    return summary, {r.params["kind"]: r for r in RunStore(cfg.out).read_records()}, time.monotonic() - start


def test_pool_kills_a_hanging_cell_and_goes_on(tmp_path, monkeypatch, toy_probe):
    summary, recs, took = _run(tmp_path, monkeypatch, workers=2)
    assert recs["slow"].status == "error" and recs["slow"].error_type == "Timeout"
    assert "--cell-timeout 3 s" in recs["slow"].error
    assert recs["ok"].ok and summary.ran == 5 and summary.failed == 3  # raise, nan and slow
    assert took < 40  # not the 60 s sleep


def test_in_process_alarm_stops_a_hanging_cell(tmp_path, monkeypatch, toy_probe):
    summary, recs, took = _run(tmp_path, monkeypatch, workers=1)
    assert recs["slow"].error_type == "Timeout" and summary.ran == 5 and took < 30
    assert recs["raise"].error_type == "ValueError"  # every error record says its type


def test_timeout_default_per_preset_is_in_the_manifest(tmp_path, toy_probe):
    from fcnprobe.config import CELL_TIMEOUT_S

    run_sweep(["toy"], RunConfig(out=str(tmp_path), device="cpu", workers=1, preset="smoke"), progress=False)
    assert RunStore(tmp_path).read_manifest()["cell_timeout_s"] == CELL_TIMEOUT_S["smoke"] > 0


def test_a_group_timeout_gives_each_member_its_own_record():
    from fcnprobe.errors import CellTimeout
    from fcnprobe.sweep import failure_records

    cells = [Cell.make("toy", "fcn", "none", kind="ok", i=i) for i in range(3)]
    recs = failure_records(cells, CellTimeout(7), "cpu")
    assert [r["cell_id"] for r in recs] == [c.cell_id for c in cells]
    assert {r["error_type"] for r in recs} == {"Timeout"} and {r["wall_time_s"] for r in recs} == {7}
