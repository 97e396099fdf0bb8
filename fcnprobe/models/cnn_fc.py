"""cnn_fc: the conventional pre-FCN design -- conv stages with pooling, flatten, an FC layer.

Trunk: ``depth - 1`` stages of (3x3 conv + BN + ReLU, then max-pooling) shrink the
image to a ``GRID x GRID`` map, which is flattened into an FC hidden layer of
``hidden`` units (128 preferred, 64 to 256 allowed) + ReLU; the FC layer is the
last unit of depth. Every output sees the whole image (TRF: global), and the
flatten fixes the input size: any other size raises a ``ValueError`` that says
so. That is the design's real limitation, recorded by the shape probe, so it is
kept rather than hidden behind an adaptive pool.

Parameter parity: ``plan()`` narrows the convolutions (to no less than half the
requested width) and picks the hidden size so that the whole model -- trunk and
the same head -- has within about 10% of the parameters of an ``fcn`` of that
width and depth. It never shrinks the FC layer below ``MIN_HIDDEN`` units;
where no plan fits, ``CNNFCPlan.fits`` is False and the parity test names the
preset width that must rise.

Heads (``cnn_fc``, the default):

* ``vector:N`` / ``box`` -- a linear layer on the hidden vector (box: sigmoid);
* ``dense:C`` -- the FC layer predicts a low-resolution ``DEC_GRID x DEC_GRID``
  map with C channels, and learned stride-2 transposed convolutions upsample it
  to the input size (``heads.LearnedUpsample``). Default because it is the only
  FC dense head an fcn-sized parameter budget affords at every preset;
* ``@softargmax`` / ``@heatmap_decode`` -- the same low-resolution FC map, with
  ``DEC_CHANNELS`` channels, upsampled, then the adapter at full resolution;
* ``@gap`` / ``@gmp`` / ``@linear`` -- the adapter on the hidden vector (a 1x1 map).

``cnn_fc_fullres`` keeps the older full-resolution FC dense head: hidden -> rank
r -> C*H*W outputs, r sized to the budget (at least 1; each rank costs about C*H*W
parameters). At 32 px parity allows r = 1 at width 16 and r = 7 at width 32, and at
width 16, depth 4 not even r = 1 fits (1.56x fcn): a named variant, not the default.

A multi-head net (``adapters.build_multi_head``) passes ``sizing_heads``, so that
its one shared trunk is sized against a multi-head fcn with the same heads.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import torch
import torch.nn as nn

from fcnprobe.models.base import DEFAULT_DEPTH, DEFAULT_WIDTH, make_head, register_model, wrap
from fcnprobe.models.heads import (DecodedHead, HeadSpec, LearnedUpsample, box_activation,
                                   build_adapter, parse_head)
from fcnprobe.models.layers import ConvBNReLU

GRID = 2  # spatial side before the flatten; 2x2 keeps the FC input at 4 * conv width, affordable at parity
DEC_GRID = 4  # side of the low-resolution map the FC dense head predicts (8 px cells at 32 px)
DEC_CHANNELS = 4  # channels of the decoded map a spatial adapter (softargmax, heatmap_decode) reads
HIDDEN_ORDER = (128, 160, 192, 224, 256, 96, 64)  # FC sizes tried, preferred first (128-256, then down to 64)
MIN_HIDDEN = 64  # never fewer FC units: below this the FC layer is the strawman issue 13 removed
PLAN_TOLERANCE = 0.10  # a plan within 10% of the fcn budget is accepted; the test allows 20%
SPATIAL_ADAPTERS = ("softargmax", "heatmap_decode")  # adapters that need a map, not a vector


def halvings(image_size: int, stages: int) -> list[int]:
    """Per-stage log2 pooling factors taking ``image_size`` to about GRID, front-loaded."""
    total = max(0, int(math.floor(math.log2(max(image_size, 1) / GRID))))
    return [total // stages + (1 if i < total % stages else 0) for i in range(stages)]


class CNNFCTrunk(nn.Module):
    """Conv + pool stages down to GRID x GRID, flatten, FC + ReLU. Returns (B, hidden, 1, 1)."""

    def __init__(self, cin: int, conv_width: int, stages: int, hidden: int, image_size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        side = image_size
        for i, k in enumerate(halvings(image_size, stages)):
            layers.append(ConvBNReLU(cin if i == 0 else conv_width, conv_width))
            if k:
                layers.append(nn.MaxPool2d(2**k))
                side //= 2**k
        self.convs = nn.Sequential(*layers)
        self.image_size, self.hidden, self.out_channels = image_size, hidden, hidden
        self.fc = nn.Sequential(nn.Linear(conv_width * side * side, hidden), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(
                f"cnn_fc is fixed-size: built for {self.image_size}x{self.image_size} inputs, got "
                f"{x.shape[-2]}x{x.shape[-1]} (its flatten + FC layer takes exactly "
                f"{self.fc[0].in_features} features); build it with image_size={x.shape[-1]} instead")
        return self.fc(self.convs(x).flatten(1))[:, :, None, None]  # (B, hidden, 1, 1)

    def receptive_field(self) -> None:
        return None  # the FC layer mixes every position


class FCVectorHead(nn.Module):
    """Linear layer on the hidden vector; a box goes through the sigmoid."""

    def __init__(self, hidden: int, spec: HeadSpec) -> None:
        super().__init__()
        self.is_box, self.fc = spec.kind == "box", nn.Linear(hidden, spec.channels)

    def forward(self, feats: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        out = self.fc(feats.flatten(1))  # (B, N)
        return box_activation(out) if self.is_box else out


class FCMapDecoder(nn.Module):
    """Hidden vector -> (B, C, DEC_GRID, DEC_GRID) through an FC layer -> learned upsampling to the image."""

    def __init__(self, hidden: int, channels: int, image_size: int) -> None:
        super().__init__()
        self.channels = channels
        self.fc = nn.Linear(hidden, channels * DEC_GRID**2)
        self.up = LearnedUpsample(channels, channels, max(1, image_size // DEC_GRID))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        z = self.fc(feats.flatten(1)).view(-1, self.channels, DEC_GRID, DEC_GRID)  # (B, C, g, g)
        return self.up(z)  # (B, C, H, W)


class FullResHead(nn.Module):
    """Hidden -> rank -> C*H*W: the full-resolution FC dense head, reshaped to (B, C, H, W)."""

    def __init__(self, hidden: int, spec: HeadSpec, image_size: int, rank: int) -> None:
        super().__init__()
        self.channels, self.size = spec.channels, image_size
        self.fc = nn.Sequential(nn.Linear(hidden, rank), nn.Linear(rank, spec.channels * image_size**2))

    def forward(self, feats: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return self.fc(feats.flatten(1)).view(-1, self.channels, self.size, self.size)  # (B, C, H, W)


def build_head(spec: HeadSpec, hidden: int, image_size: int, rank: int | None = None) -> nn.Module:
    """The cnn_fc head for ``spec`` (see the module docstring); ``rank`` selects the full-res dense head."""
    if spec.kind == "dense":
        if rank is not None:
            return FullResHead(hidden, spec, image_size, rank)
        return DecodedHead(FCMapDecoder(hidden, spec.channels, image_size))
    if spec.adapter in SPATIAL_ADAPTERS:
        return DecodedHead(FCMapDecoder(hidden, DEC_CHANNELS, image_size), build_adapter(DEC_CHANNELS, spec))
    return build_adapter(hidden, spec) if spec.adapter else FCVectorHead(hidden, spec)


def _count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def fcn_params(specs: Sequence[HeadSpec], cin: int, width: int, depth: int) -> int:
    """Parameters of the matching ``fcn``: 3x3 bias-free convs + BN, and one head per spec."""
    convs = 9 * width * (cin + (depth - 1) * width) + 2 * width * depth
    return convs + sum(_count(make_head(width, s)) for s in specs)


def sizing_specs(spec: HeadSpec, sizing_heads: Sequence["str | HeadSpec"] | None) -> tuple[HeadSpec, ...]:
    """The heads a model is sized for: its own, or every head of a multi-head net (one shared trunk)."""
    return tuple(parse_head(h) for h in sizing_heads) if sizing_heads else (spec,)


def trunk_params(cin: int, c: int, stages: int, hidden: int) -> int:
    """Closed form of ``CNNFCTrunk``'s parameters (checked against the module in the tests)."""
    return 9 * c * (cin + (stages - 1) * c) + 2 * c * stages + (GRID**2 * c + 1) * hidden


