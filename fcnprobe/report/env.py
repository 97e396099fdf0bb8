"""The report's Jinja2 environment, shared by the run page and the comparison page.

Autoescaping is on for every template, and an undefined variable is an error
(``StrictUndefined``), so a template typo fails loudly instead of printing nothing.
"""
from __future__ import annotations

import jinja2


def environment() -> jinja2.Environment:
    """The environment over ``fcnprobe/report/templates``."""
    from fcnprobe.report import glossary

    loader = jinja2.PackageLoader("fcnprobe.report", "templates")
    env = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    return glossary.install(env)  # the term() link helper and the link_terms filter
