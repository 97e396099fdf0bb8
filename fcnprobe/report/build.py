"""Render a run directory's records into one self-contained HTML page.

``build_report(run_dir)`` writes ``run_dir/index.html``: provenance, a box
listing the cell files that were skipped (unreadable, or breaking their probe's
declared metrics: ``RunData.load``), one verdict card per seed claim, one
section per probe, the failed cells, the threats to validity (``threats.py``),
the glossary and the environment. Jinja2 autoescapes every string; tables are escaped by pandas and
figures are matplotlib's own SVG/PNG. Nothing here imports torch.

Example::

    >>> from fcnprobe.report.build import build_report
    >>> build_report("runs/latest")
    PosixPath('runs/latest/index.html')
"""
from __future__ import annotations

import json
from pathlib import Path

from fcnprobe.report.data import RunData, table_html
from fcnprobe.report.env import environment
from fcnprobe.report.figures import unique_ids, write_figures
from fcnprobe.report.sections import SECTIONS, ordered
from fcnprobe.report.threats import threats
from fcnprobe.report.verdicts import compute_verdicts
from fcnprobe.results import MANIFEST, TABLE, RunStore

SYMBOLS = {"supported": "✔", "partly": "◐", "not supported": "✘", "inconclusive": "?", "not measured": "○"}
ENV_KEYS = ("fcnprobe_version", "git_sha", "git_dirty", "python", "torch", "cuda", "device", "device_name",
            "cpu", "torch_threads", "hostname", "timestamp")


def _failures(run: RunData) -> str | None:
    bad = run.failed()
    if bad.empty:
        return None
    params = [c for c in bad.columns if c.startswith("param_")]
    view = bad[["error", "probe", "model", "task", *params]].dropna(axis=1, how="all")
    return table_html(view.sort_values(["probe", "model", "task"]))


def _env(run: RunData) -> list[tuple[str, str]]:
    prov = run.manifest.get("provenance", {})
    rows = [(k, str(prov.get(k))) for k in ENV_KEYS if k in prov]
    cfg = run.manifest.get("config", {})
    rows += [(f"config.{k}", json.dumps(v)) for k, v in sorted(cfg.items())]
    rows += [(f"settings.{k}", json.dumps(v, sort_keys=True)) for k, v in sorted(run.manifest.get("settings", {}).items())]
    return rows


def render(run: RunData, title: str = "fcnprobe report", page_dir: Path | None = None) -> str:
    sections = [s for s in (SECTIONS.get(name)(run) for name in ordered()) if s is not None]
    figs = [f for s in sections for f in s.figures]
    if page_dir is not None:
        write_figures(figs, page_dir)  # figures/<id>.svg and .csv beside the page; ids made unique
    unique_ids(figs)
    links = [name for name in (TABLE, "records.parquet", MANIFEST) if (run.root / name).exists()]
    n_failed = len(run.failed())
    prov = run.manifest.get("provenance", {})
    ctx = dict(title=title, prov={k: prov.get(k) for k in ENV_KEYS}, preset=run.preset, verdicts=compute_verdicts(run),
               symbols=SYMBOLS, sections=sections, failures=_failures(run), env=_env(run), links=links,
               n_ok=len(run.df) - n_failed, n_failed=n_failed, skipped=run.skipped,
               threats=threats(run))
    return environment().get_template("report.html.j2").render(**ctx)


def build_report(run_dir: str | Path, title: str = "fcnprobe report") -> Path:
    """Write ``run_dir/index.html`` (and refresh ``records.csv``) from the stored records."""
    run_dir = Path(run_dir)
    if not (run_dir / MANIFEST).exists():
        from fcnprobe.errors import UsageError

        raise UsageError(f"{run_dir} has no {MANIFEST}: not an fcnprobe run directory")
    RunStore(run_dir).write_table()
    out = run_dir / "index.html"
    out.write_text(render(RunData.load(run_dir), title, page_dir=run_dir), encoding="utf-8")
    return out


def build_comparison(run_a: str | Path, run_b: str | Path, out: str | Path | None = None) -> Path:
    """Write a page of metric deltas (B - A) for cells present in both runs."""
    from fcnprobe.report.compare import render_comparison

    out_dir = Path(out) if out else Path(run_b) / "compare"
    out_dir.mkdir(parents=True, exist_ok=True)
    page = out_dir / "index.html"
    page.write_text(render_comparison(RunData.load(run_a), RunData.load(run_b)), encoding="utf-8")
    return page