@dataclasses.dataclass(frozen=True)
class CNNFCPlan:
    """A sized cnn_fc: narrowed conv width and FC hidden units, and how it compares with fcn."""

    conv_width: int  # channels of every conv stage (<= the requested width)
    hidden: int  # FC hidden units (>= MIN_HIDDEN)
    params: int  # predicted parameters of trunk + head
    budget: int  # parameters of the fcn with the same width, depth and head
    fits: bool  # within PLAN_TOLERANCE of the budget

    @property
    def ratio(self) -> float:
        return self.params / self.budget


def plan(specs: Sequence[HeadSpec], cin: int, width: int, depth: int, image_size: int) -> CNNFCPlan:
    """Size cnn_fc to fcn's budget (same heads): first FC size in HIDDEN_ORDER with a conv width that fits."""
    budget, stages = fcn_params(specs, cin, width, depth), max(depth - 1, 1)
    best: CNNFCPlan | None = None
    for hidden in HIDDEN_ORDER:
        head = sum(_count(build_head(s, hidden, image_size)) for s in specs)
        for c in range(max(1, math.ceil(width / 2)), width + 1):
            total = trunk_params(cin, c, stages, hidden) + head
            cand = CNNFCPlan(c, hidden, total, budget, abs(total / budget - 1) <= PLAN_TOLERANCE)
            if best is None or abs(cand.ratio - 1) < abs(best.ratio - 1) - 1e-9 or (cand.fits and not best.fits):
                best = cand
        if best.fits and best.hidden == hidden:
            return best
    return best


