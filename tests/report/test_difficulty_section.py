"""The difficulty section renders from synthetic records: figures with data, the metric and deep-supervision tables."""
from __future__ import annotations

import pandas as pd

from fcnprobe.report.sections.difficulty import difficulty_section
from tests.difficulty_synth import Design, records, run_of


def test_section_has_curves_lr_sensitivity_and_tables():
    df = pd.concat([records("locate", [Design("fcn", "softargmax", 100.0), Design("cnn_fc", "linear", 40.0)]),
                    records("multi_output", [Design("fcn", "linear", 80.0), Design("fcn", "linear", 40.0, deepsup=True),
                                             Design("attention", "linear", 60.0)])], ignore_index=True)
    sec = difficulty_section(run_of(df))
    ids = [f.id for f in sec.figures]
    assert ids == ["difficulty-loss-multi-output", "difficulty-lr-multi-output", "difficulty-loss-locate",
                   "difficulty-lr-locate"]
    assert all(f.data is not None and not f.data.empty for f in sec.figures)
    captions = [c for c, _ in sec.tables]
    assert any("deep supervision" in c for c in captions)
    assert "steps to target" in sec.tables[0][1] and "fcn+linear +DS" not in sec.tables[1][1].split("design")[0]


def test_no_records_no_section():
    assert difficulty_section(run_of(pd.DataFrame())) is None
