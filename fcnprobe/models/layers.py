"""Building blocks shared by the model families: conv-norm-ReLU, coordinate
channels, the ParseNet global-context branch and the non-local block.

References: ParseNet (Liu et al. 2015), Non-local Neural Networks (Wang et al.
2018), CoordConv (Liu et al. 2018).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvBNReLU(nn.Sequential):
    """k x k conv ('same' padding for stride 1) + BatchNorm + ReLU.

    BatchNorm, not GroupNorm: in eval mode BN is a per-channel affine map, so the
    block stays strictly local and the receptive-field arithmetic is exact.
    """

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1) -> None:
        pad = dilation * (k - 1) // 2
        super().__init__(
            nn.Conv2d(cin, cout, k, stride=stride, padding=pad, dilation=dilation, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


def conv_stack(cin: int, width: int, dilations: list[int]) -> nn.Sequential:
    """A stride-1 stack of 3x3 ConvBNReLU blocks, one per dilation."""
    layers, c = [], cin
    for d in dilations:
        layers.append(ConvBNReLU(c, width, 3, dilation=d))
        c = width
    return nn.Sequential(*layers)


def narrow_width(width: int, depth: int, reference_depth: int = 6, cin: int = 3) -> int:
    """Width at which ``depth`` 3x3 layers hold about the weights of ``reference_depth`` layers at ``width``.

    Weights: 9 (cin w + (L - 1) w^2); solve that quadratic in w for the reference count and round.
    """
    if depth <= reference_depth:
        return width
    target = cin * width + (reference_depth - 1) * width ** 2
    a = depth - 1
    return max(4, round((-cin + (cin ** 2 + 4 * a * target) ** 0.5) / (2 * a)))


class AddCoords(nn.Module):
    """Append x and y coordinate channels in [-1, 1] (CoordConv's AddCoords)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype)
        xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype)
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")  # (h, w) each
        coords = torch.stack([xx, yy]).expand(b, 2, h, w)
        return torch.cat([x, coords], dim=1)  # (B, C+2, h, w)


class GlobalContext(nn.Module):
    """ParseNet: concatenate the globally pooled feature back at every pixel, fuse 1x1."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.fuse = ConvBNReLU(2 * ch, ch, k=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = x.mean((-2, -1), keepdim=True).expand_as(x)  # (B, C, h, w)
        return self.fuse(torch.cat([x, g], dim=1))


class NonLocalBlock(nn.Module):
    """Embedded-Gaussian non-local block with a residual connection (Wang et al. 2018).

    Keys and values are max-pooled by ``sub`` as in the paper's subsampling trick,
    which keeps the attention matrix at (h*w) x (h*w/sub^2).
    """

    def __init__(self, ch: int, sub: int = 2) -> None:
        super().__init__()
        inner = max(ch // 2, 1)
        self.theta = nn.Conv2d(ch, inner, 1)
        self.phi = nn.Conv2d(ch, inner, 1)
        self.g = nn.Conv2d(ch, inner, 1)
        self.out = nn.Sequential(nn.Conv2d(inner, ch, 1, bias=False), nn.BatchNorm2d(ch))
        self.sub = sub

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        kv = F.max_pool2d(x, self.sub, ceil_mode=True) if self.sub > 1 and min(h, w) > 1 else x
        q = self.theta(x).flatten(2).transpose(1, 2)  # (B, hw, c)
        k = self.phi(kv).flatten(2).transpose(1, 2)  # (B, hw', c)
        v = self.g(kv).flatten(2).transpose(1, 2)  # (B, hw', c)
        y = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)).squeeze(1)
        y = y.transpose(1, 2).reshape(b, -1, h, w)  # (B, c, h, w)
        return x + self.out(y)


class WrongRank(nn.Module):
    """A deliberately broken control for the shape probe: returns (B, C, H), rank 3, for any head."""

    def __init__(self, channels: int, in_channels: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).mean(-1)  # (B, C, H)


class ConstantBox(nn.Module):
    """A model-blind baseline: predicts the same box for every input."""

    def __init__(self, box: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("box", box)  # (4,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.box.expand(len(x), 4)  # (B, 4)