def fullres_plan(spec: HeadSpec, cin: int, width: int, depth: int, image_size: int) -> tuple[CNNFCPlan, int]:
    """The slimmest trunk (half width, MIN_HIDDEN) and the largest rank (>= 1) the budget leaves."""
    budget, stages = fcn_params((spec,), cin, width, depth), max(depth - 1, 1)
    c, n_out = max(1, math.ceil(width / 2)), spec.channels * image_size**2
    trunk = trunk_params(cin, c, stages, MIN_HIDDEN)
    rank = max(1, (budget - trunk - n_out) // (MIN_HIDDEN + 1 + n_out))
    total = trunk + rank * (MIN_HIDDEN + 1 + n_out) + n_out
    return CNNFCPlan(c, MIN_HIDDEN, total, budget, abs(total / budget - 1) <= PLAN_TOLERANCE), rank


def _build(name: str, spec: HeadSpec, in_channels: int, image_size: int, width: int | None,
           depth: int | None, fullres: bool = False, sizing_heads=None) -> nn.Module:
    width, depth = width or DEFAULT_WIDTH, depth or DEFAULT_DEPTH
    rank = None
    if fullres and spec.kind == "dense" and not sizing_heads:
        p, rank = fullres_plan(spec, in_channels, width, depth, image_size)
    else:
        p = plan(sizing_specs(spec, sizing_heads), in_channels, width, depth, image_size)
    trunk = CNNFCTrunk(in_channels, p.conv_width, max(depth - 1, 1), p.hidden, image_size)
    net = wrap(name, trunk, build_head(spec, p.hidden, image_size, rank), spec, in_channels,
               image_size, width, depth)
    net.plan = p
    return net


@register_model("cnn_fc", family="cnn_fc", category="global_op", native=("dense", "vector", "box"), fixed_size=True,
                sized_by_heads=True)
def cnn_fc(spec, in_channels, image_size, width=None, depth=None, sizing_heads=None):
    return _build("cnn_fc", spec, in_channels, image_size, width, depth, sizing_heads=sizing_heads)


@register_model("cnn_fc_fullres", family="cnn_fc", category="global_op", native=("dense", "vector", "box"),
                fixed_size=True, sized_by_heads=True)
def cnn_fc_fullres(spec, in_channels, image_size, width=None, depth=None, sizing_heads=None):
    return _build("cnn_fc_fullres", spec, in_channels, image_size, width, depth, True, sizing_heads)
