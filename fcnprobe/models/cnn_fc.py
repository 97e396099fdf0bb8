"""cnn_fc: a conv trunk, flatten, and fully connected layers -- the pre-FCN design.

The trunk downsamples with stride-2 convs to a ``GRID x GRID`` map, flattens it
and applies an FC layer. Every output therefore sees the whole image (TRF:
global), and the flatten fixes the input size: any other size is an error.

The dense head is what segmentation nets did before FCNs: an FC layer to
H*W*C outputs, reshaped. Its bottleneck is sized so that the whole model has
about as many parameters as an ``fcn`` of the same width and depth (the zoo's
parity rule); at 32x32 that is a rank-2 dense map, which is the
real price of an FC dense head at matched size. The rank is never below 2,
so cnn_fc exceeds parity once H*W*C outgrows the budget (about 3*H*W*C parameters).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from fcnprobe.models.base import DEFAULT_DEPTH, DEFAULT_WIDTH, register_model, wrap
from fcnprobe.models.heads import HeadSpec, box_activation
from fcnprobe.models.layers import ConvBNReLU

GRID = 2  # spatial side before the flatten; 2x2 keeps the FC input at 4 * width, so parameters stay matched


class CNNFCTrunk(nn.Module):
    """Convs down to GRID x GRID, flatten, FC + ReLU. Returns (B, hidden, 1, 1)."""

    def __init__(self, cin: int, width: int, depth: int, image_size: int) -> None:
        super().__init__()
        n_down = max(0, math.ceil(math.log2(max(image_size, 1) / GRID)))
        n_conv = max(depth - 1, n_down + 1)  # one layer of depth is the FC
        strides = [1] + [2] * n_down + [1] * (n_conv - n_down - 1)
        self.convs = nn.Sequential(*[ConvBNReLU(cin if i == 0 else width, width, stride=s)
                                     for i, s in enumerate(strides)])
        side = image_size
        for s in strides:
            side = (side + 2 - 3) // s + 1  # conv output size, k=3, p=1
        self.image_size, self.hidden = image_size, width // 2
        self.fc = nn.Sequential(nn.Linear(width * side * side, self.hidden), nn.ReLU(inplace=True))
        self.out_channels = self.hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.convs(x).flatten(1)  # (B, width * side * side)
        if f.shape[1] != self.fc[0].in_features:
            raise ValueError(
                f"cnn_fc was built for {self.image_size}x{self.image_size} inputs and cannot take "
                f"{x.shape[-2]}x{x.shape[-1]}: its flatten gives {f.shape[1]} features, the FC "
                f"layer expects {self.fc[0].in_features}")
        return self.fc(f)[:, :, None, None]  # (B, hidden, 1, 1)

    def receptive_field(self) -> None:
        return None  # the FC layer mixes every position


class FCHead(nn.Module):
    """Linear layers on the trunk's vector; dense outputs are reshaped to (C, H, W)."""

    def __init__(self, hidden: int, spec: HeadSpec, image_size: int, budget: int) -> None:
        super().__init__()
        self.spec, self.size = spec, image_size
        n_out = spec.channels * image_size**2 if spec.kind == "dense" else spec.channels
        rank = max(2, budget // (hidden + n_out)) if spec.kind == "dense" else hidden
        self.fc = nn.Sequential(nn.Linear(hidden, rank), nn.Linear(rank, n_out))

    def forward(self, feats: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        out = self.fc(feats.flatten(1))  # (B, n_out)
        if self.spec.kind == "dense":
            return out.view(-1, self.spec.channels, self.size, self.size)  # (B, C, H, W)
        return box_activation(out) if self.spec.kind == "box" else out


def _fcn_budget(width: int, depth: int, cin: int) -> int:
    """Parameters of the matching fcn trunk: the budget the cnn_fc dense head may use."""
    convs = cin * width * 9 + (depth - 1) * width * width * 9
    return convs + depth * 2 * width


@register_model("cnn_fc", family="cnn_fc", native=("dense", "vector", "box"), fixed_size=True)
def cnn_fc(spec, in_channels, image_size, width=None, depth=None):
    width, depth = width or DEFAULT_WIDTH, depth or DEFAULT_DEPTH
    trunk = CNNFCTrunk(in_channels, width, depth, image_size)
    used = sum(p.numel() for p in trunk.parameters())
    budget = max(_fcn_budget(width, depth, in_channels) - used, 0)
    head = FCHead(trunk.hidden, spec, image_size, budget)
    return wrap("cnn_fc", trunk, head, spec, in_channels, image_size, width, depth)
