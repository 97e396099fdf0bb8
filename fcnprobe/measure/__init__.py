"""The measurement library: receptive fields, ERFs, FLOPs, timing and memory of any ``nn.Module``.

Knows nothing of probes, cells, sweeps or records: a probe plans cells, calls
these functions and scores (as fvcore's counting knows nothing of its tables).
A user who wants one number imports one module::

    >>> from fcnprobe.measure.receptive import theoretical_receptive_field
    >>> from fcnprobe.measure.erf import effective_receptive_field
    >>> from fcnprobe.measure.flops import count_flops
    >>> from fcnprobe.measure.timing import latency, TimingConfig
    >>> from fcnprobe.measure.memory import peak_memory

The names below are imported lazily, so ``import fcnprobe.measure`` is cheap.
"""
from __future__ import annotations

from fcnprobe.utils import lazy_exports

_LAZY = {
    "theoretical_receptive_field": "fcnprobe.measure.receptive",
    "numeric_receptive_field": "fcnprobe.measure.trf_numeric",
    "effective_receptive_field": "fcnprobe.measure.erf",
    "ERFResult": "fcnprobe.measure.erf",
    "count_flops": "fcnprobe.measure.flops",
    "estimate_flops": "fcnprobe.measure.flops",
    "latency": "fcnprobe.measure.timing",
    "TimingConfig": "fcnprobe.measure.timing",
    "time_ms_per_image": "fcnprobe.measure.timing",
    "gemm_gflops": "fcnprobe.measure.timing",
    "peak_memory": "fcnprobe.measure.memory",
    "try_batches": "fcnprobe.measure.memory",
    "is_oom": "fcnprobe.measure.memory",
}

__all__ = list(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
