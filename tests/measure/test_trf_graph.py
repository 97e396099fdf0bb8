"""Graph TRF against closed forms and against the numeric gradient-support check.

Closed forms: L stacked convs give 1 + sum_i (k_i - 1) d_i J_i with J_i the
product of earlier strides (Araujo et al., Distill 2019). ResNet-18's trunk:
stem 7 (J 2), max-pool 11 (J 4), layer1 43, layer2 99, layer3 211, layer4 435.
VGG-16: conv5_3 196, pool5 212. Every finite case must also give exactly the
numeric support box once clipped to the image.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from fcnprobe.measure.trf_graph import graph_receptive_field
from fcnprobe.measure.trf_numeric import numeric_receptive_field
from nets import GlobalMean, ResNet18Layout, Resampling, UNet, inverted_residual_stack, vgg16_layout


def _clip(box, n: int):
    return tuple((max(lo, 0), min(hi, n - 1)) for lo, hi in box)


def _agree(model: nn.Module, size: int, layer: str | None = None):
    g = graph_receptive_field(model, size, layer=layer)
    num = numeric_receptive_field(model, size, layer=layer)
    assert g.field.kind == "finite", g.field.reason
    assert _clip(g.field.box, size) == num.box
    return g, num


@pytest.mark.parametrize("convs", [[(3, 1, 1)] * 4, [(3, 2, 1), (3, 1, 2), (5, 1, 1)],
                                   [(7, 2, 1), (3, 2, 1), (3, 1, 3)]])
def test_conv_stack_closed_form(convs):
    layers, rf, jump = [], 1, 1
    for k, s, d in convs:
        layers.append(nn.Conv2d(3, 3, k, s, d * (k // 2), dilation=d))
        rf, jump = rf + (k - 1) * d * jump, jump * s
    g, num = _agree(nn.Sequential(*layers), 96)
    assert g.field.size_px == (rf, rf) == num.size_px


def test_resnet_stack_with_strided_shortcuts():
    g, num = _agree(ResNet18Layout(), 512)
    assert g.field.size_px == (435, 435) and not num.clipped
    assert [g.nodes[f"layer{i}"].size_px[0] for i in range(1, 5)] == [43, 99, 211, 435]
    g3, _ = _agree(ResNet18Layout(), 512, layer="layer3")
    assert g3.field.size_px == (211, 211)


def test_vgg16_max_pool_counts_every_window_position():
    g, num = _agree(vgg16_layout(), 320)
    assert g.field.size_px == (212, 212) == num.size_px
    g5, num5 = _agree(vgg16_layout(), 320, layer="conv5_3")
    assert g5.field.size_px == (196, 196) == num5.size_px


def test_unet_with_transposed_conv():
    # centre unit 32 of 64: skip branch 9 px [28, 36]; up branch: convT(2, 2) reads coarse 15..17, two convs
    # 13..19, pool 26..39, two convs 24..41: 18 px. The union is the up branch.
    g, _ = _agree(UNet(), 64)
    assert g.field.size_px == (18, 18)


def test_relu6_inverted_residual_stack():
    g, num = _agree(inverted_residual_stack((1, 2, 1, 2, 1)), 96)
    assert g.field.size_px == (43, 43) == num.size_px  # 3 (J 2), +4, +4 (J 4), +8, +8 (J 8), +16


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "bilinear", "bicubic"])
@pytest.mark.parametrize("size", [63, 64])
def test_resampling_matches_numeric(mode, size):
    _agree(Resampling(mode), size)


class _SE(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 1)

    def forward(self, x):
        y = self.conv(x)
        return y * torch.sigmoid(self.fc(nn.functional.adaptive_avg_pool2d(y, 1)))


class _Tokens(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed, self.attn = nn.Conv2d(3, 8, 4, 4), nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)  # (B, N, C)
        return self.attn(t, t, t)[0]


@pytest.mark.parametrize("model,why", [
    (GlobalMean(), "mean"), (_SE(), "mean"), (_Tokens(), "attention"),
    (nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveMaxPool2d(1)), "adaptive"),
    (nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 30 * 30, 5)), "over tokens")])
def test_global_ops(model, why):
    g = graph_receptive_field(model, 32)
    assert g.field.kind == "global" and why in g.field.reason
    num = numeric_receptive_field(model, 32)
    assert num.size_px == (32, 32)  # the numeric support fills the image


def test_adaptive_pool_to_a_grid_is_global_by_convention():
    g = graph_receptive_field(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(2)), 32)
    assert g.field.kind == "global" and "grows with the image" in g.field.reason


class _ClsTokens(nn.Module):
    """Patch embedding, a CLS token concatenated in front of the patch tokens, optionally attention."""

    def __init__(self, attend: bool):
        super().__init__()
        self.embed, self.cls = nn.Conv2d(3, 8, 4, 4), nn.Parameter(torch.zeros(1, 1, 8))
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True) if attend else None

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)  # (B, N, C)
        t = torch.cat([self.cls.expand(len(t), -1, -1), t], 1)  # (B, 1 + N, C)
        return self.attn(t, t, t)[0] if self.attn is not None else t


class _Windows(nn.Module):
    """A Swin-style window partition: the view splits each spatial axis into (windows, offset)."""

    def forward(self, x):
        b, c, h, w = x.shape
        return x.view(b, c, h // 4, 4, w // 4, 4).permute(0, 2, 4, 3, 5, 1).reshape(-1, 16, c)


def test_extra_tokens_then_attention_is_global_else_unknown():
    assert graph_receptive_field(_ClsTokens(True), 32).field.kind == "global"
    f = graph_receptive_field(_ClsTokens(False), 32).field
    assert f.kind == "unknown" and "cat along a spatial axis" in f.reason
    f = graph_receptive_field(_Windows(), 16).field
    assert f.kind == "unknown" and "view splits a spatial axis" in f.reason


class _Flip(nn.Module):
    def forward(self, x):
        return torch.flip(nn.functional.avg_pool2d(x, 3, 1, 1), dims=(-1,))


def test_unknown_op_is_named_not_global():
    g = graph_receptive_field(_Flip(), 16)
    assert g.field.kind == "unknown" and "flip" in g.field.reason and g.field.size_px is None


class _Dict(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 2, 3, padding=1), nn.Conv2d(3, 2, 5, padding=2)

    def forward(self, x):
        return {"aux": self.a(x), "out": self.b(x)}


def test_dict_output_key_and_parameter_free_modules():
    assert graph_receptive_field(_Dict(), 16).field.size_px == (5, 5)  # "out" by default
    assert graph_receptive_field(_Dict(), 16, output="aux").field.size_px == (3, 3)
    with pytest.raises(ValueError, match="available"):
        graph_receptive_field(_Dict(), 16, output="nope")
    pool = nn.Sequential(nn.AvgPool2d(3, 1, 1), nn.AvgPool2d(3, 1, 1))
    assert graph_receptive_field(pool, 16).field.size_px == (5, 5) == numeric_receptive_field(pool, 16).size_px


def test_caller_model_is_untouched():
    m = ResNet18Layout().train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    graph_receptive_field(m, 64)
    numeric_receptive_field(m, 64)
    assert m.training and all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_transformers_layouts():
    from transformers_gate import require_transformers

    T = require_transformers()
    resnet18 = T.ResNetModel(T.ResNetConfig(layer_type="basic", depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512],
                                            embedding_size=64))
    assert graph_receptive_field(resnet18, 224).field.size_px == (435, 435)
    mnv2 = graph_receptive_field(T.MobileNetV2Model(T.MobileNetV2Config()), 224)
    assert mnv2.field.size_px == (491, 491)
    seg = graph_receptive_field(T.SegformerForSemanticSegmentation(T.SegformerConfig()), 256)
    assert seg.field.kind == "global" and seg.output_shape[-2:] == (64, 64)
