"""The context section reads each shift row against its d = 0 control."""
from __future__ import annotations

import pandas as pd

from fcnprobe.report.sections.context import shift_readings


def _rows(model, accs, covers=True, steps=300):
    return [{"model": model, "param_distance": d, "acc_frac": a, "chance_frac": 0.25, "covers_task": covers,
             "stopped_at_step": steps} for d, a in accs.items()]


def test_shift_readings_name_resolution_and_unlearned_copies_and_nothing_else():
    df = pd.DataFrame(_rows("attention", {0: 0.99, 3: 0.25, 12: 0.26}) + _rows("cnn_fc", {0: 0.26, 3: 0.25})
                      + _rows("fcn", {0: 1.0, 3: 1.0}) + _rows("fcn", {12: 0.25}, covers=False))
    notes = shift_readings(df)
    assert len(notes) == 3
    assert notes[0].startswith("attention solves d = 0") and "d = 3" in notes[0] and "d = 12" in notes[1]
    assert notes[2].startswith("cnn_fc does not solve d = 0")  # resolution: its row says nothing about context
    assert not any(n.startswith("fcn") for n in notes)  # d = 12 beyond fcn's reach is the finding, not a note
