"""Stride-1 FCN families sharing one trunk: fcn, dilated, fcn_gap, nonlocal, coordconv.

* fcn       -- L x (3x3 conv + BN + ReLU), 1x1 head. The pure FCN.
* dilated   -- the context module of Yu & Koltun (ICLR 2016): dilations
               1, 1, 2, 4, 8, 16, 1, cycled to fit the depth.
* fcn_gap   -- ParseNet (Liu et al. 2015): a global-average context branch
               concatenated back before the head. The cheapest global fix.
* nonlocal  -- one non-local block (Wang et al. CVPR 2018) mid-trunk.
* coordconv -- fcn on input + (x, y) coordinate channels (Liu et al. NeurIPS 2018).
* dilated_deep -- dilated, made as deep as it takes for the TRF to reach twice
               the image side (``covering_dilations``): a convolution-only net
               that can see the whole image from every pixel (issue 15).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from fcnprobe.models.base import DEFAULT_DEPTH, DEFAULT_WIDTH, make_head, register_model, wrap
from fcnprobe.models.heads import HeadSpec
from fcnprobe.models.layers import AddCoords, GlobalContext, NonLocalBlock, conv_stack, narrow_width
from fcnprobe.measure.receptive import chain_rf

YU_KOLTUN_CYCLE = (2, 4, 8, 16)  # the growing part of 1, 1, 2, 4, 8, 16, 1
# AdamW learning rate of the plain stride-1 conv+BN families, set once for every task. At the
# context probe's quick budget the default 2e-3 left fcn_gap with two classes merged on global_cue
# (0.88) and fcn short at the edge of its TRF (0.91 at 5-6 px); 5e-3 reached 0.97-1.0 on both.
CONV_BN_LR = 5e-3


COVER_FACTOR = 2  # RF-covering nets: TRF >= 2x the image side, so even a corner pixel sees the far corner


def yu_koltun_dilations(depth: int) -> list[int]:
    """1, 1, then 2, 4, 8, 16 (cycled), then a closing 1; truncated for depth < 4."""
    if depth < 4:
        return [1] * depth
    grow = [YU_KOLTUN_CYCLE[i % len(YU_KOLTUN_CYCLE)] for i in range(depth - 3)]
    return [1, 1, *grow, 1]


def covering_dilations(image_size: int, min_depth: int, factor: int = COVER_FACTOR) -> list[int]:
    """The shortest Yu-Koltun schedule of at least ``min_depth`` layers whose TRF is >= factor x image side.

    A 3x3 layer of dilation d adds 2d to the TRF, so the TRF is 1 + 2 * sum(dilations).
    """
    depth = max(min_depth, 1)
    while 1 + 2 * sum(yu_koltun_dilations(depth)) < factor * image_size:
        depth += 1
    return yu_koltun_dilations(depth)


class FCNTrunk(nn.Module):
    """Optional coordinate channels -> conv stack, with an optional block after layer ``at``."""

    def __init__(self, cin: int, width: int, dilations: list[int], coords: bool = False,
                 block: nn.Module | None = None, at: int | None = None) -> None:
        super().__init__()
        self.coords = AddCoords() if coords else None
        at = len(dilations) if at is None else at
        self.pre = conv_stack(cin + (2 if coords else 0), width, dilations[:at])
        self.block = block
        self.post = conv_stack(width, width, dilations[at:])
        self.out_channels = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.coords is not None:
            x = self.coords(x)  # (B, C+2, H, W)
        x = self.pre(x)
        if self.block is not None:
            x = self.block(x)
        return self.post(x)  # (B, width, H, W)

    def receptive_field(self) -> int | None:
        if self.block is not None:  # the blocks used here pool or attend globally
            return None
        rf = chain_rf(self.pre.modules())
        return chain_rf(self.post.modules(), rf).value()


def _build(name: str, spec: HeadSpec, in_channels: int, image_size: int, width: int | None,
           depth: int | None, dilations=None, **trunk_kw) -> nn.Module:
    width, depth = width or DEFAULT_WIDTH, depth or DEFAULT_DEPTH
    trunk = FCNTrunk(in_channels, width, dilations or [1] * depth, **trunk_kw)
    return wrap(name, trunk, make_head(width, spec), spec, in_channels, image_size, width, depth)


@register_model("fcn", family="fcn", category="fcn", lr=CONV_BN_LR)
def fcn(spec, in_channels, image_size, width=None, depth=None):
    return _build("fcn", spec, in_channels, image_size, width, depth)


@register_model("dilated", family="dilated", category="fcn", lr=CONV_BN_LR)
def dilated(spec, in_channels, image_size, width=None, depth=None):
    dil = yu_koltun_dilations(depth or DEFAULT_DEPTH)
    return _build("dilated", spec, in_channels, image_size, width, depth, dilations=dil)


@register_model("fcn_gap", family="fcn_gap", category="global_op", lr=CONV_BN_LR)
def fcn_gap(spec, in_channels, image_size, width=None, depth=None):
    block = GlobalContext(width or DEFAULT_WIDTH)  # after the last conv, as in ParseNet
    return _build("fcn_gap", spec, in_channels, image_size, width, depth, block=block)


@register_model("nonlocal", family="nonlocal", category="global_op")
def nonlocal_(spec, in_channels, image_size, width=None, depth=None):
    d = depth or DEFAULT_DEPTH
    block = NonLocalBlock(width or DEFAULT_WIDTH)  # mid-trunk, as in Wang et al.'s res4 placement
    return _build("nonlocal", spec, in_channels, image_size, width, depth, block=block, at=d // 2)


@register_model("coordconv", family="coordconv", category="fcn", lr=CONV_BN_LR)
def coordconv(spec, in_channels, image_size, width=None, depth=None):
    return _build("coordconv", spec, in_channels, image_size, width, depth, coords=True)


@register_model("dilated_deep", family="dilated_deep", category="fcn", lr=CONV_BN_LR)
def dilated_deep(spec, in_channels, image_size, width=None, depth=None):
    dil = covering_dilations(image_size, depth or DEFAULT_DEPTH)  # TRF >= 2x the image side
    width = narrow_width(width or DEFAULT_WIDTH, len(dil), depth or DEFAULT_DEPTH)  # parameters near fcn's
    return _build("dilated_deep", spec, in_channels, image_size, width, len(dil), dilations=dil)
