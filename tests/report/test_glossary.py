"""The glossary, term links, navigation anchors, and the threats / skipped-records partials."""
from __future__ import annotations

import re

import pytest
from markupsafe import Markup

from fcnprobe.report import glossary as G
from fcnprobe.report.build import build_report, environment
from synthetic_run import FCN_FAILS, contract, cue, error_record, make_run

ISSUE_TERMS = ("TRF", "TRF radius", "reach", "ERF", "ERF 50% square", "failure distance", "chance",
               "constant-guess baseline", "MACs", "FCN", "FCN+pool", "global-op")


def test_every_issue_term_is_defined_once():
    assert set(ISSUE_TERMS) <= set(G.GLOSSARY)
    anchors = [t.anchor for t in G.TERMS]
    assert len(anchors) == len(set(anchors))
    assert "best constant guess" in G.GLOSSARY["chance"].definition


def test_term_links_and_unknown_terms():
    link = str(G.term("TRF radius"))
    assert link.startswith('<a class="term" href="#g-trf-radius"') and link.endswith(">TRF radius</a>")
    with pytest.raises(KeyError, match="did you mean TRF"):
        G.term("TFR")


def test_link_terms_escapes_and_links_first_use_longest_match():
    out = str(G.link_terms("fcn <b>99%</b> within its TRF radius; the TRF is 13 px; TRFs and FCN+pool"))
    assert "&lt;b&gt;99%&lt;/b&gt;" in out and "<b>" not in out
    assert out.count('href="#g-trf-radius"') == 1 and out.count('href="#g-trf"') == 1
    assert ">TRFs<" not in out and "TRFs" in out  # no link inside a longer word
    assert 'href="#g-fcn-pool"' in out and 'href="#g-fcn"' not in out
    assert G.link_terms(Markup("<i>TRF</i>")) == Markup("<i>TRF</i>")  # markup passes untouched


def _page(tmp_path):
    recs = [cue("fcn", FCN_FAILS, 13), cue("fcn_gap", [0.97] * 6, None, i=1),
            contract("fcn", "dense:4", 32, [1, 4, 32, 32]), error_record("fcn", "ValueError: boom")]
    return build_report(make_run(tmp_path, recs)).read_text()


def test_every_internal_link_has_a_target(tmp_path):
    html = _page(tmp_path)
    ids = set(re.findall(r'\bid="([^"]+)"', html))
    hrefs = set(re.findall(r'href="#([^"]+)"', html))
    assert {"toc", "glossary", "verdicts", "context", "failures"} <= ids
    assert hrefs and hrefs <= ids, hrefs - ids
    assert {t.anchor for t in G.TERMS} <= ids
    assert 'href="#context"' in html and 'href="#claim3"' in html  # card -> section and section -> card


def test_failed_cells_show_the_error_first(tmp_path):
    html = _page(tmp_path)
    failures = html[html.index('id="failures"'):]
    header = re.findall(r"<th>([^<]*)</th>", failures)
    assert header[0] == "error" and "ValueError: boom" in failures


def _partial(name: str, **ctx) -> str:
    return environment().from_string('{% include "' + name + '" %}').render(**ctx)


def test_threats_partial_renders_each_threat_escaped():
    html = _partial("_threats.html.j2", threats={"model scale": "widths 16 <i>only</i>", "number of seeds": "1"})
    assert 'id="threats"' in html and "model scale" in html and "&lt;i&gt;" in html


def test_skipped_partial_lists_files_and_reasons():
    html = _partial("_skipped.html.j2", skipped=[("cells/a.json", "bad <json>"), ("cells/b.json", "schema 9")])
    assert "2 record files skipped" in html and "cells/a.json" in html and "bad &lt;json&gt;" in html


def test_report_template_shows_threats_and_skipped_only_when_given(tmp_path):
    from fcnprobe.report.build import render
    from fcnprobe.report.data import RunData

    from synthetic_run import error_record

    run = RunData.load(make_run(tmp_path, [error_record("fcn", "ValueError: no data")]))  # nothing ok: no threats
    assert 'id="threats"' not in render(run) and 'id="skipped"' not in render(run)
    tpl = environment().get_template("report.html.j2")
    prov = dict.fromkeys(("fcnprobe_version", "git_sha", "git_dirty", "device", "device_name", "torch", "cuda",
                          "timestamp"))
    base = dict(title="t", prov=prov, preset="smoke", verdicts=[], symbols={}, sections=[], failures=None, env=[],
                links=[], n_ok=1, n_failed=0)
    html = tpl.render(**base, threats={"image size": "32 px"}, skipped=[("cells/x.json", "truncated")])
    assert 'id="threats"' in html and 'href="#threats"' in html and 'id="skipped"' in html


def test_cards_link_to_their_figure(tmp_path):
    html = _page(tmp_path)
    card = html[html.index('id="claim3"'):]
    card = card[:card.index("</article>")]
    assert 'href="#context"' in card and 'href="#fig-context-global-cue-distance"' in card
    assert 'id="fig-context-global-cue-distance"' in html
