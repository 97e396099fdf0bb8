"""The probes. Importing this package registers every probe that exists.

Each probe module registers itself with ``@register_probe``; a probe that is not
built yet is simply absent from ``PROBES`` and from ``run all``.
"""
import importlib

from fcnprobe.probes.base import PROBES, Cell, CellContext, CellOutput, Probe, probes_in_order, register_probe

_PROBE_MODULES = ("context", "erf", "shape", "cost")  # in the order 'all' runs them

for _name in _PROBE_MODULES:
    try:
        importlib.import_module(f"fcnprobe.probes.{_name}")
    except ModuleNotFoundError as _exc:  # not built yet; anything else must surface
        if _exc.name != f"fcnprobe.probes.{_name}":
            raise

__all__ = ["PROBES", "Cell", "CellContext", "CellOutput", "Probe", "probes_in_order", "register_probe"]
