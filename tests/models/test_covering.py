"""The RF-covering conv-only nets: TRF >= 2x the image side at every preset size, conv only,
parameters near fcn's, and the TRF is real (a change at the far corner reaches the opposite corner)."""
from __future__ import annotations

import pytest
import torch

from fcnprobe.models import MODELS, create_model
from fcnprobe.models.convnets import covering_dilations
from fcnprobe.utils import param_count

COVER = {"dilated_deep": 2, "fcn_encdec_deep": 2, "fcn_pyramid": 2}


@pytest.mark.parametrize("name,factor", COVER.items())
@pytest.mark.parametrize("size,width,depth", [(16, 8, 3), (32, 16, None), (64, None, None)])
def test_trf_covers_the_image(name, factor, size, width, depth):
    model = create_model(name, head="dense:2", image_size=size, width=width, depth=depth)
    assert model.receptive_field(size) >= factor * size
    assert MODELS.meta(name)["category"] == "fcn"
    assert not any(isinstance(m, (torch.nn.Linear, torch.nn.MultiheadAttention, torch.nn.AdaptiveAvgPool2d))
                   for m in model.modules())
    ref = param_count(create_model("fcn", head="dense:2", image_size=size, width=width, depth=depth))
    assert 0.8 * ref <= param_count(model) <= 1.25 * ref or depth == 3  # smoke's depth 3 fcn is tiny


def test_covering_dilations_closed_form():
    dil = covering_dilations(32, 6)  # 1 + 2 * sum(d) >= 64
    assert dil == [1, 1, 2, 4, 8, 16, 1] and 1 + 2 * sum(dil) == 67


@pytest.mark.parametrize("name", list(COVER))
def test_far_corner_reaches_the_opposite_corner(name):
    torch.manual_seed(0)
    model = create_model(name, head="dense:2", image_size=32, width=8).eval()
    x = torch.randn(1, 3, 32, 32)
    y = x.clone()
    y[..., 31, 31] += 5.0
    with torch.no_grad():
        assert not torch.equal(model(x)[0, :, 0, 0], model(y)[0, :, 0, 0])
