"""Report sections, one module per probe, registered in ``SECTIONS`` in page order.

A section builder takes the loaded run and returns a ``Section`` (or None when
the run has no records for it). Builders only read records; they never train.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from fcnprobe.registry import Registry
from fcnprobe.report.figures import Figure

SECTIONS: Registry = Registry("report section")


@dataclasses.dataclass
class Section:
    key: str
    title: str
    question: str
    method: str
    figures: list[Figure] = dataclasses.field(default_factory=list)
    tables: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (caption, escaped html)
    notes: list[str] = dataclasses.field(default_factory=list)


def register_section(name: str, order: int) -> Callable:
    return SECTIONS.register(name, order=order)


def ordered() -> list[str]:
    return sorted(SECTIONS.names(), key=lambda n: SECTIONS.meta(n)["order"])


from fcnprobe.report.sections import context, cost, erf, shape  # noqa: E402,F401  (registration)
