"""The learning-rate protocol (``fcnprobe.lr``): the grid against its closed form, the
edge extension, the selection rule, the table lookup with its fallbacks, and a table
built from lrgrid records and read back."""
from __future__ import annotations

import json
import math

import pytest

from fcnprobe import lr as L
from fcnprobe.results import Record, RunStore
from fcnprobe.train import family_lr


def test_grid_is_six_log_spaced_rates_from_3e4_to_1e2():
    g = L.lr_grid()
    ratio = (1e-2 / 3e-4) ** (1 / 5)  # closed form of 6 log-spaced points
    assert len(g) == 6 and g[0] == 3e-4 and g[-1] == 1e-2
    assert all(b / a == pytest.approx(ratio, rel=2e-3) for a, b in zip(g, g[1:]))


def test_extension_is_one_log_step_beyond_the_edge():
    g = L.lr_grid()
    r = (1e-2 / 3e-4) ** (1 / 5)
    assert L.extend(g, "low") == pytest.approx(3e-4 / r, rel=2e-3)
    assert L.extend(g, "high") == pytest.approx(1e-2 * r, rel=2e-3)
    assert (L.edge_side(g, g[0]), L.edge_side(g, g[-1]), L.edge_side(g, g[2])) == ("low", "high", None)


def test_bad_grid_is_refused():
    with pytest.raises(ValueError):
        L.lr_grid(1e-2, 3e-4)


def test_select_lowest_finite_loss_ties_to_the_smaller_rate():
    lrs = [1e-3, 2e-3, 4e-3, 8e-3]
    assert L.select(lrs, [0.5, 0.3, 0.4, 0.9]) == 1
    assert L.select(lrs, [0.5, 0.3, 0.3, None]) == 1
    assert L.select(lrs, [float("nan"), None, 0.7, 0.6]) == 3
    with pytest.raises(ValueError, match="finite"):
        L.select(lrs, [None, float("nan"), None, float("inf")])


def _table(tmp_path, rows, **extra):
    path = tmp_path / "lr_table.json"
    path.write_text(json.dumps({"schema_version": L.TABLE_SCHEMA, "commit": "abcdef1234567", "created":
                                "2026-12-01T00:00:00+00:00", "rows": rows, **extra}))
    return path


def test_lookup_exact_row_family_row_and_fallbacks(tmp_path):
    rows = [{"model": "fcn", "family": "fcn", "task": "global_cue", "lr": 1.22e-3},
            {"model": "attention", "family": "attention", "task": "shift", "lr": 4.96e-3}]
    reduced = _table(tmp_path, rows, reduced=True)
    lr, src = L.learning_rate("fcn", "global_cue", "quick", reduced)  # a reduced grid is evidence, not a setting
    assert lr == family_lr("fcn") and "reduced grid" in src and "not used" in src
    path = _table(tmp_path, rows)
    lr, src = L.learning_rate("fcn", "global_cue", "quick", path)
    assert lr == 1.22e-3 and "abcdef1234" in src and "2026-12-01" in src and "reduced" not in src
    lr, src = L.learning_rate("attention_fullres", "shift", "standard", path)  # same family, no own row
    assert lr == 4.96e-3 and "via family attention" in src
    lr, src = L.learning_rate("fcn", "shift", "quick", path)
    assert (lr, src.startswith(L.DEFAULT_SOURCE)) == (family_lr("fcn"), True)
    lr, src = L.learning_rate("fcn", "global_cue", "smoke", path)  # tests never depend on the table
    assert lr == family_lr("fcn") and "smoke" in src
    lr, src = L.learning_rate("fcn", "global_cue", "quick", tmp_path / "missing.json")
    assert lr == family_lr("fcn") and "no LR table" in src


def test_flat_curve_keeps_the_family_default(tmp_path):
    assert L.is_flat([0.6931, 0.6935, 0.6929]) and not L.is_flat([0.70, 0.65, 0.69])
    path = _table(tmp_path, [{"model": "fcn", "family": "fcn", "task": "same_different", "lr": 6.05e-4,
                              "flat": True}])
    lr, src = L.learning_rate("fcn", "same_different", "quick", path)
    assert lr == family_lr("fcn") and "flat" in src


