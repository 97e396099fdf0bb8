"""Heatmap adapters from an FCN's feature map to a box or keypoints: soft-argmax
(differentiable) and threshold / argmax decoding (the seed's "post-processing", not).

* ``softargmax`` -- a 1x1 conv gives a centre heatmap; its spatial softmax is a
  distribution over positions and the output is that distribution's expected
  (x, y) (soft-argmax: Chapelle & Wu 2010; integral regression: Sun et al.,
  ECCV 2018). For a box, two more channels give the width and height, read off
  as softmax-weighted means (the centre + size parameterisation of CenterNet,
  Zhou et al. 2019, "Objects as Points"). The size is linear, not squashed: with
  a sigmoid, L1 shrank the box while the centre was still wrong and the sigmoid
  saturated at 0 for good in some runs. ``vector:2K`` gives K keypoints
  ``(x1, y1, ..., xK, yK)``.
* ``heatmap_decode`` -- a 1x1 conv gives a foreground logit map that is trained
  against a mask (``heatmap()``), and ``forward`` decodes it *outside autograd*:
  the box is the bounding box of pixels with logit > 0 (the argmax pixel when
  none is), and ``vector:2K`` is the hard argmax of K maps. The seed's Example 3
  comment: "convert pixel-wise predictions to box coordinates ... typically a
  post processing task".
* ``linear`` -- direct regression: global average pooling (a 1x1 map, such as
  cnn_fc's hidden vector, passes unchanged) and one linear layer with no output
  activation, de-standardised by per-output buffers: ``out = mean + std * z``.
  The loss side standardises: it calls ``set_target_stats(net, mean, std)`` with
  the training targets' per-output mean and std, and trains on the standardised
  error ``(out - y) / std`` (``standardised_error``); so ``z`` regresses the
  standardised target and the output is in the target's own units for scoring.
  The FCN reads a pooled feature, because a flatten + FC would make it cnn_fc.

Coordinates are normalised to [0, 1]: pixel i of n spans [i/n, (i+1)/n], so its
centre is (i + 0.5)/n (the convention of ``heads.box`` outputs and the locate task).
Both adapters work at the feature map's own resolution, which for every trunk in
the zoo is a uniform grid over the image. Also here: ``MultiHeadNet`` (several
heads on one trunk, for structured outputs), ``HeatmapView`` (the trainable part of
a ``heatmap_decode`` model) and ``gradient_reaches_trunk`` (differentiability, measured).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from fcnprobe.errors import UsageError
from fcnprobe.models.heads import ADAPTERS, HeadSpec


def pixel_centres(n: int, like: torch.Tensor) -> torch.Tensor:
    """(n,) normalised centres (i + 0.5) / n on ``like``'s device and dtype."""
    return (torch.arange(n, device=like.device, dtype=like.dtype) + 0.5) / n


def soft_argmax(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, K, h, w) logits -> expected (x, y) per map, (B, K, 2), and the softmax (B, K, h, w)."""
    b, k, h, w = logits.shape
    p = logits.flatten(2).softmax(-1).view(b, k, h, w)  # (B, K, h, w), sums to 1 per map
    x = (p.sum(2) * pixel_centres(w, p)).sum(-1)  # (B, K)
    y = (p.sum(3) * pixel_centres(h, p)).sum(-1)  # (B, K)
    return torch.stack([x, y], dim=-1), p


def hard_argmax(logits: torch.Tensor) -> torch.Tensor:
    """(B, K, h, w) -> (B, K, 2) normalised centre of each map's argmax pixel."""
    b, k, h, w = logits.shape
    idx = logits.flatten(2).argmax(-1)  # (B, K)
    x = ((idx % w).to(logits.dtype) + 0.5) / w
    y = (torch.div(idx, w, rounding_mode="floor").to(logits.dtype) + 0.5) / h
    return torch.stack([x, y], dim=-1)


