"""The learning-rate section: curves straight from the records, the selected rate marked,
and the table of where the run's other trained records took their rate from."""
from __future__ import annotations

from pathlib import Path

from fcnprobe.report.data import RunData
from fcnprobe.report.sections.lrgrid import curve_frame, lr_sources, lrgrid_section
from fcnprobe.results import Record, records_to_frame


def _grid(model, task, lrs, losses, accs=None):
    best = min(range(len(lrs)), key=lambda i: losses[i] if losses[i] is not None else float("inf"))
    m = {"lrs": lrs, "val_loss_by_lr": losses, "val_acc_by_lr": accs, "lr": lrs[best], "best_val_loss": losses[best],
         "edge_extended": "high" if best == len(lrs) - 1 else "none", "best_at_edge": best == len(lrs) - 1,
         "steps_count": 10}
    return Record("lrgrid", model, task, {}, 0, f"g-{model}-{task}", metrics=m)


def _run(records):
    return RunData(Path("."), {}, records, records_to_frame(records), {})


def test_curves_and_selected_rate():
    recs = [_grid("fcn", "global_cue", [1e-3, 2e-3, 4e-3], [0.5, 0.2, 0.4], [0.5, 0.9, 0.7]),
            _grid("attention", "global_cue", [1e-3, 2e-3, 4e-3, 8e-3], [0.9, 0.8, 0.7, 0.6]),
            _grid("fcn", "multi_output", [1e-3, 2e-3], [None, 1.0])]
    data = curve_frame(_run(recs).ok("lrgrid"))
    assert len(data) == 9
    chosen = data[data.selected].set_index(["model", "task"]).lr.to_dict()
    assert chosen == {("fcn", "global_cue"): 2e-3, ("attention", "global_cue"): 8e-3, ("fcn", "multi_output"): 2e-3}
    assert data[(data.model == "fcn") & (data.task == "multi_output")].val_loss.isna().sum() == 1
    sec = lrgrid_section(_run(recs))
    assert [f.id for f in sec.figures] == ["lrgrid-global-cue", "lrgrid-multi-output"]
    assert "selected lr" in sec.tables[0][1] and any("extended" in n for n in sec.notes)


def test_sources_of_other_probes_and_empty_run():
    ctx = [Record("context", "fcn", "shift", {}, s, f"c{s}", metrics={"lr": 1e-3, "lr_source": "LR table abc"})
           for s in range(2)]
    tab = lr_sources(_run(ctx))
    assert tab.to_dict("records") == [{"probe": "context", "lr source": "LR table abc", "records": 2}]
    sec = lrgrid_section(_run(ctx))
    assert sec is not None and not sec.figures and "LR table abc" in sec.tables[0][1]
    assert any("reports/lr/" in n for n in sec.notes)  # where the curves behind the table are
    assert lrgrid_section(_run([])) is None
