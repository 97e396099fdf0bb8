"""Open the report in headless Chromium: no console errors, every image decoded, a screenshot.

Uses Debian's chromium driven by Playwright (the Python package only; no browser
download). Skipped, with the reason, where either is missing.
"""
from __future__ import annotations

import shutil

import pytest

from fcnprobe.report.build import build_report
from synthetic_run import FCN_FAILS, contract, cue, make_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync"]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install '.[test]')")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")


def _page_report(tmp_path):
    import numpy as np

    from fcnprobe.results import Record

    erf = Record("erf", "fcn", "noise", {"trained": False}, 0, "erf-fcn", metrics={"erf_std_px": 2.0}, provenance={})
    recs = [cue("fcn", FCN_FAILS, 13), cue("fcn_gap", [0.97] * 6, None, i=1),
            contract("fcn", "dense:4", 32, [1, 4, 32, 32]), erf]
    gauss = np.exp(-((np.arange(33) - 16) ** 2) / 20.0)
    root = make_run(tmp_path, recs, arrays={"erf-fcn": {"erf_abs": np.outer(gauss, gauss)}})
    return build_report(root)


def test_report_renders_in_chromium(tmp_path):
    page_path = _page_report(tmp_path)
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_path.resolve().as_uri(), wait_until="load")
        images = page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        svgs = page.evaluate("document.querySelectorAll('figure svg').length")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert errors == []
    assert images and all(images), images
    assert svgs >= 1
    assert (tmp_path / "report.png").stat().st_size > 10_000