def _first_last(any_: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, n) bool -> index of the first and one past the last True (argmax takes the first max)."""
    n = any_.shape[1]
    first = any_.to(torch.uint8).argmax(1)
    last = n - any_.flip(1).to(torch.uint8).argmax(1)
    return first, last


def decode_box(logits: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """(B, H, W) logits -> (B, 4) normalised bounding box of the pixels above ``threshold``.

    Where no pixel passes, the box is the single argmax pixel. Every foreground
    pixel counts (no connected components), so a stray pixel widens the box.
    """
    b, h, w = logits.shape
    fg = logits > threshold  # (B, H, W)
    x0, x1 = _first_last(fg.any(1))  # columns
    y0, y1 = _first_last(fg.any(2))  # rows
    box = torch.stack([x0 / w, y0 / h, x1 / w, y1 / h], dim=1).to(logits.dtype)  # (B, 4)
    c = hard_argmax(logits[:, None])[:, 0]  # (B, 2)
    half = torch.tensor([0.5 / w, 0.5 / h], device=c.device, dtype=c.dtype)  # half a pixel
    fallback = torch.cat([c - half, c + half], dim=1)  # (B, 4), the argmax pixel
    empty = ~fg.flatten(1).any(1)  # (B,)
    return torch.where(empty[:, None], fallback.to(box.dtype), box)


def _keypoints(spec: HeadSpec, adapter: str) -> int:
    """Number of heatmaps: 1 centre map for a box, K for vector:2K."""
    if spec.kind == "box":
        return 1
    if spec.channels % 2:
        raise UsageError(f"adapter '{adapter}' gives (x, y) pairs: vector:{spec.channels} is odd, "
                         f"use vector:2K or box")
    return spec.channels // 2


class SoftArgmaxHead(nn.Module):
    """Centre heatmap(s) -> soft-argmax; for a box, plus softmax-weighted width and height."""

    def __init__(self, in_ch: int, spec: HeadSpec) -> None:
        super().__init__()
        self.is_box, self.k = spec.kind == "box", _keypoints(spec, "softargmax")
        self.proj = nn.Conv2d(in_ch, self.k + (2 if self.is_box else 0), kernel_size=1)

    def forward(self, feats: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        z = self.proj(feats)  # (B, K [+2], h, w)
        xy, p = soft_argmax(z[:, :self.k])  # (B, K, 2), (B, K, h, w)
        if not self.is_box:
            return xy.flatten(1)  # (B, 2K)
        wh = (z[:, self.k:] * p).sum((-2, -1))  # (B, 2), read where the centre map puts its mass
        c = xy[:, 0]  # (B, 2)
        return torch.cat([c - wh / 2, c + wh / 2], dim=1)  # (B, 4)


class HeatmapDecodeHead(nn.Module):
    """Foreground (box) or keypoint (vector) logit maps; ``forward`` decodes them without gradient."""

    def __init__(self, in_ch: int, spec: HeadSpec, threshold: float = 0.0) -> None:
        super().__init__()
        self.is_box, self.k = spec.kind == "box", _keypoints(spec, "heatmap_decode")
        self.proj = nn.Conv2d(in_ch, self.k, kernel_size=1)
        self.threshold = threshold  # logit 0 = probability 0.5

    def heatmap(self, feats: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The trainable part: logits (B, K, H, W) at the input resolution."""
        z = self.proj(feats)  # (B, K, h, w)
        if tuple(z.shape[-2:]) != tuple(size):
            z = F.interpolate(z, size=size, mode="bilinear", align_corners=False)
        return z

    def forward(self, feats: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        with torch.no_grad():  # post-processing: no gradient reaches the trunk
            z = self.heatmap(feats, size)  # (B, K, H, W)
            if self.is_box:
                return decode_box(z[:, 0], self.threshold)  # (B, 4)
            return hard_argmax(z).flatten(1)  # (B, 2K)


@ADAPTERS.register("softargmax", differentiable=True, trains_on="output",
                   summary="1x1 conv to a centre heatmap (+ size maps), spatial softmax expectation")
def softargmax_adapter(in_ch: int, spec: HeadSpec) -> nn.Module:
    return SoftArgmaxHead(in_ch, spec)


@ADAPTERS.register("heatmap_decode", differentiable=False, trains_on="mask",
                   summary="1x1 conv to a foreground heatmap trained on a mask; threshold + bounding box "
                           "(argmax for keypoints) outside autograd")
def heatmap_decode_adapter(in_ch: int, spec: HeadSpec) -> nn.Module:
    return HeatmapDecodeHead(in_ch, spec)


class LinearRegressionHead(nn.Module):
    """Global average pool -> linear -> ``mean + std * z``; no sigmoid, so nothing saturates."""

    def __init__(self, in_ch: int, spec: HeadSpec) -> None:
        super().__init__()
        self.fc = nn.Linear(in_ch, spec.channels)
        self.register_buffer("mean", torch.zeros(spec.channels))  # set from the training targets
        self.register_buffer("std", torch.ones(spec.channels))

    def forward(self, feats: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        z = self.fc(feats.mean((-2, -1)))  # (B, N), standardised units
        return self.mean + self.std * z  # (B, N), target units


@ADAPTERS.register("linear", differentiable=True, trains_on="output", standardised=True,
                   summary="global average pooling + linear, no output activation, targets standardised")
def linear_adapter(in_ch: int, spec: HeadSpec) -> nn.Module:
    return LinearRegressionHead(in_ch, spec)


def set_target_stats(net: nn.Module, mean: torch.Tensor, std: torch.Tensor, min_std: float = 1e-6) -> int:
    """Write per-output target mean/std (N,) into every ``linear`` head of ``net``; returns how many.

    In a ``MultiHeadNet`` pass each head's own slice: ``set_target_stats(net.heads['box'], m, s)``.
    """
    heads = [m for m in net.modules() if isinstance(m, LinearRegressionHead)]
    for h in heads:
        h.mean.copy_(mean.to(h.mean))
        h.std.copy_(std.to(h.std).clamp_min(min_std))
    return len(heads)


def standardised_error(out: torch.Tensor, target: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(out - target) / std, (B, N): the error a ``linear`` head is trained on (MSE or L1 over it)."""
    return (out - target) / std.to(out).clamp_min(1e-6)


class HeatmapView(nn.Module):
    """The trainable heatmap of a ``heatmap_decode`` model, (B, 1, H, W) logits; shares its weights."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.head.heatmap(self.net.trunk(x), tuple(x.shape[-2:]))


def gradient_reaches_trunk(net: nn.Module, x: torch.Tensor) -> bool:
    """Measured, not declared: does d(output)/d(trunk features) exist and is it non-zero?"""
    net.eval()
    feats = net.trunk(x).detach().requires_grad_(True)  # (B, F, h, w)
    out = net.head(feats, tuple(x.shape[-2:]))
    if not out.requires_grad:
        return False
    (g,) = torch.autograd.grad((out * torch.randn_like(out)).sum(), feats, allow_unused=True)
    return g is not None and bool(g.abs().sum() > 0)


class MultiHeadNet(nn.Module):
    """One trunk, several named heads; ``forward`` concatenates their outputs in order, (B, sum N)."""

    def __init__(self, trunk: nn.Module, heads: dict[str, nn.Module], specs: dict[str, str]) -> None:
        super().__init__()
        self.trunk, self.heads, self.specs = trunk, nn.ModuleDict(heads), dict(specs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.trunk(x)  # (B, F, h, w)
        size = tuple(x.shape[-2:])
        return torch.cat([self.heads[k](feats, size) for k in self.specs], dim=1)  # (B, sum N)


def build_multi_head(name: str, specs: dict[str, str], **kwargs) -> MultiHeadNet:
    """A registered family's trunk with one head per output, each as that family builds it.

    Families registered with ``sized_by_heads`` (cnn_fc, attention) size their one
    shared trunk for the whole set of heads, so the net matches a multi-head fcn's parameters.

    >>> net = build_multi_head("fcn", {"cls": "vector:3@gap", "box": "box@softargmax"}, image_size=32)
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 7])
    """
    from fcnprobe.models.base import MODELS, create_model

    if name in MODELS and MODELS.meta(name).get("sized_by_heads"):  # size one shared trunk for all heads
        kwargs = {**kwargs, "sizing_heads": tuple(specs.values())}
    built = {k: create_model(name, head=h, **kwargs) for k, h in specs.items()}
    trunk = next(iter(built.values())).trunk  # every built trunk is the same architecture
    return MultiHeadNet(trunk, {k: m.head for k, m in built.items()}, specs)
