"""Records and the run store: round trip, atomic files, corrupt files, the derived table."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fcnprobe.results import SCHEMA_VERSION, CorruptRecordWarning, Record, RunStore, load_run


def _record(i=0, status="ok"):
    return Record("erf", "fcn", "noise", {"depth": 6, "trained": False}, seed=0, cell_id=f"c{i}",
                  status=status, metrics={"erf_std_px": 2.5 + i, "acc_by_dist_frac": [1.0, 0.5]},
                  provenance={"device": "cpu"})


def test_record_round_trip_through_json(tmp_path):
    store = RunStore(tmp_path)
    rec = _record()
    store.write_record(rec, {"map": np.eye(3, dtype=np.float32)})
    (back,) = store.read_records()
    assert back == rec and back.schema_version == SCHEMA_VERSION
    np.testing.assert_array_equal(store.load_array(back, "map"), np.eye(3))


def test_no_temp_files_left_and_nan_becomes_null(tmp_path):
    store = RunStore(tmp_path)
    rec = _record()
    rec.metrics["bad"] = float("nan")
    store.write_record(rec)
    files = [p.name for p in (tmp_path / "cells").iterdir()]
    assert files == ["c0.json"]
    assert json.loads((tmp_path / "cells" / "c0.json").read_text())["metrics"]["bad"] is None


@pytest.mark.parametrize("text", ["{truncated", '{"schema_version": 99}', '{"schema_version": 1}', "[]"])
def test_corrupt_files_are_skipped_with_a_warning(tmp_path, text):
    store = RunStore(tmp_path)
    store.write_record(_record(0))
    (tmp_path / "cells" / "c9.json").write_text(text)
    with pytest.warns(CorruptRecordWarning):
        assert [r.cell_id for r in store.read_records()] == ["c0"]
    with pytest.warns(CorruptRecordWarning):
        assert store.done_ids() == {"c0"}


def test_load_run_has_one_row_per_record_with_metric_columns(tmp_path):
    store = RunStore(tmp_path)
    store.write_manifest({"config": {"preset": "smoke"}})
    for i in range(3):
        store.write_record(_record(i, status="error" if i == 2 else "ok"))
    df = load_run(tmp_path)
    assert len(df) == 3 and {"erf_std_px", "param_depth", "status", "device"} <= set(df.columns)
    assert df.sort_values("cell_id")["erf_std_px"].tolist() == [2.5, 3.5, 4.5]
    assert store.read_manifest()["schema_version"] == SCHEMA_VERSION


def test_derived_table_is_written(tmp_path):
    store = RunStore(tmp_path)
    store.write_record(_record())
    path = store.write_table()
    text = path.read_text()
    assert "erf_std_px" in text and "[1.0, 0.5]" in text


def test_load_run_rejects_a_non_run_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an fcnprobe run directory"):
        load_run(tmp_path / "nope")


def test_report_renders_when_some_cell_files_are_invalid(tmp_path):
    """Invalid records are skipped (scan lists them) and every good record still renders."""
    import shutil
    import warnings

    from fcnprobe.report.build import build_report

    run = tmp_path / "quick"
    shutil.copytree(Path(__file__).parent.parent / "reports" / "quick", run,
                    ignore=shutil.ignore_patterns("index.html", "*.png"))
    files = sorted((run / "cells").glob("*.json"))
    for path, damage in zip(files, (lambda d: d.update(metrics={}), lambda d: d.update(params=None),
                                    lambda d: d["metrics"].update(acc_frac="high"))):
        data = json.loads(path.read_text())
        damage(data)
        path.write_text(json.dumps(data))
    files[3].write_text('{"trunc')
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        page = build_report(run)
    assert page.exists() and page.stat().st_size > 10_000
    records, problems = RunStore(run).scan()
    assert len(problems) == 4 and len(records) == len(files) - 4
