"""Where a number came from: package versions, git sha, device, CPU, threads, time.

Every record and every run manifest carries this (lm-evaluation-harness records
the same, so runs can be compared and reproduced). Torch is imported lazily so
that the report, which reads provenance, never needs it.
"""
from __future__ import annotations

import datetime as _dt
import functools
import os
import platform
import subprocess
import sys
from pathlib import Path

from fcnprobe import __version__


@functools.lru_cache(maxsize=1)
def git_state() -> tuple[str | None, bool | None]:
    """(sha, dirty) of the checkout fcnprobe runs from, or (None, None) outside git."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        return sha, bool(dirty)
    except (OSError, subprocess.SubprocessError):
        return None, None


def cpu_name() -> str:
    """The CPU model string from /proc/cpuinfo, else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: str) -> str:
    """A human name for ``device``: the GPU's name on CUDA, the CPU model otherwise."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return cpu_name()


def now() -> str:
    """UTC time in ISO 8601 with seconds."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def collect(device: str = "cpu") -> dict:
    """Provenance for a record produced on ``device`` in this process."""
    import torch

    sha, dirty = git_state()
    return {
        "fcnprobe_version": __version__,
        "git_sha": sha,
        "git_dirty": dirty,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": device,
        "device_name": device_name(device),
        "cpu": cpu_name(),
        "torch_threads": torch.get_num_threads(),
        "pid": os.getpid(),
        "hostname": platform.node(),
        "timestamp": now(),
    }
