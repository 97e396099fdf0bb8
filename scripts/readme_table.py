"""Print the README's "What we measured" table from a run directory's records.

Usage: ``python scripts/readme_table.py reports/quick`` and paste the output
(markers included) over the README's block; ``tests/test_readme.py`` checks it.
"""
from __future__ import annotations

import sys

from fcnprobe.report.readme import readme_table


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/readme_table.py RUN_DIR", file=sys.stderr)
        return 2
    print(readme_table(argv[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
