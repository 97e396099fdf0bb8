"""The README's "What we measured" table agrees with the committed records of the run it names,
and the README uses the report glossary's terms."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from fcnprobe.report.readme import glossary_terms, parse_readme, readme_rows, readme_table

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_table_matches_the_records_of_the_run_it_names():
    run, rows = parse_readme(README)
    assert f"from `{run}`" in README  # the prose names the run, not only the marker
    if not (ROOT / run / "manifest.json").exists():
        pytest.skip(f"{run} is not in this checkout")
    want = readme_rows(ROOT / run)
    assert [r[:2] for r in rows] == [w[:2] for w in want], "claims or verdicts differ: rerun scripts/readme_table.py"
    for got, exp in zip(rows, want):
        assert got == exp, f"README row {got[0]!r} disagrees with {run}:\n README: {got[2]}\n records: {exp[2]}"


def test_the_check_sees_a_changed_number(tmp_path):
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "report"))
    from synthetic_run import FCN_FAILS, cue, make_run

    run = make_run(tmp_path / "run", [cue("fcn", FCN_FAILS, 13), cue("fcn_gap", [1.0] * 6, None, i=1)])
    text = readme_table(run, "runs/x")
    name, rows = parse_readme("intro\n" + text + "\nmore")
    assert name == "runs/x" and rows == readme_rows(run)
    claim1 = next(r for r in rows if r[0].startswith("Claim 1"))
    number = re.search(r"\d+%", claim1[2]).group(0)  # a number the card computed from the records
    changed = claim1[2].replace(number, f"{int(number[:-1]) + 1}%", 1)
    _, bad = parse_readme(text.replace(claim1[2], changed))
    assert bad != readme_rows(run)


def test_readme_names_every_glossary_term():
    terms = README.split("**Terms**", 1)[1].split("\n\n", 1)[0]
    missing = [t for t in glossary_terms() if f"**{t}**" not in terms]
    assert missing == [], f"README's Terms paragraph lacks {missing}"


def test_readme_keeps_its_two_set_up_commands():
    setup = README.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    assert "pip install -e . && python -m fcnprobe.run all" in setup
    assert 'pip install -e ".[test,dask,ray]" && python -m pytest' in setup
