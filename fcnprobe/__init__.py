"""fcnprobe: measure what fully convolutional networks cannot do, and what the fixes cost.

The public API is imported lazily, so ``import fcnprobe`` (and the report, which
must not import torch) stays cheap::

    >>> import fcnprobe
    >>> fcnprobe.list_models("fcn*")
    ['fcn', 'fcn_encdec', 'fcn_gap']
    >>> model = fcnprobe.create_model("dilated", head="dense:5", image_size=32)
    >>> df = fcnprobe.load_run("runs/latest")

Measurement alone (no sweep, no records) lives in ``fcnprobe.measure``:
``effective_receptive_field``, ``theoretical_receptive_field``,
``numeric_receptive_field``, ``count_flops``, ``latency`` and ``peak_memory``
are exported here from there.
"""
from __future__ import annotations

from fcnprobe.utils import lazy_exports

__version__ = "0.1.0"

_LAZY = {
    "create_model": "fcnprobe.models",
    "list_models": "fcnprobe.models",
    "MODELS": "fcnprobe.models",
    "list_tasks": "fcnprobe.tasks",
    "create_task": "fcnprobe.tasks",
    "TASKS": "fcnprobe.tasks",
    "PROBES": "fcnprobe.probes",
    "Record": "fcnprobe.results",
    "RunStore": "fcnprobe.results",
    "load_run": "fcnprobe.results",
    "RunConfig": "fcnprobe.config",
    "run_sweep": "fcnprobe.sweep",
    "effective_receptive_field": "fcnprobe.measure.erf",
    "theoretical_receptive_field": "fcnprobe.measure.receptive",
    "numeric_receptive_field": "fcnprobe.measure.trf_numeric",
    "count_flops": "fcnprobe.measure.flops",
    "latency": "fcnprobe.measure.timing",
    "TimingConfig": "fcnprobe.measure.timing",
    "peak_memory": "fcnprobe.measure.memory",
    "Metric": "fcnprobe.metrics",
    "validate_record": "fcnprobe.metrics",
    "probe": "fcnprobe.api",
    "list_executors": "fcnprobe.executors",
}

__all__ = ["__version__", *_LAZY]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
