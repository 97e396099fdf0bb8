"""The registered adapters: output shapes, soft-argmax and box decoding against exact answers,
declared vs measured differentiability, and the multi-head assembly."""
from __future__ import annotations

import pytest
import torch

import fcnprobe
from fcnprobe.errors import UsageError
from fcnprobe.models import ADAPTERS, parse_head
from fcnprobe.models.adapters import build_multi_head, decode_box, gradient_reaches_trunk, hard_argmax, soft_argmax

FEATS = 6  # trunk channels of the synthetic feature maps


@pytest.mark.parametrize("adapter", ADAPTERS.names())
@pytest.mark.parametrize("head,n", [("box", 4), ("vector:4", 4)])
@pytest.mark.parametrize("hw", [(8, 8), (5, 11), (1, 1)])
def test_adapter_output_shape(adapter, head, n, hw):
    spec = parse_head(f"{head}@{adapter}")
    out = ADAPTERS.get(adapter)(FEATS, spec)(torch.randn(3, FEATS, *hw), (2 * hw[0], 2 * hw[1]))
    assert tuple(out.shape) == (3, n) and torch.isfinite(out).all()


@pytest.mark.parametrize("adapter", ["softargmax", "heatmap_decode"])
def test_keypoint_adapters_refuse_odd_vectors(adapter):
    with pytest.raises(UsageError, match="odd"):
        ADAPTERS.get(adapter)(FEATS, parse_head(f"vector:5@{adapter}"))


@pytest.mark.parametrize("adapter", ADAPTERS.names())
@pytest.mark.parametrize("size", [32, 40])
def test_adapters_through_create_model(adapter, size):
    model = fcnprobe.create_model("fcn", head=f"box@{adapter}", image_size=32, width=8, depth=2).eval()
    assert tuple(model(torch.randn(2, 3, size, size)).shape) == (2, 4)


@pytest.mark.parametrize("r,c", [(0, 0), (3, 7), (9, 12)])
def test_soft_argmax_recovers_a_one_hot_peak_exactly(r, c):
    h, w = 10, 13
    logits = torch.full((1, 1, h, w), -1e4)
    logits[0, 0, r, c] = 0.0  # exp(-1e4) is exactly 0 in float32: the softmax is one-hot
    xy, p = soft_argmax(logits)
    exact = torch.stack([torch.tensor(c + 0.5) / w, torch.tensor(r + 0.5) / h])  # pixel centres in float32
    assert torch.equal(xy[0, 0], exact)
    assert torch.equal(hard_argmax(logits), xy)
    assert p.sum().item() == 1.0


def test_soft_argmax_of_a_symmetric_blob_is_its_centre():
    ys, xs = torch.meshgrid(torch.arange(21.0), torch.arange(31.0), indexing="ij")
    blob = -((xs - 17) ** 2 + (ys - 10) ** 2) / 4.0  # log-Gaussian on pixel (10, 17), tails inside the map
    xy, _ = soft_argmax(blob[None, None])
    torch.testing.assert_close(xy[0, 0], torch.tensor([17.5 / 31, 10.5 / 21]), rtol=0, atol=1e-6)


def test_decode_box_recovers_the_box_of_a_synthetic_heatmap():
    logits = torch.full((2, 64, 64), -5.0)
    logits[0, 10:20, 5:30] = 5.0  # rows 10..19, cols 5..29
    logits[1, 40, 50] = -1.0  # nothing above 0: falls back to the argmax pixel
    box = decode_box(logits)
    assert box[0].tolist() == [5 / 64, 10 / 64, 30 / 64, 20 / 64]
    assert box[1].tolist() == [50 / 64, 40 / 64, 51 / 64, 41 / 64]


@pytest.mark.parametrize("adapter", ADAPTERS.names())
def test_declared_differentiability_is_what_autograd_does(adapter):
    torch.manual_seed(0)
    model = fcnprobe.create_model("fcn", head=f"box@{adapter}", width=8, depth=2)
    measured = gradient_reaches_trunk(model, torch.randn(2, 3, 16, 16))
    assert measured == ADAPTERS.meta(adapter)["differentiable"]


def test_heatmap_decode_output_carries_no_gradient():
    model = fcnprobe.create_model("fcn", head="box@heatmap_decode", width=8, depth=2)
    x = torch.randn(2, 3, 16, 16)
    assert not model(x).requires_grad
    assert model.head.heatmap(model.trunk(x), (16, 16)).requires_grad


@pytest.mark.parametrize("name,specs", [
    ("fcn", {"a": "vector:3@gap", "b": "vector:2@gmp", "box": "box@softargmax"}),
    ("cnn_fc", {"a": "vector:3", "b": "vector:2", "box": "box"}),
    ("attention", {"a": "vector:3", "b": "vector:2", "box": "box"}),
])
def test_multi_head_net_concatenates_heads_on_one_trunk(name, specs):
    net = build_multi_head(name, specs, in_channels=4, image_size=32, width=8, depth=4)
    assert tuple(net(torch.randn(2, 4, 32, 32)).shape) == (2, 9)
    assert list(net.heads) == list(specs)
    shared = sum(p.numel() for p in net.trunk.parameters())
    assert sum(p.numel() for p in net.parameters()) == shared + sum(p.numel() for p in net.heads.parameters())
