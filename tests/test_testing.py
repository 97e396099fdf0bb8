"""fcnprobe.testing: each assertion passes on a model that meets it and fails with a readable paragraph."""
from __future__ import annotations

import pytest
import torch.nn as nn

from fcnprobe.testing import assert_macs, assert_output_shape, assert_receptive_field


def _stack(n: int) -> nn.Sequential:
    return nn.Sequential(*[nn.Conv2d(3, 3, 3, padding=1) for _ in range(n)])


class _Pooled(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y + y.mean((2, 3), keepdim=True)


def test_receptive_field():
    assert assert_receptive_field(_stack(4), covers=9).field.size_px == (9, 9)  # 1 + 4 * 2
    with pytest.raises(AssertionError, match=r"sees 9 x 9 px, less than the required 64 px.*Per stage: .*3 9 px"):
        assert_receptive_field(_stack(4), covers=64)
    assert assert_receptive_field(_Pooled(), covers=512, input_size=64).field.kind == "global"


class _Flip(nn.Module):
    def forward(self, x):
        return x.flip(-1)


def test_receptive_field_unknown_fails_and_names_the_op():
    with pytest.raises(AssertionError, match="could not be established.*flip"):
        assert_receptive_field(_Flip(), covers=8)


def test_output_shape():
    net = nn.Sequential(nn.Conv2d(3, 5, 3, 2, 1), nn.Conv2d(5, 2, 1))
    assert assert_output_shape(net, 32, (1, 2, 16, 16)) == (1, 2, 16, 16)
    assert_output_shape(net, (3, 32, 48), (None, 2, 16, 24))
    with pytest.raises(AssertionError, match=r"to \(1, 2, 16, 16\), not the expected \(1, 2, 32, 32\).*1/2"):
        assert_output_shape(net, 32, (1, 2, 32, 32))


def test_macs():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    macs = 3 * 8 * 9 * 32 * 32
    assert assert_macs(conv, 32, below=macs + 1) == macs
    with pytest.raises(AssertionError, match=r"costs 0\.0002212 GMACs .* not below .*convolution"):
        assert_macs(conv, 32, below=macs)
