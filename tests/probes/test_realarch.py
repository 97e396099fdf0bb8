"""The realarch probe: real layouts from transformers configs, torchvision rows skipped with a reason."""
from __future__ import annotations

import pytest

from fcnprobe.config import RunConfig
from fcnprobe.models.hf import REAL_ARCHS, unavailable
from fcnprobe.probes.realarch import RealArchProbe
from fcnprobe.results import load_run
from fcnprobe.sweep import run_sweep


def test_cells_follow_preset_models_and_sizes():
    probe = RealArchProbe()
    assert {c.model for c in probe.plan(RunConfig(preset="quick"))} == set(REAL_ARCHS.names())
    cells = probe.plan(RunConfig(preset="smoke", models=("resnet*",), image_sizes=(96,)))
    assert {c.model for c in cells} == {"resnet18", "resnet50"} and all(c.p["sizes"] == [96] for c in cells)
    assert probe.plan(RunConfig(preset="smoke", user_models=("tests.user_model_fixture:tiny_fcn",))) == []


def test_smoke_run_measures_resnet18_and_skips_what_cannot_import(tmp_path):
    from transformers_gate import require_transformers

    require_transformers()
    cfg = RunConfig(out=str(tmp_path / "r"), device="cpu", preset="smoke", workers=1, threads=1)
    summary = run_sweep(["realarch"], cfg, progress=False)
    df = load_run(cfg.out).set_index("model")
    assert summary.failed == 0
    r = df.loc["resnet18"]
    assert list(r.trf_px_by_size) == [435, 435] and list(r.trf_kind_by_size) == ["finite", "finite"]
    assert r.output_stride == 32 and r.macs_slope == pytest.approx(2.0, abs=0.01) and r.trf_check == "agree"
    tv = df.loc["tv_fcn_resnet50"]
    reason = unavailable("torchvision")
    assert tv.status == "ok" and (tv.skipped_reason == reason if reason else tv.skipped_reason is None)


def test_report_section_is_torch_free_and_lists_skips(tmp_path):
    import subprocess
    import sys

    code = ("import sys; import fcnprobe.report.sections.realarch as m; "
            "assert 'torch' not in sys.modules, 'the section imported torch'")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
