"""Every trunk takes every structured head: {fcn, cnn_fc, attention (+ full-res variants)} x
{linear regression, soft-argmax, heatmap decode, native, pooling}: shapes, gradients, the decoded
heatmap, the linear head's target standardisation, and the dense heads' per-pixel resolution."""
from __future__ import annotations

import pytest
import torch

import fcnprobe
from fcnprobe.models import ADAPTERS
from fcnprobe.models.adapters import HeatmapView, build_multi_head, set_target_stats, standardised_error

TRUNKS = ("fcn", "cnn_fc", "cnn_fc_fullres", "attention", "attention_fullres")
HEADS = {"vector:4@linear": (4,), "box@linear": (4,), "box@softargmax": (4,), "box@heatmap_decode": (4,),
         "vector:4@softargmax": (4,), "vector:2@gap": (2,), "box": (4,), "vector:3": (3,), "dense:3": (3, 16, 16)}
SIZE, WIDTH, DEPTH = 16, 8, 3


def _build(trunk: str, head: str):
    torch.manual_seed(0)
    return fcnprobe.create_model(trunk, head=head, image_size=SIZE, width=WIDTH, depth=DEPTH)


@pytest.mark.parametrize("head", list(HEADS))
@pytest.mark.parametrize("trunk", TRUNKS)
def test_every_trunk_takes_every_head(trunk, head):
    model = _build(trunk, head)
    x = torch.randn(2, 3, SIZE, SIZE, requires_grad=True)
    y = model(x)
    assert tuple(y.shape) == (2, *HEADS[head]) and torch.isfinite(y).all()
    adapter = head.partition("@")[2]
    if adapter and not ADAPTERS.meta(adapter)["differentiable"]:
        assert not y.requires_grad  # post-processing: trained through its heatmap instead
        y = HeatmapView(model)(x)
        assert tuple(y.shape) == (2, 1, SIZE, SIZE)
    y.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("trunk", ("fcn", "cnn_fc", "attention"))
def test_structured_multi_head_on_every_trunk(trunk):
    specs = {"findings": "vector:4@linear", "params": "vector:2@linear", "box": "box@softargmax"}
    net = build_multi_head(trunk, specs, in_channels=4, image_size=32, width=16, depth=4)
    assert tuple(net(torch.randn(2, 4, 32, 32)).shape) == (2, 10)


def test_linear_head_is_de_standardised_and_has_no_sigmoid():
    model = _build("cnn_fc", "box@linear").eval()
    x = torch.randn(4, 3, SIZE, SIZE)
    z = model(x)  # mean 0, std 1: the raw regression
    mean, std = torch.tensor([0.5, 0.4, 0.6, 0.7]), torch.tensor([0.2, 0.1, 0.3, 0.05])
    assert set_target_stats(model, mean, std) == 1
    torch.testing.assert_close(model(x), mean + std * z)
    target = torch.rand(4, 4)
    torch.testing.assert_close(standardised_error(model(x), target, std), (mean + std * z - target) / std)
    big = _build("fcn", "box@linear")
    with torch.no_grad():
        big.head.fc.bias.fill_(50.0)
    assert big(x).min() > 1.0  # unbounded: no sigmoid to saturate


def test_fixed_size_error_names_the_build_size():
    model = _build("cnn_fc", "box")
    with pytest.raises(ValueError, match=r"fixed-size: built for 16x16 inputs, got 24x24.*image_size=24"):
        model(torch.randn(1, 3, 24, 24))


def test_attention_dense_head_is_per_pixel():
    """Each pixel of a token's patch has its own output: a token map cannot be a bilinear blur."""
    model = _build("attention", "dense:2").eval()
    p = model.trunk.patch
    y = model(torch.randn(1, 3, SIZE, SIZE))  # (1, 2, 16, 16)
    assert p > 1 and not torch.allclose(y[0, :, 0, 0], y[0, :, p - 1, p - 1])  # two pixels of one token
    assert type(model.head).__name__ == "PixelHead"


@pytest.mark.parametrize("head,width,patch", [("vector:5", 16, 4), ("dense:4", 16, 2), ("dense:4", 32, 2),
                                              ("dense:2", 16, 4), ("dense:4", 8, 2), ("dense:3", 64, 4)])
def test_attention_patch_leaves_each_pixel_enough_token_dimensions(head, width, patch):
    """p * p * (C - 1) <= width, floored at 2: patch 1 is the named attention_fullres variant."""
    assert fcnprobe.create_model("attention", head=head, width=width, depth=2).trunk.patch == patch


def test_default_heads_are_documented_choices():
    assert type(_build("cnn_fc", "dense:3").head).__name__ == "DecodedHead"  # low-res FC map + learned upsample
    assert type(_build("cnn_fc_fullres", "dense:3").head).__name__ == "FullResHead"
    assert _build("attention_fullres", "dense:3").trunk.patch == 1
    assert _build("attention", "vector:3").head.pool == "avg"  # the mean-pooled token, no CLS
