"""The README's "What we measured" table, generated from a run's records (never typed by hand).

``readme_table(run_dir)`` renders one Markdown row per verdict card: the card's
title, verdict and evidence, exactly as the report computes them from that run.
``scripts/readme_table.py RUN`` prints it for pasting; ``tests/test_readme.py``
parses the README's table and the run it names (the ``<!-- readme-table: RUN -->``
marker) and fails when they disagree. Torch-free, like the rest of the report.

Example::

    >>> print(readme_table("reports/quick"))  # doctest: +SKIP
    | claim | verdict | evidence (from `reports/quick`) |
"""
from __future__ import annotations

import re
from pathlib import Path

from fcnprobe.report.data import RunData
from fcnprobe.report.glossary import TERMS
from fcnprobe.report.verdicts import compute_verdicts

MARKER = re.compile(r"<!-- readme-table: (\S+) -->\n(.*?)<!-- /readme-table -->", re.S)


def _cell(text: str) -> str:
    """Markdown-safe table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def readme_rows(run_dir: str | Path) -> list[tuple[str, str, str]]:
    """(claim title, verdict, evidence) per verdict card of the run, in page order."""
    run = RunData.load(run_dir)
    return [(_cell(v.title), _cell(v.verdict), _cell(v.evidence)) for v in compute_verdicts(run)]


def readme_table(run_dir: str | Path, name: str | None = None) -> str:
    """The Markdown table, between the markers the test reads (``name``: the run as the README cites it)."""
    name = name or str(run_dir)
    lines = [f"<!-- readme-table: {name} -->", f"| claim | verdict | evidence (from `{name}`) |", "|---|---|---|"]
    lines += [f"| {c} | {v} | {e} |" for c, v, e in readme_rows(run_dir)]
    return "\n".join(lines + ["<!-- /readme-table -->"])


def parse_readme(text: str) -> tuple[str, list[tuple[str, str, str]]]:
    """(the run the README names, its table rows) from the README's marked table."""
    m = MARKER.search(text)
    if m is None:
        raise ValueError("the README has no '<!-- readme-table: RUN -->' ... '<!-- /readme-table -->' block")
    rows = []
    for line in m.group(2).strip().splitlines()[2:]:  # skip the header and the rule
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        rows.append(tuple(cells))
    return m.group(1), rows


def glossary_terms() -> list[str]:
    """The glossary's terms, as the README's "Terms" list must name them."""
    return [t.name for t in TERMS]
