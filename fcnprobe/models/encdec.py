"""Encoder-decoder FCNs: fcn_encdec, and the RF-covering fcn_encdec_deep and fcn_pyramid.

The shape of FCN-8s (Long et al. 2015) and U-Net (Ronneberger et al. 2015): the
encoder halves the resolution with stride-2 convs, the decoder doubles it back
with bilinear upsampling and adds the encoder's map of the same size (FCN-style
sum, not U-Net's concatenation, to keep parameters matched with the other
families). ``depth`` counts 3x3 convs: ceil(depth/2) in the encoder.

* fcn_encdec_deep -- as many levels as it takes for the TRF to reach twice the
  image side (issue 15: a convolution-only net that can see the whole image).
* fcn_pyramid -- the strided FCN without skips: downsample, then upsample
  (a plain pyramid, as in the FCN-32s path), TRF at least twice the image side.

The deep variants narrow their convs (``layers.narrow_width``), so their parameter
count stays near fcn's at the same ``width`` and asked ``depth``.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from fcnprobe.models.base import DEFAULT_DEPTH, DEFAULT_WIDTH, make_head, register_model, wrap
from fcnprobe.models.layers import ConvBNReLU, narrow_width
from fcnprobe.measure.receptive import RF

COVER_FACTOR = 2  # fcn_encdec_deep: TRF >= 2x the image side
PYRAMID_FACTOR = 2  # fcn_pyramid: TRF >= 2x the image side, so a corner pixel sees the far corner too


class EncDecTrunk(nn.Module):
    """Stem, stride-2 downs, then per level: conv, bilinear x2 up, add the skip (if ``skips``)."""

    def __init__(self, cin: int, width: int, depth: int, skips: bool = True) -> None:
        super().__init__()
        n_enc = max(1, (depth + 1) // 2)
        self.enc = nn.ModuleList([ConvBNReLU(cin, width)] +
                                 [ConvBNReLU(width, width, stride=2) for _ in range(n_enc - 1)])
        self.dec = nn.ModuleList([ConvBNReLU(width, width) for _ in range(depth - n_enc)])
        self.skips, self.out_channels = skips, width

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
                x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
                x = x + skip if self.skips else x
        return x  # (B, width, H, W) when depth >= 2 * (n_enc - 1) + 1

    rf_depends_on_size = True  # bilinear resizing to odd skip sizes: the centre unit's field depends on H, W

    def receptive_field(self, image_size: int | None = None) -> int | None:
        """The centre unit's TRF at ``image_size`` (graph-exact); without a size, the closed-form bound.

        The closed form (``RF`` arithmetic, 2 taps per bilinear x2 upsampling) is an upper
        bound over output pixels; with several levels the centre unit sees less (113 px, not
        125, for 8 levels at 256 px), so covering depths and the probes use the exact value.
        """
        if image_size is not None:
            return centre_trf(len(self.enc) + len(self.dec), self.skips, image_size)
        rf, ups = RF(), len(self.enc) - 1
        for layer in self.enc:
            rf.layer(layer[0])
        for layer in self.dec:
            rf.layer(layer[0])
            if ups:
                rf.upsample(2, taps=2)  # bilinear mixes 2 neighbours per axis
                ups -= 1
        return rf.value()


def centre_trf(depth: int, skips: bool, image_size: int) -> int:
    """Graph-exact TRF side of the centre output unit of a 1-channel ``EncDecTrunk`` on an image_size input."""
    from fcnprobe.measure.trf_graph import graph_receptive_field

    field = graph_receptive_field(EncDecTrunk(1, 1, depth, skips), (1, 1, image_size, image_size)).field
    return int(field.side_px)


def covering_depth(image_size: int, min_depth: int, factor: int, skips: bool = True) -> int:
    """The smallest even depth >= min_depth whose encoder-decoder TRF is >= factor x image side.

    Capped where the encoder would shrink the map below 2 px.
    """
    depth = max(2, min_depth + min_depth % 2)
    cap = 2 * max(1, int(math.log2(max(image_size, 2))))  # levels until the map is 2 px
    while centre_trf(depth, skips, image_size) < factor * image_size and depth < cap:
        depth += 2
    return depth


def _build(name: str, spec, in_channels: int, image_size: int, width: int, depth: int, skips: bool) -> nn.Module:
    trunk = EncDecTrunk(in_channels, width, depth, skips)
    return wrap(name, trunk, make_head(width, spec), spec, in_channels, image_size, width, depth)


@register_model("fcn_encdec", family="fcn_encdec", category="fcn")
def fcn_encdec(spec, in_channels, image_size, width=None, depth=None):
    width, depth = width or DEFAULT_WIDTH, depth or DEFAULT_DEPTH
    return _build("fcn_encdec", spec, in_channels, image_size, width, depth, skips=True)


@register_model("fcn_encdec_deep", family="fcn_encdec_deep", category="fcn")
def fcn_encdec_deep(spec, in_channels, image_size, width=None, depth=None):
    asked = depth or DEFAULT_DEPTH
    depth = covering_depth(image_size, asked, COVER_FACTOR)
    width = narrow_width(width or DEFAULT_WIDTH, depth, asked)  # parameters near fcn's at the asked depth
    return _build("fcn_encdec_deep", spec, in_channels, image_size, width, depth, skips=True)


@register_model("fcn_pyramid", family="fcn_pyramid", category="fcn")
def fcn_pyramid(spec, in_channels, image_size, width=None, depth=None):
    asked = depth or DEFAULT_DEPTH
    depth = covering_depth(image_size, asked, PYRAMID_FACTOR, skips=False)
    width = narrow_width(width or DEFAULT_WIDTH, depth, asked)
    return _build("fcn_pyramid", spec, in_channels, image_size, width, depth, skips=False)
