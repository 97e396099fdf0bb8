"""The sweep: error records, NaN, resume, overwrite, rerun-failed, determinism, process pool."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fcnprobe.config import RunConfig
from fcnprobe.results import RunStore, load_run
from fcnprobe.sweep import run_sweep


def _run(tmp_path, **kw):
    cfg = RunConfig(out=str(tmp_path / "run"), device="cpu", workers=kw.pop("workers", 1), **kw)
    return run_sweep(["toy"], cfg, progress=False), RunStore(cfg.out)


def test_failures_become_records_and_sweep_goes_on(tmp_path, toy_probe):
    summary, store = _run(tmp_path)
    assert (summary.ok, summary.failed) == (3, 2)
    by_kind = {r.params["kind"]: r for r in store.read_records()}
    assert by_kind["raise"].status == "error" and by_kind["raise"].error == "ValueError: boom"
    assert "NonFiniteMetric" in by_kind["nan"].error
    assert by_kind["ok"].ok and by_kind["ok"].provenance["device"] == "cpu"


def test_arrays_are_npy_beside_the_record(tmp_path, toy_probe):
    _, store = _run(tmp_path)
    rec = next(r for r in store.read_records() if r.ok)
    np.testing.assert_array_equal(store.load_array(rec, "map"), np.arange(6.0).reshape(2, 3))
    assert rec.arrays["map"].endswith(".npy")


def test_resume_skips_done_cells_and_rerun_failed_retries_errors(tmp_path, toy_probe):
    _run(tmp_path)
    again, _ = _run(tmp_path)
    assert (again.ran, again.skipped) == (0, 5)
    retry, _ = _run(tmp_path, rerun_failed=True)
    assert (retry.ran, retry.skipped) == (2, 3)
    over, _ = _run(tmp_path, overwrite=True)
    assert over.ran == 5


def test_corrupt_cell_file_is_skipped_and_rerun(tmp_path, toy_probe):
    _, store = _run(tmp_path)
    victim = sorted((store.root / "cells").glob("*.json"))[0]
    victim.write_text("{not json")
    with pytest.warns(UserWarning, match="corrupt"):
        again, _ = _run(tmp_path)
    assert again.ran == 1
    json.loads(victim.read_text())  # rewritten whole


def test_same_seed_same_numbers_and_seeds_differ(tmp_path, toy_probe):
    _run(tmp_path / "a", seeds=(0, 1))
    _run(tmp_path / "b", seeds=(0, 1))
    a, b = (load_run(tmp_path / d / "run").sort_values("cell_id") for d in "ab")
    assert a["value_frac"].fillna(-1).tolist() == b["value_frac"].fillna(-1).tolist()
    ok = a[a.param_kind == "ok"]
    assert ok["value_frac"].nunique() == len(ok)  # seed derives from the cell key


def test_process_pool_gives_the_same_records(tmp_path, toy_probe):
    _run(tmp_path / "a", workers=1, threads=1)
    _run(tmp_path / "b", workers=2, threads=1)
    a, b = (load_run(tmp_path / d / "run").sort_values("cell_id") for d in "ab")
    assert a["value_frac"].fillna(-1).tolist() == b["value_frac"].fillna(-1).tolist()
    assert set(b["threads_count"].dropna()) == {1}


def test_dry_run_lists_cells_without_running(tmp_path, toy_probe):
    summary, store = _run(tmp_path, dry_run=True)
    assert len(summary.cells) == 5 and not (store.root / "cells").exists()


def test_the_manifest_records_the_training_engine_options_in_force(tmp_path, toy_probe):
    from fcnprobe.train import ENGINE

    run_sweep(["toy"], RunConfig(out=str(tmp_path), device="cpu", workers=1, preset="smoke"), progress=False)
    engine = RunStore(tmp_path).read_manifest()["engine"]
    assert engine["channels_last"] == ENGINE.channels_last and engine["fused_adamw"] == ENGINE.fused_adamw
    assert engine["compile"] is False and "torch_version" in engine
