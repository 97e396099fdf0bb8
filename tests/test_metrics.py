"""Declared metrics: units from names, record validation, and every metric of the committed
sample run (schema v1, migrated on read) declared by its probe."""
from __future__ import annotations

from pathlib import Path

import pytest

from fcnprobe.metrics import Metric, declare, infer_unit, metric, validate_record, validate_record_dict, with_const
from fcnprobe.probes import PROBES, declarations, declared_metrics
from fcnprobe.results import RunStore

SAMPLE = Path(__file__).resolve().parents[1] / "reports" / "quick"


@pytest.mark.parametrize("name, unit", [("acc_frac", "fraction"), ("latency_ms_median", "ms"), ("trf_px", "px"),
                                        ("train_time_s", "s"), ("gemm_gflops_per_s", "GFLOP/s"),
                                        ("peak_mem_mb", "MiB"), ("params_count", "count"), ("oom", "")])
def test_unit_follows_the_name_suffix(name, unit):
    assert infer_unit(name) == unit


def test_bad_direction_and_double_declaration_are_errors():
    with pytest.raises(ValueError, match="direction"):
        Metric("x", "x", direction="up")
    with pytest.raises(ValueError, match="twice"):
        declare([metric("a_px", "a")], [metric("a_px", "a again")])
    assert [m.name for m in with_const([metric("iou_mean", "IoU", "higher")])] == ["iou_mean", "iou_mean_const"]


def test_validate_record_names_each_problem():
    decl = declare([metric("acc_frac", "accuracy", "higher"), metric("curve", "curve", is_array=True)])
    good = {"status": "ok", "metrics": {"acc_frac": 0.5, "curve": [1, 2]}, "params": {}}
    assert validate_record_dict(good, decl) == []
    bad = {"status": "ok", "metrics": {"acc_frac": [0.5], "curve": 3, "oops": 1}, "params": {"variant": "v9"}}
    problems = validate_record_dict(bad, decl, variants=("v1",))
    assert len(problems) == 4 and any("oops" in p for p in problems) and any("v9" in p for p in problems)
    err = {"status": "error", "metrics": {"traceback": "..."}, "params": {}}
    assert validate_record_dict(err, decl) == []


@pytest.mark.parametrize("probe", PROBES.names())
def test_every_probe_declares_metrics_help_and_order(probe):
    d = declarations([probe])[probe]
    assert d["metrics"] and d["help"] and isinstance(d["order"], int)
    assert all(Metric.from_dict(v).label for v in d["metrics"].values())


@pytest.mark.skipif(not (SAMPLE / "cells").is_dir(), reason="no committed sample run")
def test_every_metric_of_the_committed_sample_run_is_declared():
    records = RunStore(SAMPLE).read_records()  # schema v1 on disk: migrated to variants on read
    assert len(records) > 100 and {r.schema_version for r in records} == {2}
    problems = {p for r in records
                for p in validate_record(r, declared_metrics(r.probe), getattr(PROBES.get(r.probe), "variants", ()))}
    assert not problems, sorted(problems)[:10]
    assert not {r.task for r in records} & {"noise", "contract", "forward", "roofline"}
    assert "sgemm" not in {r.model for r in records}
