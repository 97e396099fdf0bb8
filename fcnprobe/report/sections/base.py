"""The section registry: a builder takes the loaded run and returns a ``Section`` (or None).

Section modules import from here, never from the package, so the package can
import every section module without an import cycle. Builders only read
records; they never train.

Example::

    @register_section("toy", order=90)
    def toy_section(run: RunData) -> Section | None:
        df = run.ok("toy")
        return None if df.empty else Section("toy", "Toy", "Does it count?", "We count.")
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
    """Decorator: register a section builder; ``order`` sets its place on the page."""
    return SECTIONS.register(name, order=order)


def ordered() -> list[str]:
    """Registered section names in page order."""
    return sorted(SECTIONS.names(), key=lambda n: SECTIONS.meta(n)["order"])
