"""fcnprobe.measure.outputs: picking the probed tensor from any model output, hooks, mode and device."""
from __future__ import annotations

import collections
import types

import pytest
import torch
import torch.nn as nn

from fcnprobe.measure.outputs import (capture_layer, model_device, preserved_mode, probe_tensor,
                                      select_output)

A, B = torch.zeros(1, 2, 4, 4), torch.ones(1, 3, 2, 2)


@pytest.mark.parametrize("out,key,expected", [
    (A, None, A), (collections.OrderedDict(aux=B, out=A), None, A), ({"aux": B, "out": A}, "aux", B),
    (types.SimpleNamespace(logits=A, hidden_states=None), None, A), ((B, A), None, B), ((B, A), "1", A),
    ((B, A), 1, A), ({"last_hidden_state": A, "pooler_output": B}, None, A)])
def test_select_output(out, key, expected):
    assert select_output(out, key) is expected


def test_select_output_errors_list_the_keys():
    with pytest.raises(ValueError, match=r"available: \['aux', 'out'\]"):
        select_output({"aux": B, "out": A}, "logits")
    with pytest.raises(ValueError, match="single tensor"):
        select_output(A, "out")
    with pytest.raises(ValueError, match="no tensor"):
        select_output({"n": 3})


def test_capture_layer_and_probe_tensor():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2))
    x = torch.randn(1, 3, 8, 8)
    with capture_layer(net, "0") as cap:
        net(x)
    assert cap.tensor.shape == (1, 4, 6, 6)
    assert probe_tensor(net, x, layer="0").shape == (1, 4, 6, 6) and probe_tensor(net, x).shape == (1, 2)
    with pytest.raises(ValueError, match="did you mean"):
        probe_tensor(net, x, layer="O")
    assert not net[0]._forward_hooks  # the hook is removed


def test_preserved_mode_and_parameter_free_device():
    net = nn.Sequential(nn.Dropout(), nn.BatchNorm2d(3)).train()
    net[1].eval()
    with preserved_mode(net):
        net.eval()
    assert net.training and net[0].training and not net[1].training
    assert model_device(nn.ReLU()) == torch.device("cpu")
