"""Theoretical receptive fields against closed forms, read off real layers."""
from __future__ import annotations

import pytest
import torch.nn as nn

import fcnprobe
from fcnprobe.measure.receptive import theoretical_receptive_field as trf
from fcnprobe.models.convnets import yu_koltun_dilations


@pytest.mark.parametrize("depth", [1, 2, 5, 9])
def test_stacked_3x3_is_1_plus_2L(depth):
    assert fcnprobe.create_model("fcn", depth=depth).receptive_field(32) == 1 + 2 * depth
    assert fcnprobe.create_model("coordconv", depth=depth).receptive_field(32) == 1 + 2 * depth


@pytest.mark.parametrize("depth", [2, 4, 6, 7, 12])
def test_dilations_give_1_plus_2_sum_d(depth):
    dil = yu_koltun_dilations(depth)
    assert len(dil) == depth
    assert fcnprobe.create_model("dilated", depth=depth).receptive_field(32) == 1 + 2 * sum(dil)


def test_yu_koltun_schedule():
    assert yu_koltun_dilations(7) == [1, 1, 2, 4, 8, 16, 1]
    assert yu_koltun_dilations(9) == [1, 1, 2, 4, 8, 16, 2, 4, 1]


@pytest.mark.parametrize("spec", [[(3, 2, 1)] * 3, [(3, 1, 1), (5, 2, 1), (3, 2, 2), (2, 2, 1)], [(7, 4, 1), (3, 1, 3)]])
def test_strides_1_plus_sum_k_minus_1_d_J(spec):
    net = nn.Sequential(*[nn.Conv2d(1, 1, k, stride=s, dilation=d) for k, s, d in spec])
    expected, jump = 1, 1
    for k, s, d in spec:
        expected += (k - 1) * d * jump
        jump *= s
    assert trf(net, 64) == expected


def test_seed_models_and_global_families():
    assert trf(fcnprobe.create_model("seed_simple_fcn", head="dense:10"), 256) == 5
    for name in ("attention", "cnn_fc", "fcn_gap", "nonlocal"):
        assert fcnprobe.create_model(name).receptive_field(32) is None, name
    assert trf(nn.Sequential(nn.Conv2d(1, 1, 3), nn.AdaptiveAvgPool2d(1)), 32) is None


def test_encdec_counts_downs_and_bilinear_ups():
    # stem 3 (J=1) -> s2 +2 (J=2) -> s2 +4 (J=4) -> dec +8 -> up +4 (J=2) -> +4 -> up +2 (J=1) -> +2
    assert fcnprobe.create_model("fcn_encdec", depth=6).receptive_field(32) == 29


def test_arbitrary_modules_use_the_graph_int_none_or_unknown():
    """Not registration order: a strided shortcut registered first is not counted in series."""
    import torch

    from fcnprobe.measure.receptive import UnknownReceptiveField

    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.short = nn.Conv2d(3, 4, 1, stride=2)  # registered first, runs in parallel
            self.a, self.b = nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            return self.short(x) + self.b(nn.functional.relu6(self.a(x)))

    class Flip(nn.Module):
        def forward(self, x):
            return torch.flip(x, (-1,))

    assert trf(Res(), 32) == 7  # 3 (J 2) + 2 * 2; walking modules in registration order gave 13
    assert trf(nn.Sequential(nn.Conv2d(3, 3, 3), nn.Flatten(), nn.LazyLinear(2)), 16) is None
    with pytest.raises(UnknownReceptiveField, match="flip"):
        trf(Flip(), 16)
