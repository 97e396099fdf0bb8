"""The hierarchy probe end to end on the smoke preset: context weights are reloaded, controls are recorded."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fcnprobe.config import RunConfig
from fcnprobe.probes.hierarchy import read_out
from fcnprobe.results import RunStore
from fcnprobe.sweep import run_sweep
from fcnprobe.tasks import create_task


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("hier") / "run"
    cfg = RunConfig(out=str(out), device="cpu", preset="smoke", workers=1, models=("fcn", "attention"),
                    tasks=("same_different", "global_cue"))
    summary = run_sweep(["context", "hierarchy"], cfg, progress=False)
    assert summary.failed == 0
    return out


def _records(run):
    return RunStore(run).read_records()


def test_one_record_per_context_cell_and_state(run):
    run = _records(run)
    ctx = [r for r in run if r.probe == "context"]
    hier = [r for r in run if r.probe == "hierarchy"]
    assert len(hier) == 2 * len(ctx) and {r.params["state"] for r in hier} == {"trained", "init"}
    assert {r.params["context_cell"] for r in hier} == {r.cell_id for r in ctx}


def test_curves_are_consistent(run):
    run = _records(run)
    for r in (r for r in run if r.probe == "hierarchy"):
        m = r.metrics
        n = m["layers_count"]
        assert n == len(m["layers"]) == len(m["probe_acc_by_layer_frac"]) == len(m["selectivity_by_layer_frac"]) > 0
        sel = np.array(m["probe_acc_by_layer_frac"]) - np.array(m["control_acc_by_layer_frac"])
        assert np.allclose(sel, m["selectivity_by_layer_frac"])
        assert m["abstraction_depth"] is None or 0 <= m["abstraction_depth"] < n
        assert (len(m["attention_distance_by_layer_px"]) > 0) == (r.model == "attention")


def test_trained_and_init_features_differ(run):
    """The trained state really loads the context weights: its curve differs from the init one."""
    run = _records(run)
    by = {(r.model, r.task, r.params["state"]): r.metrics["probe_acc_by_layer_frac"] for r in run
          if r.probe == "hierarchy"}
    assert any(by[(m, t, "trained")] != by[(m, t, "init")] for (m, t, s) in by if s == "init")


def test_read_out_labels_and_types():
    batch = create_task("same_different", image_size=16).sample(32, torch.Generator().manual_seed(0))
    labels, types = read_out("same_different", batch)
    same = types // 1000 == types % 1000
    assert (labels == same).all()  # the label is a function of the type: the control is well posed
    with pytest.raises(ValueError, match="no read-out"):
        read_out("shift", batch)


def test_report_section_and_claim1_note(run, tmp_path):
    from fcnprobe.report.data import RunData
    from fcnprobe.report.evidence import hierarchy_note
    from fcnprobe.report.sections.hierarchy import hierarchy_section

    data = RunData.load(run)
    sec = hierarchy_section(data)
    assert sec is not None and len(sec.figures) == 4 and len(sec.tables) == 1  # selectivity + ERF radius per task
    assert "ERF radius at that block (px)" in sec.tables[0][1]
    df = data.ok("hierarchy")
    assert all(len(r) == n for r, n in zip(df.erf_radius_by_layer_px, df.layers_count))
    note = hierarchy_note(data)  # trained models only, one clause per model
    assert "trained models" in note and "fcn: " in note and "same_different" in note and " init" not in note
