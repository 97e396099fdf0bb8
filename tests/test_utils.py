"""fcnprobe.utils and fcnprobe.device: the helpers that used to be written twice."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fcnprobe.device import device_name, machine, release_cuda, resolve_device, synchronize
from fcnprobe.errors import CellError, UsageError
from fcnprobe.utils import IGNORE_INDEX, check_finite, default_head, failure_threshold, one_line, param_count


def test_one_line_keeps_type_and_first_line():
    assert one_line(ValueError("boom\nsecond line")) == "ValueError: boom"
    assert one_line(KeyError()) == "KeyError" and len(one_line(ValueError("x" * 900))) == 500


@pytest.mark.parametrize("native, head", [(("dense",), "dense:4"), (("box",), "box"), (("vector",), "vector:4"),
                                          (("dense", "vector", "box"), "dense:4")])
def test_default_head_prefers_dense(native, head):
    assert default_head(native) == head


def test_param_count_and_threshold_against_closed_forms():
    assert param_count(torch.nn.Conv2d(3, 8, 3)) == 8 * 3 * 3 * 3 + 8
    assert failure_threshold(0.5) == 0.75 and failure_threshold(0.0) == 0.5
    assert IGNORE_INDEX == torch.nn.CrossEntropyLoss().ignore_index


@pytest.mark.parametrize("bad", [torch.tensor([0.0, float("nan")]), np.array([np.inf]), float("-inf")])
def test_check_finite_names_the_stage(bad):
    with pytest.raises(CellError, match="non-finite values at stage 'forward'"):
        check_finite(bad, "forward")


def test_check_finite_passes_values_through():
    t = torch.ones(3)
    assert check_finite(t, "x") is t and check_finite(np.array(["a"]), "x").shape == (1,)


def test_device_helpers_on_cpu():
    assert resolve_device("cpu") == "cpu" and resolve_device("auto") in ("cpu", "cuda")
    synchronize("cpu"), release_cuda("cpu")  # no-ops without CUDA
    assert device_name("cpu") and machine("cpu")["threads_count"] == torch.get_num_threads()
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA"):
            resolve_device("cuda")
