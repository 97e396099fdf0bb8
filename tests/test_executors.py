"""Executors: a dask LocalCluster and a local Ray give the local executor's records; a lost dask worker
costs only its own cell; bad input is one line.

Set FCNPROBE_REQUIRE_EXTRAS=1 (CI installs the dask and ray extras) to make a
missing extra fail these tests instead of skipping them.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from fcnprobe import run
from fcnprobe.config import RunConfig
from fcnprobe.errors import UsageError
from fcnprobe.executors import ExecutorSpec, check_feasible, create_executor, list_executors
from fcnprobe.results import load_run
from fcnprobe.sweep import run_sweep

COLUMNS = ["cell_id", "status", "error", "value_frac", "threads_count"]


def _extra(module: str):
    if os.environ.get("FCNPROBE_REQUIRE_EXTRAS"):
        return __import__(module)
    return pytest.importorskip(module)


def _records(out, probe: str = "toy") -> list[tuple]:
    df = load_run(out)
    df = df[df.probe == probe].sort_values("cell_id")[COLUMNS]
    return [tuple(r) for r in df.astype(object).where(df.notna(), None).itertuples(index=False)]


def _sweep(out, probes=("toy",), armed: bool = False, **kw):
    Path(out).mkdir(parents=True, exist_ok=True)
    if armed:  # toy_fault's 'die' cell kills its worker once
        (Path(out) / "arm.marker").touch()
    cfg = RunConfig(out=str(out), device="cpu", threads=1, seeds=(0, 1), **kw)
    return run_sweep(list(probes), cfg, progress=False)


@pytest.fixture
def local_out(tmp_path, toy_probe):
    """Uninterrupted in-process run of both toy probes (unarmed: nothing dies)."""
    _sweep(tmp_path / "local", ("toy", "toy_fault"), workers=1)
    return tmp_path / "local"


@pytest.mark.slow
def test_dask_local_cluster_gives_the_local_records_and_survives_a_lost_worker(tmp_path, local_out):
    dask = _extra("dask")
    _extra("distributed")
    out = tmp_path / "dask"
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):  # no dask retry: the cell is lost
        summary = _sweep(out, ("toy", "toy_fault"), armed=True, executor="dask", workers=2)
    # a dying worker takes the cells queued on it too; each is lost, not recorded, and the sweep goes on
    lost_ids = {why.split(":")[0] for why in summary.lost}
    assert summary.lost and all("KilledWorker" in why for why in summary.lost)
    assert len(lost_ids) + summary.ran == 20 and summary.failed == 4
    assert _records(out) == _records(local_out)  # threads_count is 1 in every worker too
    kept = _records(out, "toy_fault")
    assert set(kept) <= set(_records(local_out, "toy_fault")) and not lost_ids & {r[0] for r in kept}
    again = _sweep(out, ("toy", "toy_fault"), workers=1)  # any executor resumes; in-process is quickest
    assert (again.ran, again.skipped) == (len(lost_ids), 20 - len(lost_ids))
    assert _records(out, "toy_fault") == _records(local_out, "toy_fault")


@pytest.mark.slow
def test_ray_gives_the_local_records(tmp_path, local_out):
    ray = _extra("ray")
    summary = _sweep(tmp_path / "ray", executor="ray", workers=2)
    assert (summary.ok, summary.failed, summary.lost) == (6, 4, [])
    assert _records(tmp_path / "ray") == _records(local_out)
    assert not ray.is_initialized()  # the executor shut down the Ray it started


def test_registry_lists_executors_and_suggests_names():
    assert list_executors() == ["dask", "local", "ray"]
    with pytest.raises(UsageError, match="did you mean 'dask'"):
        RunConfig(executor="dsak")
    with pytest.raises(UsageError, match="--address needs --executor dask or ray"):
        RunConfig(address="tcp://127.0.0.1:8786")
    with pytest.raises(UsageError, match="--gpus-per-cell needs --executor ray"):
        RunConfig(gpus_per_cell=0.5)


def test_ray_requests_the_cluster_cannot_meet_are_usage_errors():
    check_feasible({"CPU": 2.0, "GPU": 1.0}, cpus=1, gpus=0.25)  # four cells share the GPU
    with pytest.raises(UsageError, match="asks Ray for 1 GPU but the cluster has 0"):
        check_feasible({"CPU": 2.0}, cpus=1, gpus=1.0)
    with pytest.raises(UsageError, match="asks Ray for 4 CPU but the cluster has 2; check --threads"):
        check_feasible({"CPU": 2.0}, cpus=4, gpus=0.0)


@pytest.mark.parametrize("executor, module", [("dask", "distributed"), ("ray", "ray")])
def test_missing_extra_is_one_line_with_the_install_hint(monkeypatch, capsys, executor, module):
    monkeypatch.setitem(sys.modules, module, None)  # import and find_spec now fail as if not installed
    hint = f"pip install 'fcnprobe[{executor}]'"
    with pytest.raises(UsageError, match=__import__("re").escape(hint)):
        create_executor(executor, ExecutorSpec(workers=1, threads=1, device="cpu"))
    code = run.main(["all", "--executor", executor, "--dry-run", "--out", "unused"])
    err = capsys.readouterr().err
    assert code == run.EXIT_USAGE and hint in err and err.count("\n") == 1


def test_killable_pool_times_out_replaces_the_worker_and_goes_on():
    import os
    import time

    from fcnprobe.errors import CellTimeout
    from fcnprobe.executors import init_worker
    from fcnprobe.pool import KillablePool, WorkerDied

    pool = KillablePool(1, init_worker, (1, "cpu"), timeout_s=2.0)
    try:
        hang, die, ok = pool.submit(time.sleep, 60), pool.submit(os._exit, 3), pool.submit(pow, 2, 10)
        with pytest.raises(CellTimeout):
            hang.result(timeout=60)
        with pytest.raises(WorkerDied, match="code 3"):
            die.result(timeout=60)
        assert ok.result(timeout=60) == 1024  # served by the third worker of the one slot
    finally:
        pool.close()
