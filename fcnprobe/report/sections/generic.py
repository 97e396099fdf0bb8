"""The section for probes without one of their own: a table per probe, labelled from its declarations.

A probe registered outside the package (or a new one without a section yet)
still reaches the page: its numeric declared metrics, averaged over seeds per
model, task and variant, under their declared labels (never the raw names).
"""
from __future__ import annotations

import pandas as pd

from fcnprobe.report.data import RunData, table_html
from fcnprobe.report.sections.base import SECTIONS, Section, register_section

KEYS = ("model", "task", "param_variant")


def _probe_table(run: RunData, probe: str) -> str | None:
    """Seed means of the probe's scalar declared metrics per (model, task, variant)."""
    df = run.ok(probe)
    declared = run.declared.get(probe, {})
    names = [n for n, m in declared.items() if not m.is_array and n in df
             and pd.to_numeric(df[n], errors="coerce").notna().any()]
    if df.empty or not names:
        return None
    keys = [k for k in KEYS if k in df]
    values = df[names].apply(pd.to_numeric, errors="coerce")
    tab = pd.concat([df[keys], values], axis=1).groupby(keys, dropna=False).mean().reset_index()
    return table_html(tab, {**run.labels, "param_variant": "variant"})


@register_section("generic", order=1000)
def generic_section(run: RunData) -> Section | None:
    """One table per probe of the run that has no section of its own."""
    probes = sorted(set(run.df.probe)) if not run.df.empty and "probe" in run.df else []
    tables = [(f"{probe}: {_help(run, probe)}", t) for probe in probes if probe not in SECTIONS
              for t in [_probe_table(run, probe)] if t is not None]
    if not tables:
        return None
    return Section("generic", "Other probes", "What did the probes without a section of their own measure?",
                   "Seed means of each probe's declared scalar metrics, per model, task and variant.",
                   tables=tables)


def _help(run: RunData, probe: str) -> str:
    return str(run.manifest.get("declared", {}).get(probe, {}).get("help", "records"))
