"""Shared benchmark setup: an explicit torch thread count, recorded with the machine info.

Torch is pinned to ``FCNPROBE_BENCH_THREADS`` intra-op threads (default 1) for
the whole session: on a shared 2-core box two threads that lose a core to a
neighbour run 10x slower (measured here), one thread degrades gracefully, and a
baseline is only comparable at the same thread count. Every saved run records
the thread count, torch version and CPU, so two baselines are compared only
when those match (``pytest-benchmark compare`` shows machine_info side by side).
"""
from __future__ import annotations

import os

import pytest
import torch


def pytest_benchmark_update_machine_info(config, machine_info):
    from fcnprobe.device import device_name

    machine_info["torch_version"] = torch.__version__
    machine_info["torch_threads"] = torch.get_num_threads()
    machine_info["cpu_model"] = device_name("cpu")


@pytest.fixture(scope="session", autouse=True)
def explicit_torch_threads():
    """Pin torch's intra-op threads to FCNPROBE_BENCH_THREADS (default 1); restore afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("FCNPROBE_BENCH_THREADS", "1")))
    yield torch.get_num_threads()
    torch.set_num_threads(before)
