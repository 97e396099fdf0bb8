"""One place for device handling: resolve ``auto``, synchronise, release memory, name the chip.

Every function imports torch only when called, so the CLI and the config can
import this module cheaply. Probes and the measurement library call
``synchronize`` before reading a clock or a memory counter (timm's
``benchmark.py`` convention) and ``release_cuda`` after an out-of-memory error.

Example::

    >>> from fcnprobe.device import resolve_device, device_name
    >>> dev = resolve_device("auto")   # 'cuda' when available, else 'cpu'
    >>> device_name("cpu")             # the CPU's model name from /proc/cpuinfo
"""
from __future__ import annotations

import functools
from typing import Any

from fcnprobe.errors import UsageError


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when available else 'cpu'; 'cuda' without CUDA is a UsageError."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {device} was asked for, but torch {torch.__version__} sees no CUDA device")
    return device


def synchronize(device: str) -> None:
    """Wait for queued CUDA work on ``device`` before reading a clock or a memory counter."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def release_cuda(device: str) -> None:
    """Return cached CUDA blocks to the driver (after an OOM, or between cells); no-op on CPU."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


@functools.lru_cache(maxsize=None)
def device_name(device: str) -> str:
    """The GPU's name, or the CPU's model name (``provenance.device_name``), looked up once per device."""
    from fcnprobe.provenance import device_name as name

    return name(device)


def machine(device: str) -> dict[str, Any]:
    """Threads and device; on CUDA also whether TF32 is on (cuDNN convs default to it, sgemm does not)."""
    import torch

    cuda = device.startswith("cuda")
    return {"threads_count": torch.get_num_threads(), "device_name": device_name(device),
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32 if cuda else None,
            "tf32_cudnn": torch.backends.cudnn.allow_tf32 if cuda else None}
