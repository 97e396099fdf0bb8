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


def _edit_manifest(root, **changes):
    import json

    man = json.loads((root / "manifest.json").read_text())
    for key, value in changes.items():
        section, field = key.split("__")
        man.setdefault(section, {})[field] = value
    (root / "manifest.json").write_text(json.dumps(man))


def _rows(page: str) -> list[list[str]]:
    import html
    import re

    body = page.split("<tbody>")[1].split("</tbody>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    return [[html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", r, re.S)] for r in rows]


def test_comparison_reports_deltas_with_params_and_labels(tmp_path):
    a = make_run(tmp_path / "a", [cue("fcn", FCN_FAILS, 13)])
    b = make_run(tmp_path / "b", [cue("fcn", [1.0] * 6, 13)])
    page = build_comparison(a, b, tmp_path / "cmp").read_text()
    assert "not like for like" not in page  # same preset, device and code: no banner
    (row,) = [r for r in _rows(page) if r[5] == "held-out accuracy (higher is better)"]
    assert row[:5] == ["context", "fcn", "global_cue", "head=dense:5, image_size=32", "0"]
    assert np.isclose(float(row[8]), 1.0 - np.mean(FCN_FAILS), atol=1e-3)
    assert "acc_frac" not in page and "param_" not in page


def test_comparison_banner_names_each_difference(tmp_path):
    a = make_run(tmp_path / "a", [cue("fcn", FCN_FAILS, 13)])
    b = make_run(tmp_path / "b", [cue("fcn", [1.0] * 6, 13)])
    _edit_manifest(b, provenance__device_name="Other GPU", config__preset="quick", provenance__git_sha="def")
    page = build_comparison(a, b, tmp_path / "cmp").read_text()
    banner = page.split('id="differences"')[1].split("</aside>")[0]
    for words in ("preset: smoke vs quick", "device: Test CPU vs Other GPU", "code version: abc vs def",
                  "not comparable"):
        assert words in banner, (words, banner)


def test_headers_are_declared_labels_and_no_raw_metric_name_is_shown(tmp_path):
    """Without a browser: every <th> is a declared label (unit, direction) or a key/parameter column."""
    import html
    import re

    from fcnprobe.report.data import RunData, header_problems
    from synthetic_run import ALL_GOOD

    root = make_run(tmp_path, [cue("fcn", FCN_FAILS, 13), cue("fcn_gap", ALL_GOOD, None, i=1),
                               contract("fcn", "dense:4", 32, [1, 4, 32, 32])])
    page = build_report(root).read_text()
    run = RunData.load(root)
    cells = re.findall(r"<th[^>]*>(.*?)</th>", page, re.S)
    headers = {html.unescape(re.sub(r"<[^>]+>", "", h)).strip() for h in cells}
    context_summary = {"acc within reach", "acc beyond reach", "min bin acc", "overall acc", "reach (px)",
                       "fails at (px, median)", "pooled ceiling", "chance"}  # context.py's own names (see test_browser)
    assert header_problems(headers - context_summary, run) == []
    assert header_problems({"acc_frac", "held-out accuracy"}, run) == ["acc_frac", "held-out accuracy"]
    no_svg = re.sub(r"<svg.*?</svg>", "", page.split('id="environment"')[0], flags=re.S)
    visible = html.unescape(re.sub(r"<[^>]+>", " ", no_svg))
    names = {n for d in run.declared.values() for n in d if "_" in n}
    assert sorted(n for n in names if re.search(rf"\b{re.escape(n)}\b", visible)) == []
