"""Report sections, one module per probe, registered in ``SECTIONS`` in page order.

Every module of this package is imported here (adding a section is adding a
file); they register through ``fcnprobe.report.sections.base`` and never import
this package back. A probe without a section of its own still appears on the
page, in the generic section (``sections/generic.py``) with its declared labels.
"""
from fcnprobe.registry import import_submodules
from fcnprobe.report.sections.base import SECTIONS, Section, ordered, register_section

import_submodules(__name__, __path__)

__all__ = ["SECTIONS", "Section", "ordered", "register_section"]
