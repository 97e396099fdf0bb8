"""Output heads: the ``dense:C`` / ``vector:N`` / ``box`` spec and the adapters.

A head maps a trunk's feature map ``(B, F, h, w)`` to the requested output:

| spec       | output shape                         |
|------------|--------------------------------------|
| dense:C    | (B, C, H, W) at the input resolution |
| vector:N   | (B, N)                               |
| box        | (B, 4), normalised (x0, y0, x1, y1)  |

Families whose output is spatial (the FCNs) cannot produce ``vector`` or ``box``
natively. They use an *adapter*, a registered reduction from a feature map to a
vector. The adapter is written into the spec string after ``@`` (``vector:10@gap``)
so a record's model description says which one was used.

Also here: ``LearnedUpsample`` (stride-2 transposed convs) and ``DecodedHead``
(a head that reads a decoded map), which the global families (cnn_fc,
attention) use to put a dense map under a spatial adapter.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn
import torch.nn.functional as F

from fcnprobe.errors import UsageError
from fcnprobe.registry import Registry

ADAPTERS: Registry = Registry("adapter")
HEAD_KINDS = ("dense", "vector", "box")
DEFAULT_ADAPTER = "gap"  # global average pooling: the textbook FCN -> vector bridge


@dataclasses.dataclass(frozen=True)
class HeadSpec:
    """A parsed head string; ``adapter`` is None for a family's native head."""

    kind: str  # one of HEAD_KINDS
    channels: int  # C for dense, N for vector, 4 for box
    adapter: str | None = None

    def __str__(self) -> str:
        base = "box" if self.kind == "box" else f"{self.kind}:{self.channels}"
        return f"{base}@{self.adapter}" if self.adapter else base

    def with_adapter(self, adapter: str | None) -> "HeadSpec":
        return dataclasses.replace(self, adapter=adapter)

    def output_shape(self, batch: int, height: int, width: int) -> tuple[int, ...]:
        """The shape a correct model must return for an input of this size."""
        if self.kind == "dense":
            return (batch, self.channels, height, width)
        return (batch, self.channels)


def parse_head(head: "str | HeadSpec") -> HeadSpec:
    """Parse ``dense:C``, ``vector:N`` or ``box``, each optionally ``@adapter``."""
    if isinstance(head, HeadSpec):
        return head
    text, _, adapter = str(head).partition("@")
    kind, _, num = text.partition(":")
    if kind not in HEAD_KINDS:
        raise UsageError(f"bad head '{head}': kind must be one of {', '.join(HEAD_KINDS)}")
    if kind == "box":
        if num and num != "4":
            raise UsageError(f"bad head '{head}': a box always has 4 outputs")
        n = 4
    else:
        if not num.isdigit() or int(num) < 1:
            raise UsageError(f"bad head '{head}': expected {kind}:N with N >= 1")
        n = int(num)
    if adapter:
        ADAPTERS.get(adapter)  # validate early, with a did-you-mean
    return HeadSpec(kind, n, adapter or None)


def box_activation(z: torch.Tensor) -> torch.Tensor:
    """Map 4 raw outputs to a normalised box; sigmoid keeps coordinates in [0, 1]."""
    return torch.sigmoid(z)


class DenseConvHead(nn.Module):
    """1x1 conv to C channels, bilinearly resized to the input size if needed."""

    def __init__(self, in_ch: int, spec: HeadSpec) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_ch, spec.channels, kernel_size=1)

    def forward(self, feats: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        out = self.proj(feats)  # (B, C, h, w)
        if tuple(out.shape[-2:]) != tuple(size):
            out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
        return out  # (B, C, H, W)


class PooledHead(nn.Module):
    """Reduce (B, F, h, w) to (B, F) with ``pool``, then a linear layer to the spec."""

    def __init__(self, in_ch: int, spec: HeadSpec, pool: str) -> None:
        super().__init__()
        self.pool, self.is_box = pool, spec.kind == "box"
        self.fc = nn.Linear(in_ch, spec.channels)

    def forward(self, feats: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        v = feats.mean((-2, -1)) if self.pool == "avg" else feats.amax((-2, -1))  # (B, F)
        out = self.fc(v)  # (B, N)
        return box_activation(out) if self.is_box else out


@ADAPTERS.register("gap", differentiable=True, summary="global average pooling + linear")
def gap_adapter(in_ch: int, spec: HeadSpec) -> nn.Module:
    return PooledHead(in_ch, spec, "avg")


@ADAPTERS.register("gmp", differentiable=True, summary="global max pooling + linear")
def gmp_adapter(in_ch: int, spec: HeadSpec) -> nn.Module:
    return PooledHead(in_ch, spec, "max")


def build_adapter(in_ch: int, spec: HeadSpec) -> nn.Module:
    """Instantiate the registered adapter named in ``spec`` for a non-dense head."""
    if spec.kind == "dense":
        raise UsageError("dense heads need no adapter")
    return ADAPTERS.get(spec.adapter or DEFAULT_ADAPTER)(in_ch, spec)


class LearnedUpsample(nn.Sequential):
    """Upsample (B, C, h, w) by ``factor`` (a power of two) with stride-2 transposed convs.

    Each 2x2-kernel, stride-2 layer gives every input cell its own learned 2x2
    stencil; a ReLU sits between layers, none after the last. ``factor`` 1 is
    the identity. log2(factor) * 4 * C * C_out-ish parameters: cheap, unlike an
    FC layer to full resolution.
    """

    def __init__(self, cin: int, cout: int, factor: int) -> None:
        steps = max(factor, 1).bit_length() - 1
        if 2**steps != max(factor, 1):
            raise UsageError(f"learned upsampling needs a power-of-two factor, got {factor}")
        layers: list[nn.Module] = []
        for i in range(steps):
            layers.append(nn.ConvTranspose2d(cin, cout if i == steps - 1 else cin, 2, stride=2))
            if i < steps - 1:
                layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers if layers else [nn.Conv2d(cin, cout, 1)])


class DecodedHead(nn.Module):
    """``inner(decoder(feats))``: a head that reads a decoded map, e.g. an adapter at full resolution.

    ``inner`` None returns the decoded map itself. ``heatmap`` is forwarded so that a
    ``heatmap_decode`` adapter keeps its trainable view.
    """

    def __init__(self, decoder: nn.Module, inner: nn.Module | None = None) -> None:
        super().__init__()
        self.decoder, self.inner = decoder, inner

    def forward(self, feats: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        z = self.decoder(feats)  # (B, C, H, W)
        return z if self.inner is None else self.inner(z, size)

    def heatmap(self, feats: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return self.inner.heatmap(self.decoder(feats), size)
