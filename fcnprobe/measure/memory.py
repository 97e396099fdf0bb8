"""Peak memory of one forward, and the out-of-memory back-off of timm's ``_try_run``.

Peak memory: on CUDA, ``max_memory_allocated`` after ``reset_peak_memory_stats``
around one call, above the baseline, plus the resident weights and input. On
CPU, the profiler's memory events (``profile_memory=True``): live-tensor bytes
at op granularity plus the resident weights and input, so the two devices
measure the same thing; transient buffers freed inside one op are not seen.
The method is named in the result (``peak_mem_method``).

Example::

    >>> import torch
    >>> m, x = torch.nn.Conv2d(3, 8, 3), torch.randn(1, 3, 64, 64)
    >>> peak_memory(lambda: m(x), m, x)["peak_mem_mb"] > 0
    True
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from fcnprobe.device import release_cuda, synchronize


def is_oom(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator's 'can't allocate memory'."""
    text = str(exc).lower()
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


def try_batches(fn: Callable[[int], Any], batch: int, device: str = "cpu") -> tuple[Any, int, int]:
    """``fn(batch)``, halving the batch on out-of-memory (timm's ``_try_run``).

    Returns (result, batch used, number of halvings); OOM at batch 1 re-raises.
    """
    backoffs = 0
    while True:
        try:
            return fn(batch), batch, backoffs
        except Exception as exc:  # noqa: BLE001 -- only OOM is retried
            if not is_oom(exc) or batch == 1:
                raise
            release_cuda(device)
            batch, backoffs = max(1, batch // 2), backoffs + 1


def resident_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the model's parameters and buffers plus the input."""
    tensors = [*model.parameters(), *model.buffers(), x]
    return sum(t.numel() * t.element_size() for t in tensors)


def peak_memory(fn: Callable[[], Any], model: nn.Module, x: torch.Tensor, device: str = "cpu") -> dict[str, Any]:
    """Peak MiB during one call of ``fn``, weights and input included (method named in the result)."""
    if device.startswith("cuda"):
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)  # weights, input and any reference operands live here
        fn()
        synchronize(device)
        extra = torch.cuda.max_memory_allocated(device) - base
        return {"peak_mem_mb": (resident_bytes(model, x) + extra) / 2**20,
                "peak_mem_method": "cuda_max_memory_allocated_above_baseline+resident"}
    peak = profiled_peak_bytes(fn)
    return {"peak_mem_mb": (resident_bytes(model, x) + peak) / 2**20,
            "peak_mem_method": "cpu_profiler_memory_events_op_level+resident"}


def profiled_peak_bytes(fn: Callable[[], Any]) -> int:
    """Highest running sum of the profiler's allocation events during ``fn`` (op granularity)."""
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # kineto prints start/stop lines otherwise; probes never print
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e.time_range.start, e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage)
                    for e in prof.events())
    running = np.cumsum([b for _, b in events if b])
    return int(max(running.max(initial=0), 0))
