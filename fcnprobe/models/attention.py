"""attention: a SETR-style transformer (Zheng et al. CVPR 2021) at patch resolution.

conv stem -> patch embedding (patch = image_size / 8, so 8x8 = 64 tokens at the
build size) -> learned position embeddings -> pre-norm transformer encoder ->
a 1x1 conv on the token map, bilinearly upsampled to the input size (SETR-naive).
The vector and box heads read the mean-pooled token, ViT-style. Position
embeddings are bilinearly resized at other input sizes, so the model accepts any
size; full-resolution tokens train about 10x slower on a CPU, hence the patches.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from fcnprobe.models.base import DEFAULT_DEPTH, DEFAULT_WIDTH, make_head, register_model, wrap
from fcnprobe.models.heads import HeadSpec, PooledHead
from fcnprobe.models.layers import ConvBNReLU

TOKENS_PER_SIDE = 8  # 64 tokens at the build size
HEADS = 4  # head dim 8 at the default width of 32


def encoder_layers(depth: int, patch: int) -> int:
    """Encoder layers that match an fcn's parameters: 9(depth-1)W^2 = patch^2 W^2 (embed) + 8W^2 per layer."""
    return max(1, round((9 * (depth - 1) - patch**2) / 8))


class ViTTrunk(nn.Module):
    """Returns the token map (B, D, h, w) after the encoder and a final LayerNorm."""

    def __init__(self, cin: int, width: int, depth: int, image_size: int) -> None:
        super().__init__()
        self.patch = max(1, image_size // TOKENS_PER_SIDE)
        grid = max(1, image_size // self.patch)
        self.stem = ConvBNReLU(cin, width)
        self.embed = nn.Conv2d(width, width, self.patch, stride=self.patch)
        self.pos = nn.Parameter(torch.randn(1, width, grid, grid) * 0.02)
        layer = nn.TransformerEncoderLayer(width, HEADS, 2 * width, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, encoder_layers(depth, self.patch), enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.out_channels = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.embed(self.stem(x))  # (B, D, h, w)
        b, d, h, w = f.shape
        pos = self.pos
        if pos.shape[-2:] != (h, w):
            pos = F.interpolate(pos, size=(h, w), mode="bilinear", align_corners=False)
        t = (f + pos).flatten(2).transpose(1, 2)  # (B, h*w, D)
        t = self.norm(self.encoder(t))
        return t.transpose(1, 2).reshape(b, d, h, w)  # (B, D, h, w)

    def receptive_field(self) -> None:
        return None  # self-attention mixes every token


@register_model("attention", family="attention", lr=1e-3, native=("dense", "vector", "box"))
def attention(spec: HeadSpec, in_channels, image_size, width=None, depth=None):
    width, depth = width or DEFAULT_WIDTH, depth or DEFAULT_DEPTH
    trunk = ViTTrunk(in_channels, width, depth, image_size)
    native_pool = spec.kind != "dense" and spec.adapter is None
    head = PooledHead(width, spec, "avg") if native_pool else make_head(width, spec)
    return wrap("attention", trunk, head, spec, in_channels, image_size, width, depth)
