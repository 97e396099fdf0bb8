"""The MAC convention on blocks built here (closed forms) and on transformers layouts (torchvision's ``_ops``).

MACs count conv, linear, matmul and attention only; ``other_flops`` holds the
elementwise rest (see ``fcnprobe.measure.flops``). Closed forms, for an H x W map:
ResNet basic block 2 * 9 C^2 HW; MobileNetV3 block HW (2 C E + 9 E) + 2 E S;
ViT block 12 N D^2 + 2 N^2 D; Swin window block 12 HW C^2 + 2 HW w^2 C.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from fcnprobe.measure.flops import count_flops
from nets import BasicBlock


def _count(model: nn.Module, x: torch.Tensor):
    c = count_flops(model.eval(), x)
    assert c.agree and c.unsupported == (), (c.macs, c.macs_fvcore, c.unsupported)
    return c


@pytest.mark.parametrize("cin,cout,stride", [(8, 8, 1), (8, 16, 2)])
def test_resnet_basic_block(cin, cout, stride):
    h = 16
    ho = h // stride
    c = _count(BasicBlock(cin, cout, stride), torch.randn(1, cin, h, h))
    shortcut = cin * cout * ho * ho if stride != 1 else 0
    assert c.macs == 9 * cin * cout * ho * ho + 9 * cout * cout * ho * ho + shortcut
    n_bn = 3 if stride != 1 else 2
    # eval batch norm 2 per element, two ReLUs and the residual add 1 each
    assert c.other_flops == (2 * n_bn + 3) * cout * ho * ho


class MobileNetV3Block(nn.Module):
    """1x1 expand, BN, hardswish, 3x3 depthwise, BN, squeeze-excite (hardsigmoid gate), hardswish, 1x1, BN, residual."""

    def __init__(self, c: int = 8, e: int = 24, s: int = 8) -> None:
        super().__init__()
        self.expand = nn.Sequential(nn.Conv2d(c, e, 1, bias=False), nn.BatchNorm2d(e), nn.Hardswish())
        self.dw = nn.Sequential(nn.Conv2d(e, e, 3, 1, 1, groups=e, bias=False), nn.BatchNorm2d(e))
        self.fc1, self.fc2 = nn.Conv2d(e, s, 1), nn.Conv2d(s, e, 1)
        self.project = nn.Sequential(nn.Hardswish(), nn.Conv2d(e, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(self.expand(x))
        gate = F.hardsigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(y, 1)))))
        return x + self.project(y * gate)


def test_mobilenet_v3_block_with_hardswish_and_se():
    c_, e, s, h = 8, 24, 8, 12
    hw = h * h
    c = _count(MobileNetV3Block(c_, e, s), torch.randn(1, c_, h, h))
    assert c.macs == hw * (2 * c_ * e + 9 * e) + 2 * e * s
    bn = 2 * (2 * e * hw) + 2 * c_ * hw
    assert c.other_by_operator["hardswish"] == 2 * e * hw and c.other_by_operator["hardsigmoid"] == e
    se = e * hw + s + e + e * hw  # global mean (1 per input element), ReLU, hardsigmoid, SE multiply
    assert c.other_flops == bn + 2 * e * hw + se + c_ * hw  # + the residual add


class ViTBlock(nn.Module):
    def __init__(self, d: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)  # (B, N, D)
        x = x + self.proj(a)
        return x + self.mlp(self.norm2(x))


def test_vit_block():
    n, d = 17, 32
    c = _count(ViTBlock(d), torch.randn(1, n, d))
    assert c.macs == 12 * n * d * d + 2 * n * n * d
    assert c.other_by_operator["native_layer_norm"] == 2 * 5 * n * d


class SwinWindowBlock(nn.Module):
    """Window attention with a relative-position bias, by explicit matmuls as in transformers' Swin."""

    def __init__(self, c: int = 32, heads: int = 4, w: int = 4) -> None:
        super().__init__()
        self.heads, self.w = heads, w
        self.norm1, self.norm2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.qkv, self.proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
        self.bias = nn.Parameter(torch.zeros(heads, w * w, w * w))
        self.mlp = nn.Sequential(nn.Linear(c, 4 * c), nn.GELU(), nn.Linear(4 * c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, wd, c = x.shape
        w, nh = self.w, self.heads
        win = self.norm1(x).view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, w * w, c)
        q, k, v = self.qkv(win).view(-1, w * w, 3, nh, c // nh).permute(2, 0, 3, 1, 4)  # (B nW, h, w^2, c/h)
        att = (q @ k.transpose(-2, -1) * (c // nh) ** -0.5 + self.bias).softmax(-1)
        y = self.proj((att @ v).transpose(1, 2).reshape(-1, w * w, c))
        y = y.view(b, h // w, wd // w, w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, wd, c)
        x = x + y
        return x + self.mlp(self.norm2(x))


def test_swin_window_block():
    h, c, w = 8, 32, 4
    model = SwinWindowBlock(c, 4, w)
    out = _count(model, torch.randn(1, h, h, c))
    assert out.macs == 12 * h * h * c * c + 2 * h * h * w * w * c


LAYOUTS = {  # name -> (config class, model class, config kwargs, torchvision's published GMACs at 224 px)
    "resnet18": ("ResNetConfig", "ResNetForImageClassification",
                 dict(layer_type="basic", depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512], embedding_size=64),
                 1.814),
    "mobilenet_v2": ("MobileNetV2Config", "MobileNetV2ForImageClassification", {}, 0.301),
    "vit_b_16": ("ViTConfig", "ViTForImageClassification", {}, 17.564),
    "swin_t": ("SwinConfig", "SwinForImageClassification",
               dict(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7), 4.491),
}


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_transformers_layouts_match_torchvision_ops(name):
    from transformers_gate import require_transformers

    T = require_transformers()
    cfg, cls, kw, gmacs = LAYOUTS[name]
    torch.manual_seed(0)
    model = getattr(T, cls)(getattr(T, cfg)(num_labels=1000, **kw))  # random init, offline
    c = _count(model, torch.randn(1, 3, 224, 224))
    assert abs(c.macs / 1e9 / gmacs - 1) < 0.005, (c.macs, gmacs)
    assert c.other_flops > 0 and c.macs == sum(c.by_operator.values())
