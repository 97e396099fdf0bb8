"""The probes. Importing this package registers every probe module in it.

A probe module registers itself with ``@register_probe(name, order=..., help=...)``;
every module of this package is imported here, so adding a probe is adding a
file. Probe modules import torch only inside the functions that run cells, so
importing this package (to read the declared metrics) stays torch-free.
"""
from fcnprobe.probes.base import (PROBES, Cell, CellContext, CellOutput, Probe, declarations, declared_metrics,
                                  probes_in_order, register_probe)
from fcnprobe.registry import import_submodules

import_submodules(__name__, __path__)

__all__ = ["PROBES", "Cell", "CellContext", "CellOutput", "Probe", "declarations", "declared_metrics",
           "probes_in_order", "register_probe"]
