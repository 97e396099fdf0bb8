"""The HTML page: escaping, byte stability, self-containment, no torch, comparison."""
from __future__ import annotations

import subprocess
import sys

import numpy as np

from fcnprobe.report.build import build_comparison, build_report
from synthetic_run import FCN_FAILS, contract, cue, error_record, make_run

EVIL = "<script>alert(1)</script>"


def _run(tmp_path):
    recs = [cue("fcn", FCN_FAILS, 13), cue(EVIL, FCN_FAILS, 13, i=1),
            contract("fcn", "dense:4", 32, [1, 4, 32, 32]), error_record(EVIL, f"ValueError: {EVIL} <img src=x onerror=alert(2)>")]
    return make_run(tmp_path, recs)


def test_strings_from_records_are_escaped(tmp_path):
    html = build_report(_run(tmp_path)).read_text()
    assert EVIL not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower()  # the page itself needs no JavaScript


def test_self_contained_and_byte_stable(tmp_path):
    root = _run(tmp_path)
    first = build_report(root).read_bytes()
    second = build_report(root).read_bytes()
    assert first == second
    html = first.decode()
    for fetch in ('src="http', "src='http", 'href="http', "url(http", "@import"):
        assert fetch not in html  # nothing is loaded from the network
    assert "<svg" in html and 'role="img"' in html and "records.csv" in html


def test_report_never_imports_torch(tmp_path):
    root = _run(tmp_path)
    code = ("import sys; from fcnprobe.report.build import build_report; "
            f"build_report({str(root)!r}); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_comparison_reports_deltas_and_device_warning(tmp_path):
    a = make_run(tmp_path / "a", [cue("fcn", FCN_FAILS, 13)])
    b = make_run(tmp_path / "b", [cue("fcn", [1.0] * 6, 13)])
    import json

    man = json.loads((b / "manifest.json").read_text())
    man["provenance"]["device_name"] = "Other GPU"
    (b / "manifest.json").write_text(json.dumps(man))
    html = build_comparison(a, b, tmp_path / "cmp").read_text()
    assert "different devices" in html and "held-out accuracy" in html and "acc_frac" not in html
    assert np.isclose(1.0 - np.mean(FCN_FAILS), float(html.split("held-out accuracy</td>")[1].split("<td>")[3].split("<")[0]), atol=1e-3)
