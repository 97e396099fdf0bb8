"""fcn_encdec: a downsampling encoder and upsampling decoder with additive skips.

The shape of FCN-8s (Long et al. 2015) and U-Net (Ronneberger et al. 2015): the
encoder halves the resolution with stride-2 convs, the decoder doubles it back
with bilinear upsampling and adds the encoder's map of the same size (FCN-style
sum, not U-Net's concatenation, to keep parameters matched with the other
families). ``depth`` counts 3x3 convs: ceil(depth/2) in the encoder.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from fcnprobe.models.base import DEFAULT_DEPTH, DEFAULT_WIDTH, make_head, register_model, wrap
from fcnprobe.models.layers import ConvBNReLU
from fcnprobe.measure.receptive import RF


class EncDecTrunk(nn.Module):
    """Stem, stride-2 downs, then per level: conv, bilinear x2 up, add skip."""

    def __init__(self, cin: int, width: int, depth: int) -> None:
        super().__init__()
        n_enc = max(1, (depth + 1) // 2)
        self.enc = nn.ModuleList([ConvBNReLU(cin, width)] +
                                 [ConvBNReLU(width, width, stride=2) for _ in range(n_enc - 1)])
        self.dec = nn.ModuleList([ConvBNReLU(width, width) for _ in range(depth - n_enc)])
        self.out_channels = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for layer in self.enc:
            x = layer(x)
            skips.append(x)  # resolutions H, H/2, H/4, ...
        skips.pop()
        for layer in self.dec:
            x = layer(x)
            if skips:
                skip = skips.pop()
                x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False) + skip
        return x  # (B, width, H, W) when depth >= 2 * (n_enc - 1) + 1

    def receptive_field(self) -> int | None:
        rf, ups = RF(), len(self.enc) - 1
        for layer in self.enc:
            rf.layer(layer[0])
        for layer in self.dec:
            rf.layer(layer[0])
            if ups:
                rf.upsample(2, taps=2)  # bilinear mixes 2 neighbours per axis
                ups -= 1
        return rf.value()


@register_model("fcn_encdec", family="fcn_encdec", category="fcn")
def fcn_encdec(spec, in_channels, image_size, width=None, depth=None):
    width, depth = width or DEFAULT_WIDTH, depth or DEFAULT_DEPTH
    trunk = EncDecTrunk(in_channels, width, depth)
    return wrap("fcn_encdec", trunk, make_head(width, spec), spec, in_channels, image_size, width, depth)
