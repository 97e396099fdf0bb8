"""The claim 4 card and the difficulty section's metric table agree, both parsed from the rendered HTML.

Issue 18: every number on the card equals the table's number for the same design, output and
metric. The run is written through the real store from difficulty records a real run could produce
(``tests/difficulty_synth.py``) and rendered by the real builder; nothing is read from return values.
"""
from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from fcnprobe.report.build import build_report
from synthetic_run import PROV, make_run
from tests.difficulty_synth import Design, as_records, records

QUICK = Path(__file__).resolve().parents[2] / "reports" / "quick"
HEADERS = {"steps to target": "steps to target [CI]", "learning-rate band": "LR band [CI]",
           "seed failure rate": "seed failures [CI]"}  # card label -> the table column it quotes
NUMBER = r"-?\d[\d,]*\.?\d*(?:e[-+]?\d+)?"
PART = re.compile(r"(?:.*?)(\w+)/(\w+) \[([a-z ]+)\]: (.*)$")
METRIC = re.compile(r"(steps to target|learning-rate band|seed failure rate) (.*) vs (.*) "
                    r"\((?:FCN harder|FCN easier|overlap|n/a)\)$")


def _run(tmp_path: Path, *frames: pd.DataFrame) -> str:
    return build_report(make_run(tmp_path, [r for f in frames for r in as_records(f, PROV)])).read_text()


def _supported_and_partly() -> list[pd.DataFrame]:
    locate = records("locate", [Design("fcn", "softargmax", 150.0), Design("fcn", "linear", 300.0),
                                Design("cnn_fc", "linear", 30.0)])
    fcn = Design("fcn", "softargmax", {"findings": 30.0, "count": 60.0, "size": 60.0, "box": 200.0}, tau_jitter=0.02)
    other = Design("cnn_fc", "linear", {"findings": 150.0, "count": 60.0, "size": 60.0, "box": 40.0}, tau_jitter=0.02)
    ds = Design("fcn", "softargmax", 20.0, deepsup=True)
    return [locate, records("multi_output", [fcn, other, ds], seeds=5)]


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment)).strip()


def _card(page: str) -> tuple[str, str]:
    """(the claim 4 card's evidence, the card's HTML)."""
    card = page.split('<article class="card" id="claim4">')[1].split("</article>")[0]
    paras = [_text(p) for p in re.findall(r"<p>(.*?)</p>", card, re.S)]
    return next(p for p in paras if "/" in p and "[" in p), card


def _tables(page: str) -> dict[tuple[str, str, str], dict[str, str]]:
    """(task, design, output) -> header -> cell of the difficulty section's metric tables."""
    section = page.split('<section id="difficulty">')[1].split("</section>")[0]
    out = {}
    for cap, table in re.findall(r'<p class="tcap">(.*?)</p>\s*<div[^>]*>(.*?)</div>', section, re.S):
        task = _text(cap).split(":")[0]
        if "difficulty metrics" not in _text(cap):
            continue
        headers = [_text(h) for h in re.findall(r"<th[^>]*>(.*?)</th>", table, re.S)]
        for tr in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S):
            row = dict(zip(headers, (_text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S))))
            out[(task, row["design"], row["output"])] = row
    return out


def _same(card_text: str, cell: str) -> int:
    """Assert the card's text quotes the table cell number for number; returns how many numbers."""
    got, want = re.findall(NUMBER, card_text), re.findall(NUMBER, cell)
    assert got == want and card_text == cell, (card_text, cell)
    return len(got)


def _check(page: str) -> int:
    """Assert every number on the card is its table's; returns how many numbers were checked."""
    evidence, tables = _card(page)[0], _tables(page)
    checked = 0
    for chunk in evidence.rstrip(".").split(" | "):
        task, output, outcome, rest = PART.match(chunk).groups()
        if outcome == "not measured":
            for design, const in re.findall(r"(\S+) did not beat the constant guess \((.*?)\)", rest):
                row = tables[(task, design, output)]
                checked += _same(const, row["constant guess"])
                assert row["beats constant"] == "no", row
            continue
        designs, metrics = rest.split(": ", 1)
        fcn, other = designs.split(" vs ")
        for part in metrics.split("; "):
            label, mine, theirs = METRIC.match(part).groups()
            checked += _same(mine, tables[(task, fcn, output)][HEADERS[label]])
            checked += _same(theirs, tables[(task, other, output)][HEADERS[label]])
    return checked


def test_card_numbers_equal_the_table(tmp_path):
    page = _run(tmp_path, *_supported_and_partly())
    evidence, card = _card(page)
    assert evidence.startswith("partly over 5 outputs") and "locate/box [harder]" in evidence
    assert _check(page) >= 5 * 3 * 2 * 3  # 5 outputs x 3 metrics x 2 designs x (value, lo, hi)
    assert 'href="#difficulty"' in card  # the card links to the section that holds the table
    assert "difficulty section's metric table" in _text(card)  # the rule, from report.claim4.RULE


def test_card_quotes_the_constant_guess_when_a_design_does_not_learn(tmp_path):
    page = _run(tmp_path, records("locate", [Design("fcn", "softargmax", 50.0),
                                             Design("cnn_fc", "linear", 50.0, gain_frac=0.02)]))
    assert "did not beat the constant guess" in _card(page)[0]
    assert _check(page) >= 1


def test_card_numbers_equal_the_table_on_the_quick_sample(tmp_path):
    if not (QUICK / "manifest.json").exists():
        pytest.skip("reports/quick is not in this checkout")
    root = tmp_path / "run"
    shutil.copytree(QUICK, root, ignore=shutil.ignore_patterns("index.html", "figures", "*.png", "*.jpg"))
    page = build_report(root).read_text()
    if '<section id="difficulty">' not in page:
        pytest.skip("reports/quick has no difficulty-probe records")
    assert _check(page) >= 6


def test_the_check_can_fail(tmp_path):
    page = _run(tmp_path, *_supported_and_partly())
    head, section = page.split('<section id="difficulty">')
    cell = _tables(page)[("locate", "fcn+softargmax", "box")]["steps to target [CI]"]
    wrong = re.sub(NUMBER, lambda m: m.group(0) + "1", cell, count=1)  # one number, one more digit
    with pytest.raises(AssertionError):
        _check(head + '<section id="difficulty">' + section.replace(f"<td>{html.escape(cell)}</td>",
                                                                     f"<td>{html.escape(wrong)}</td>"))
