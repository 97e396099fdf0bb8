"""fcnprobe.measure.memory: the OOM back-off (timm's _try_run) and the CPU peak-memory reading."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from fcnprobe.measure.memory import is_oom, peak_memory, resident_bytes, try_batches


def test_try_batches_halves_on_oom_like_timm():
    def fn(batch):
        if batch > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return batch * 10

    assert try_batches(fn, 16) == (20, 2, 3)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        try_batches(lambda b: fn(99), 4)  # still out of memory at batch 1
    with pytest.raises(ValueError):
        try_batches(lambda b: (_ for _ in ()).throw(ValueError("not memory")), 8)


def test_is_oom_reads_cuda_and_cpu_allocator_messages():
    assert is_oom(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 TB"))
    assert is_oom(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert not is_oom(ValueError("shape mismatch"))


class BigTemp(nn.Module):
    """Output (B, 3, H, W), but a (B, 300, H, W) temporary lives in between."""

    def forward(self, x):
        return x.repeat(1, 100, 1, 1).sum(1, keepdim=True).expand_as(x) + x


def test_resident_bytes_is_parameters_plus_input():
    conv, x = nn.Conv2d(3, 8, 3), torch.randn(2, 3, 16, 16)
    assert resident_bytes(conv, x) == 4 * (8 * 3 * 9 + 8 + x.numel())


def test_cpu_peak_memory_sees_the_temporary_and_the_resident_tensors():
    x = torch.randn(4, 3, 64, 64)
    m = peak_memory(lambda: BigTemp()(x), BigTemp(), x, "cpu")
    temp_mb = 4 * 300 * 64 * 64 * 4 / 2**20
    assert m["peak_mem_mb"] >= temp_mb + x.numel() * 4 / 2**20
    assert m["peak_mem_mb"] < 3 * temp_mb  # the profiler counts that buffer once, not per op
    assert m["peak_mem_method"].startswith("cpu_profiler_memory_events")
