"""The threats-to-validity section: every number from the run's records, on the page."""
from __future__ import annotations

import html

from fcnprobe.report.build import build_report
from fcnprobe.report.data import RunData
from fcnprobe.report.threats import threats
from fcnprobe.results import Record
from synthetic_run import FCN_FAILS, PROV, cue, make_run


def _records():
    recs = [cue("fcn", FCN_FAILS, 13, i=s) for s in range(3)]
    for s, rec in enumerate(recs):
        rec.seed, rec.metrics["params_count"] = s, 1000 + s
    big = cue("attention", [1.0] * 6, None, i=9)
    big.metrics["params_count"] = 77_000
    real = [Record("realarch", m, "none", {"pretrained": flag, "size": 224, "variant": "forward"}, 0, f"real-{m}",
                   metrics={"params_count": n}, provenance=PROV)
            for m, flag, n in (("resnet50", False, 25_557_032), ("vit_b16", False, 86_567_656),
                               ("convnext", True, 28_589_128))]
    return recs + [big] + real


def test_threats_are_filled_from_the_records(tmp_path):
    got = threats(RunData.load(make_run(tmp_path, _records())))
    assert list(got) == ["model scale", "image size", "synthetic tasks", "untrained weights", "number of seeds"]
    assert "1,000 (fcn) to 86,567,656 (vit_b16) parameters over 5 models" in got["model scale"]
    assert "2 of them have under 1,000,000" in got["model scale"]
    assert "from 32 to 224 px" in got["image size"]
    assert "(global_cue)" in got["synthetic tasks"]
    assert "2 of 3 real-architecture rows use random (untrained) weights" in got["untrained weights"]
    assert "context: 3, realarch: 1" in got["number of seeds"] and "(realarch)" in got["number of seeds"]


def test_threats_section_is_on_the_page_and_in_the_contents(tmp_path):
    page = html.unescape(build_report(make_run(tmp_path, _records())).read_text())
    section = page.split('<section id="threats">')[1].split("</section>")[0]
    assert "Threats to validity" in section and "real-architecture rows" in section
    assert 'href="#threats"' in page
