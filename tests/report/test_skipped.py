"""Damaged and invalid cell files: the page still renders, lists each in the skipped box, shows the rest."""
from __future__ import annotations

import html
import json
import re

from fcnprobe.report.build import build_report
from fcnprobe.report.data import RunData
from synthetic_run import FCN_FAILS, cue, make_run


def _damage(root):
    """Four bad cell files beside good ones: name -> the reason's tell-tale words."""
    cells = root / "cells"
    good = json.loads((cells / "context-fcn-global_cue-0.json").read_text())
    (cells / "truncated.json").write_text(json.dumps(good)[:120])
    for name, change in (("no-metrics", {"metrics": {}}), ("null-params", {"params": None}),
                         ("string-acc", {"metrics": {**good["metrics"], "acc_frac": "high"}}),
                         ("string-chance", {"metrics": {**good["metrics"], "chance_frac": "half"}})):
        (cells / f"{name}.json").write_text(json.dumps({**good, **change, "cell_id": name}))
    return {"truncated": "", "no-metrics": "no metrics", "null-params": "params",
            "string-acc": "acc_frac", "string-chance": "chance_frac"}


def test_bad_records_are_listed_and_good_ones_render(tmp_path):
    root = make_run(tmp_path, [cue("fcn", FCN_FAILS, 13), cue("fcn_gap", [1.0] * 6, None, i=1)])
    expect = _damage(root)
    page = html.unescape(build_report(root).read_text())
    box = page.split('id="skipped"')[1].split("</aside>")[0]
    assert "5 record files skipped" in box
    items = re.findall(r"<li><code>(.*?)</code>: (.*?)</li>", box)
    assert len(items) == 5
    for name, words in expect.items():
        (reason,) = [why for f, why in items if f == f"cells/{name}.json"]
        assert words in reason and reason, (name, reason)
    assert "fcn_gap" in page and 'id="fig-context-global-cue-distance"' in page  # the good records still render


def test_a_string_in_a_declared_score_is_refused_without_a_suffix():
    from fcnprobe.metrics import metric
    from fcnprobe.report.data import DeclaredCheck
    from fcnprobe.results import Record

    check = DeclaredCheck({"declared": {"toy": {"metrics": {"count_mae": metric("count_mae", "count error",
                                                                                 "lower").to_dict()}}}})
    rec = Record("toy", "m", "t", {}, 0, "c", metrics={"count_mae": "n/a"})
    assert "count_mae" in check(rec)
    assert check(Record("toy", "m", "t", {}, 0, "c", metrics={"count_mae": 0.5})) is None
    assert check(Record("toy", "m", "t", {}, 0, "c", metrics={"count_mae": [0.5, None]})) is not None  # not an array


def test_clean_run_has_no_skipped_box(tmp_path):
    root = make_run(tmp_path, [cue("fcn", FCN_FAILS, 13)])
    assert RunData.load(root).skipped == []
    assert 'id="skipped"' not in build_report(root).read_text()
