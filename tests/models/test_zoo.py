"""Every registered model x head x two input sizes: shape, backward, determinism; parity."""
from __future__ import annotations

import pytest
import torch

import fcnprobe
from fcnprobe.models import MODELS, parse_head

HEADS = ("dense:3", "vector:5", "box")
SIZES = (32, 48)  # the build size and another one


def _cases():
    for name in fcnprobe.list_models():
        native = MODELS.meta(name)["native"]
        for head in HEADS:
            if MODELS.meta(name).get("adapters", True) or parse_head(head).kind in native:
                yield name, head


def _expected(name, head, b, size):
    spec = parse_head(head)
    if MODELS.meta(name).get("seed_output") == "dense":  # the seed's models stay dense
        return (b, spec.channels, size, size)
    return spec.output_shape(b, size, size)


@pytest.mark.parametrize("name,head", list(_cases()))
@pytest.mark.parametrize("size", SIZES)
def test_forward_backward_shape(name, head, size):
    torch.manual_seed(0)
    model = fcnprobe.create_model(name, head=head, image_size=32)
    x = torch.randn(2, 3, size, size, requires_grad=True)
    if MODELS.meta(name).get("fixed_size") and size != 32:
        with pytest.raises(ValueError, match="built for 32x32"):
            model(x)
        return
    y = model(x)
    assert tuple(y.shape) == _expected(name, head, 2, size)
    y.float().square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("name,head", list(_cases()))
def test_deterministic_under_seed(name, head):
    x = torch.randn(2, 3, 32, 32)
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        outs.append(fcnprobe.create_model(name, head=head).eval()(x))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


def _params(name, head, **kw):
    return sum(p.numel() for p in fcnprobe.create_model(name, head=head, **kw).parameters())


@pytest.mark.parametrize("head", ["dense:4", "vector:10", "box"])
@pytest.mark.parametrize("width,depth", [(None, None), (64, 6), (32, 8), (48, 10)])
def test_parameter_parity_within_20_percent(head, width, depth):
    """Holds for width >= 32 and depth >= 6: below that cnn_fc's 2x2 grid and FC head dominate."""
    names = [n for n in fcnprobe.list_models() if MODELS.meta(n)["family"] != "seed"]
    counts = {n: _params(n, head, width=width, depth=depth) for n in names}
    ref = counts["fcn"]
    off = {n: round(c / ref, 3) for n, c in counts.items() if abs(c / ref - 1) > 0.20}
    assert not off, f"outside +-20% of fcn ({ref}): {off}"


def test_width_and_depth_scale_every_family():
    for name in fcnprobe.list_models():
        if MODELS.meta(name)["family"] == "seed":
            continue
        assert _params(name, "vector:4", width=64) > _params(name, "vector:4", width=32), name
        assert _params(name, "vector:4", depth=10) > _params(name, "vector:4", depth=4), name


def test_adapter_is_named_and_unknown_heads_fail():
    assert fcnprobe.create_model("fcn", head="vector:10").info.head == "vector:10@gap"
    assert fcnprobe.create_model("fcn", head="box@gmp").info.head == "box@gmp"
    assert fcnprobe.create_model("attention", head="vector:10").info.head == "vector:10"
    with pytest.raises(fcnprobe.errors.UsageError, match="kind must be one of"):
        fcnprobe.create_model("fcn", head="mask:3")
    with pytest.raises(fcnprobe.errors.UsageError, match="no vector head"):
        fcnprobe.create_model("seed_simple_fcn", head="vector:3")


def test_seed_models_print_the_seeds_shapes():
    x = torch.randn(1, 3, 256, 256)
    got = {n: tuple(fcnprobe.create_model(n, head=h)(x).shape) for n, h in
           [("seed_simple_fcn", "dense:10"), ("seed_attempted_vector", "vector:5"), ("seed_bounding_box", "box")]}
    assert got == {"seed_simple_fcn": (1, 10, 256, 256), "seed_attempted_vector": (1, 5, 256, 256),
                   "seed_bounding_box": (1, 4, 256, 256)}


@pytest.mark.parametrize("width,heads", [(8, 1), (12, 1), (16, 2), (24, 3), (32, 4), (40, 5)])
def test_attention_heads_have_eight_channels_and_divide_the_width(width, heads):
    from fcnprobe.models import create_model
    from fcnprobe.models.attention import attention_heads

    assert attention_heads(width) == heads and width % heads == 0
    net = create_model("attention", "dense:4", in_channels=3, image_size=16, width=width, depth=2)
    assert net.trunk.encoder.layers[0].self_attn.num_heads == heads
