"""`run all` on the smoke preset, end to end: every probe, records, the report, resume."""
from __future__ import annotations

import subprocess
import sys

import pytest

from fcnprobe.probes import PROBES
from fcnprobe.results import load_run

BUILTIN = {n for n in PROBES.names() if type(PROBES.get(n)).__module__.startswith("fcnprobe.")}


@pytest.mark.slow
def test_run_all_smoke_writes_records_and_report(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "fcnprobe.run", "all", "--preset", "smoke", "--workers", "2",
           "--out", str(out), "--no-progress"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "report: file://" in first.stdout
    df = load_run(out)
    assert set(df.probe) == BUILTIN  # every probe the package registers, read from the registry
    assert (df.status == "ok").all(), df[df.status != "ok"][["probe", "model", "error"]]
    html = (out / "index.html").read_text()
    assert "Claim 3" in html and "Effective receptive fields" in html
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and f"0 ok, 0 failed, {len(df)} already done" in again.stdout
