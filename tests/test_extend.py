"""A task and a probe registered from OUTSIDE the package (tests/toy_probe.py) run end to end:
the sweep plans and runs them, the manifest carries their declarations, and the report shows
them under their declared labels, even when built by a process that never imports them."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fcnprobe.config import RunConfig
from fcnprobe.metrics import from_manifest, validate_record
from fcnprobe.probes import PROBES, probes_in_order
from fcnprobe.report.build import build_report
from fcnprobe.results import RunStore
from fcnprobe.sweep import run_sweep
from fcnprobe.tasks import TASKS, list_tasks

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    import toy_probe as tp

    tp.ensure_declared_registered()
    out = tmp_path_factory.mktemp("extend") / "run"
    cfg = RunConfig(out=str(out), device="cpu", preset="smoke", workers=1, threads=1, models=("fcn", "cnn_fc"))
    summary = run_sweep([tp.DECLARED_NAME], cfg, progress=False)
    return tp, out, summary


def test_outside_task_and_probe_are_registered_like_builtin_ones(toy_run):
    tp, _, _ = toy_run
    assert tp.TASK_NAME in list_tasks("toy_*") and TASKS.meta(tp.TASK_NAME)["kind"] == "vector"
    assert tp.DECLARED_NAME in probes_in_order()
    meta = PROBES.meta(tp.DECLARED_NAME)
    assert meta["help"].startswith("toy:") and meta["order"] == 996  # what the CLI lists


def test_outside_probe_runs_end_to_end_with_valid_records(toy_run):
    tp, out, summary = toy_run
    assert summary.failed == 0 and summary.ok == 4  # 2 models x (task cell + blank variant)
    records = RunStore(out).read_records()
    assert {r.task for r in records} == {tp.TASK_NAME, "none"} and {r.variant for r in records} == {None, "blank"}
    for r in records:
        assert validate_record(r, tp.ToyDeclared.metrics, tp.ToyDeclared.variants) == []
    declared = json.loads((out / "manifest.json").read_text())["declared"][tp.DECLARED_NAME]
    assert from_manifest(declared["metrics"]) == tp.ToyDeclared.metrics and declared["variants"] == ["blank"]


def test_report_shows_the_outside_probe_by_label_without_importing_it(toy_run):
    _, out, _ = toy_run
    code = (f"import sys; from fcnprobe.report.build import build_report; build_report({str(out)!r}); "
            "print('toy_probe' in sys.modules, 'torch' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert res.stdout.split() == ["False", "False"]
    page = (out / "index.html").read_text()
    assert "untrained accuracy on toy_bright" in page and "mean |output| on a blank image" in page
    assert "toy_acc_frac" not in page and "toy_out_abs_mean" not in page
    assert "toy: untrained accuracy and blank-image output" in page


def test_in_process_report_matches(toy_run):
    _, out, _ = toy_run
    assert "untrained accuracy on toy_bright" in build_report(out).read_text()