def test_wrong_schema_is_refused(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"schema_version": 99, "rows": []}))
    with pytest.raises(ValueError, match="schema_version"):
        L.load_table(path)


def _record(model, task, seed, lrs, losses, steps=800):
    m = {"lrs": lrs, "val_loss_by_lr": losses, "family": model, "steps_count": steps, "batch_size_count": 16,
         "edge_extended": "none"}
    return Record("lrgrid", model, task, {}, seed, f"lrgrid__{model}__{task}__s{seed}", metrics=m,
                  provenance={"git_sha": "0123456789abcdef", "git_dirty": False, "device_name": "cpu"})


def test_write_table_from_records_and_read_it_back(tmp_path):
    store = RunStore(tmp_path / "run")
    store.write_manifest({"config": {"preset": "lrgrid", "models": [], "tasks": []}})
    store.write_record(_record("fcn", "global_cue", 0, [1e-3, 2e-3, 4e-3], [0.9, 0.2, 0.5], steps=100))
    store.write_record(_record("fcn", "global_cue", 1, [1e-3, 2e-3, 4e-3], [0.1, 0.4, 0.5], steps=100))
    store.write_record(_record("cnn_fc", "global_cue", 0, [1e-3, 2e-3], [0.7, None], steps=100))
    path = L.write_lr_table(tmp_path / "run", out=tmp_path / "table.json", note="test")
    table = L.load_table(path)
    rows = {(r["model"], r["task"]): r for r in table["rows"]}
    assert rows["fcn", "global_cue"]["lr"] == 2e-3  # mean over seeds: 0.5, 0.3, 0.5
    assert rows["fcn", "global_cue"]["val_loss_by_lr"] == pytest.approx([0.5, 0.3, 0.5])
    assert rows["cnn_fc", "global_cue"]["lr"] == 1e-3  # the diverged rate is skipped
    assert not rows["fcn", "global_cue"]["flat"]
    assert table["commit"] == "0123456789abcdef" and table["reduced"]
    assert any("steps" in why for why in table["reduced_because"])
    assert L.learning_rate("fcn", "global_cue", "quick", path)[0] == family_lr("fcn")  # reduced: not used


def test_a_full_length_grid_missing_cells_is_read_for_the_rows_it_has(tmp_path):
    from fcnprobe.lr import GRID_FAMILIES, GRID_STEPS, GRID_TASKS

    store = RunStore(tmp_path / "run")
    store.write_manifest({"config": {"preset": "lrgrid", "models": [], "tasks": []}})
    store.write_record(_record("fcn", "global_cue", 0, [1e-3, 2e-3, 4e-3], [0.9, 0.2, 0.5], steps=GRID_STEPS))
    table = L.load_table(L.write_lr_table(tmp_path / "run", out=tmp_path / "table.json"))
    assert not table["reduced"] and table["reduced_because"] == []
    assert len(table["missing_cells"]) == len(GRID_FAMILIES) * len(GRID_TASKS) - 1
    assert "fcn/locate" in table["missing_cells"] and "fcn/global_cue" not in table["missing_cells"]
    lr, src = L.learning_rate("fcn", "global_cue", "quick", tmp_path / "table.json")
    assert lr == 2e-3 and "fcn/global_cue" in src
    lr, src = L.learning_rate("fcn", "locate", "quick", tmp_path / "table.json")
    assert lr == family_lr("fcn") and "no LR table row" in src


def test_write_table_without_records_raises(tmp_path):
    RunStore(tmp_path / "empty").write_manifest({"config": {}})
    with pytest.raises(ValueError, match="no ok lrgrid records"):
        L.write_lr_table(tmp_path / "empty")


def test_committed_table_is_well_formed():
    table = L.load_table()
    if table is None:
        pytest.skip("no committed LR table")
    grid = L.lr_grid()
    allowed = set(grid) | {L.extend(grid, "low"), L.extend(grid, "high")}
    for row in table["rows"]:
        assert row["lr"] in allowed and math.isfinite(row["val_loss"])
        assert row["lr"] == row["lrs"][L.select(row["lrs"], row["val_loss_by_lr"])]
    assert table["commit"] and table["commands"]
