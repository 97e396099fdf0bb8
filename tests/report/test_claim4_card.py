"""The claim 4 card and its table agree: both parsed from the rendered HTML, never from return values.

The card's evidence names each output by the table's own header; its numbers must be the ones in
that column: the FCN design's row, the best other design's row, or the constant-guess row.
"""
from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import pytest

from fcnprobe.report.build import build_report
from fcnprobe.results import Record
from synthetic_run import PROV, make_run

QUICK = Path(__file__).resolve().parents[2] / "reports" / "quick"
CONST_ROW = "constant guess (baseline)"
METRICS = ("findings_f1", "count_mae", "size_mae", "box_iou_mean")
# per design and seed: findings_f1, count_mae, size_mae, box_iou_mean; constants shared by all designs
SCORES = {("fcn_adapters", "fcn"): [(0.70, 0.50, 0.80, 0.70), (0.72, 0.40, 0.76, 0.62)],
          ("cnn_fc_heads", "cnn_fc"): [(0.69, 0.90, 0.81, 0.20), (0.68, 0.70, 0.79, 0.10)],
          ("attention_heads", "attention"): [(0.66, 1.10, 0.78, 0.15), (0.70, 1.00, 0.80, 0.17)]}
CONST = (0.685, 1.2, 0.77, 0.155)


def _records() -> list[Record]:
    out = []
    for (design, model), seeds in SCORES.items():
        for seed, vals in enumerate(seeds):
            metrics = {**dict(zip(METRICS, vals)), **{f"{m}_const": c for m, c in zip(METRICS, CONST)},
                       "params_count": 1000, "loss_curve": [1.0, 0.5], "loss_steps": [1, 2]}
            out.append(Record("shape", model, "multi_output", {"design": design}, seed,
                              f"multi-{design}-{seed}", metrics=metrics, provenance=PROV))
    return out


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment)).strip()


def _card_evidence(page: str) -> str:
    card = page.split('id="claim4"')[1].split("</article>")[0]
    paras = [_text(p) for p in re.findall(r"<p>(.*?)</p>", card, re.S)]
    return next(p for p in paras if " vs best other " in p or "constant guess" in p)


def _table(page: str) -> tuple[list[str], dict[str, list[str]]]:
    """Headers and rows (first cell -> cells) of the multi_output table."""
    after = page.split("Structured output (multi_output)")[1]
    table = after[after.index("<table"):after.index("</table>")]
    headers = [_text(h) for h in re.findall(r"<th[^>]*>(.*?)</th>", table, re.S)]
    rows = [[_text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)]
            for r in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S)]
    return headers, {r[0]: r for r in rows}


def _check(page: str) -> int:
    """Assert every number on the card is its table's; returns how many numbers were checked."""
    evidence, (headers, rows) = _card_evidence(page), _table(page)
    fcn_design, rest = evidence.split(": ", 1)
    others = [k for k in rows if k not in (fcn_design, CONST_ROW)]
    checked = 0
    for part in rest.split(" — ")[0].split("; "):
        label = max((h for h in headers if part.startswith(h)), key=len)  # the card names the column
        j, higher = headers.index(label), "higher is better" in label
        nums = re.findall(r"-?\d[\d,]*\.?\d*(?:e[-+]?\d+)?", part[len(label):])
        if "constant guess" in part:
            assert nums[-1] == rows[CONST_ROW][j], (part, rows[CONST_ROW])
            checked += 1
            continue
        mine, best = re.match(r"\s*(\S+) vs best other (\S+)", part[len(label):]).groups()
        values = {k: float(rows[k][j].replace(",", "")) for k in others}
        top = (max if higher else min)(values, key=values.get)
        assert mine == rows[fcn_design][j] and best == rows[top][j], (part, rows[fcn_design][j], rows[top][j])
        checked += 2
    return checked


def test_card_numbers_equal_the_table_over_several_seeds(tmp_path):
    page = build_report(make_run(tmp_path, _records())).read_text()
    assert _check(page) >= 4
    headers, rows = _table(page)
    # the seed mean, from the closed form, and the constant-guess row as written
    assert rows["fcn_adapters"][headers.index("count error (MAE, lower is better)")] == "0.45"
    assert rows[CONST_ROW][headers.index("findings F1 (higher is better)")] == "0.685"


def test_card_numbers_equal_the_table_on_the_quick_sample(tmp_path):
    if not (QUICK / "manifest.json").exists():
        pytest.skip("reports/quick is not in this checkout")
    root = tmp_path / "run"
    shutil.copytree(QUICK, root, ignore=shutil.ignore_patterns("index.html", "figures", "*.png"))
    assert _check(build_report(root).read_text()) >= 2


def test_the_check_can_fail(tmp_path):
    page = build_report(make_run(tmp_path, _records())).read_text()
    wrong = page.replace("<td>0.45</td>", "<td>0.46</td>", 1)
    with pytest.raises(AssertionError):
        _check(wrong)
