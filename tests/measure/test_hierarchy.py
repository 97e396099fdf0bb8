"""Layer-wise probes and mean attention distance against planted truths and closed forms.

* A planted net whose block k first computes the label (a product of two
  channels) gives probe accuracy ~chance before k and ~1 from k on.
* Shuffled labels give ~chance; a Hewitt-Liang control task is consistent per type.
* Uniform attention on an n x n token grid has a mean attention distance equal
  to the mean pairwise distance of the grid, computed here from the per-axis
  distribution of |dx| and |dy|; attention to self has distance 0.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from fcnprobe.measure.hierarchy import (abstraction_depth, attention_weights, block_names, collect_features, control_labels,
                                        linear_probe_accuracy, mean_attention_distance, mean_attention_distance_of,
                                        probe_curve)
from fcnprobe.models import create_model


class _Product(nn.Module):
    """Appends x0 * x1: the first block whose pooled output carries the label linearly."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x[:, :1] * x[:, 1:2]], 1)  # (B, 3, H, W)


def _identity_conv(c: int) -> nn.Conv2d:
    conv = nn.Conv2d(c, c, 1, bias=False)
    nn.init.eye_(conv.weight.view(c, c))
    return conv


def _planted(n: int = 1200, seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """Images whose label is the sign of mean(x0 * x1); x0 and x1 alone are symmetric noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(2, (n,), generator=g)
    x0 = torch.randn(n, 1, 8, 8, generator=g)
    x1 = (2 * y.view(-1, 1, 1, 1) - 1) * x0 + 0.5 * torch.randn(n, 1, 8, 8, generator=g)
    model = nn.Sequential(_identity_conv(2), _identity_conv(2), _Product(), _identity_conv(3))
    return model, torch.cat([x0, x1], 1), y


def test_planted_layer_carries_the_label_from_k_on():
    model, x, y = _planted()
    feats = collect_features(model, x, layers=["0", "1", "2", "3"])
    curve = probe_curve(feats, y, types=None)
    acc = [row["accuracy"] for row in curve]
    assert max(acc[:2]) < 0.6 and min(acc[2:]) > 0.97
    assert abstraction_depth([row["selectivity"] for row in curve]) == 2
    assert all(abs(row["shuffled_accuracy"] - 0.5) < 0.08 for row in curve)


def test_control_task_is_consistent_per_type_and_hard_to_read_from_the_planted_feature():
    model, x, y = _planted(seed=1)
    types = (x[:, 0, 0, 0] * 10).round().long()  # a nuisance attribute with many types, as words in H&L
    ctrl = control_labels(types, 2, seed=0)
    for t in types.unique().tolist():
        assert len(set(ctrl[(types == t).numpy()])) == 1
    curve = probe_curve(collect_features(model, x, layers=["2"]), y, types=types)
    assert curve[0]["selectivity"] > 0.3  # the label is read, the random per-type labels much less


def test_linear_probe_is_exact_on_separable_data_and_deterministic():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))
    y = (x @ np.arange(1, 6) > 0).astype(int)
    a = linear_probe_accuracy(x[:200], y[:200], x[200:], y[200:])
    assert a > 0.95 and a == linear_probe_accuracy(x[:200], y[:200], x[200:], y[200:])


def test_abstraction_depth_closed_cases():
    assert abstraction_depth([0.0, 0.1, 0.5, 0.95, 1.0]) == 3
    assert abstraction_depth([0.2, 0.2]) == 0
    assert abstraction_depth([0.0, -0.1]) is None


def test_attention_blocks_are_its_encoder_layers_subclass_or_not():
    model = create_model("attention", head="vector:2", width=8, depth=4)
    layers = [f"trunk.encoder.layers.{i}" for i in range(len(model.trunk.encoder.layers))]
    assert [n for n in block_names(model) if n.startswith("trunk.encoder")] == layers
    assert not any(n.startswith(tuple(f"{x}." for x in layers)) for n in block_names(model))


@pytest.mark.parametrize("name", ["fcn", "cnn_fc", "attention", "fcn_gap", "nonlocal"])
def test_default_blocks_on_registry_models(name):
    model = create_model(name, head="vector:2", width=8, depth=4).train()
    feats = collect_features(model, torch.randn(6, 3, 32, 32))
    assert list(feats) == block_names(model) and len(feats) >= 2
    assert all(f.shape[0] == 6 and f.dim() == 2 for f in feats.values())
    assert model.training  # the mode is restored


def test_unknown_layer_is_a_clear_error():
    model, x, _ = _planted(n=4)
    with pytest.raises(ValueError, match="unknown layer"):
        collect_features(model, x, layers=["9"])


def _mean_grid_distance(n: int) -> float:
    """Closed form: mean Euclidean distance between two uniform cells of an n x n grid (self pairs included)."""
    p = [1 / n] + [2 * (n - k) / n**2 for k in range(1, n)]  # P(|dx| = k)
    return sum(p[a] * p[b] * math.hypot(a, b) for a in range(n) for b in range(n))


def _attention_model(score_scale: float) -> nn.Module:
    """The registry's attention model with query/key projections set by hand."""
    model = create_model("attention", head="vector:2", width=16, depth=6)
    for layer in model.modules():
        if isinstance(layer, nn.TransformerEncoderLayer):
            d = layer.self_attn.embed_dim
            with torch.no_grad():
                layer.self_attn.in_proj_weight[: 2 * d].zero_()  # zero scores: uniform attention
                layer.self_attn.in_proj_bias.zero_()
                layer.norm1.weight.fill_(score_scale)
    with torch.no_grad():
        model.trunk.rel_bias.table.zero_()  # no relative-position bias either
    return model


def test_uniform_attention_distance_is_the_mean_grid_distance():
    model = _attention_model(1.0)
    mad = mean_attention_distance(model, torch.randn(2, 3, 32, 32))
    assert len(mad) >= 1
    patch = 32 / 8  # 8 x 8 tokens at 32 px
    for value in mad.values():
        assert value == pytest.approx(patch * _mean_grid_distance(8), rel=1e-5)


def test_attention_distance_sees_the_relative_position_bias():
    model = _attention_model(1.0)
    with torch.no_grad():
        model.trunk.rel_bias.table.normal_()
    mad = mean_attention_distance(model, torch.randn(2, 3, 32, 32))
    want = mean_attention_distance_of(torch.softmax(model.trunk.rel_bias(8, 8), -1).detach().double(), patch=4.0)
    assert all(v == pytest.approx(want, rel=1e-5) for v in mad.values())
    assert want != pytest.approx(4.0 * _mean_grid_distance(8), rel=1e-2)


def test_attention_distance_of_planted_maps():
    t = 16  # a 4 x 4 grid
    assert mean_attention_distance_of(torch.eye(t)) == 0.0  # every query attends to itself
    ys, xs = torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij")
    right = torch.zeros(t, t)
    right[torch.arange(t), (ys * 4 + (xs + 1) % 4).flatten()] = 1.0  # one token to the right, wrapping
    expected = (12 * 1 + 4 * 3) / 16  # 12 queries move 1 step, the 4 in the last column wrap back 3
    assert mean_attention_distance_of(right, patch=2.0) == pytest.approx(2.0 * expected)
    with pytest.raises(ValueError, match="square"):
        mean_attention_distance_of(torch.eye(12))


def test_recomputed_weights_match_pytorchs_own():
    model = create_model("attention", head="vector:2", width=16, depth=6).eval()
    layers = [m for m in model.modules() if isinstance(m, nn.TransformerEncoderLayer)]
    x = torch.randn(3, 10, 16)  # (B, T, D)
    for layer in layers:
        h = layer.norm1(x)
        _, ref = layer.self_attn(h, h, h, need_weights=True, average_attn_weights=False)  # (B, nh, T, T)
        assert torch.allclose(attention_weights(layer, x), ref, atol=1e-6)
    assert len(mean_attention_distance(model, torch.randn(2, 3, 32, 32))) == len(layers)


def _box_stack(n: int) -> nn.Sequential:
    """n single-channel 3x3 convs with all-ones weights: the centre unit's gradient map after k layers is
    the outer product of the k-fold convolution of [1, 1, 1] with itself (trinomial coefficients)."""
    convs = [nn.Conv2d(1, 1, 3, padding=1, bias=False) for _ in range(n)]
    for c in convs:
        nn.init.ones_(c.weight)
    return nn.Sequential(*convs)


def test_layer_erf_radii_match_the_box_stack_closed_form():
    from fcnprobe.measure.hierarchy import ERF_RADIUS_STDS, layer_erf_radii

    net = _box_stack(4).train()
    radii = layer_erf_radii(net, torch.rand(4, 1, 33, 33))
    assert list(radii) == ["0", "1", "2", "3"]
    for k, r in enumerate(radii.values(), start=1):
        profile = np.array([1.0])
        for _ in range(k):
            profile = np.convolve(profile, np.ones(3))
        q = profile**2  # the ERF std is read from E[g^2]; the map is separable, so each axis has q's spread
        x = np.arange(len(q)) - k
        assert r == pytest.approx(ERF_RADIUS_STDS * math.sqrt((q * x**2).sum() / q.sum()), rel=1e-9)
    assert radii["0"] == pytest.approx(ERF_RADIUS_STDS * math.sqrt(2 / 3))  # one box: uniform on {-1, 0, 1}
    assert net.training  # the caller's mode is restored


def test_layer_erf_radii_leave_token_and_vector_blocks_out():
    from fcnprobe.measure.hierarchy import block_names, layer_erf_radii

    model = create_model("attention", head="vector:2", image_size=16, width=8, depth=2)
    radii = layer_erf_radii(model, torch.randn(4, 3, 16, 16))
    assert list(radii) == block_names(model)
    assert radii["trunk.stem"] is not None  # a (B, C, h, w) patch map
    assert all(v is None for k, v in radii.items() if k != "trunk.stem")  # encoder layers: tokens
