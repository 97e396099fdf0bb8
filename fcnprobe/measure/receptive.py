"""Theoretical receptive field (TRF): the closed-form arithmetic of the zoo's trunks, and the public entry point.

For a chain of layers with kernel k_i, stride s_i and dilation d_i, one output
unit sees ``r = 1 + sum_i (k_i - 1) * d_i * J_i`` input pixels per axis, where
``J_i = prod_{j<i} s_j`` is the jump (input pixels per step) before layer i
(Araujo et al., "Computing Receptive Fields of CNNs", Distill 2019). An
upsampling by f that interpolates between ``taps`` neighbours adds
``(taps - 1) * J`` and divides the jump by f. Any global operation (global
pooling, attention, a flatten + FC) makes the field global: ``None``.

``theoretical_receptive_field(model, image_size)`` answers for any module:
zoo models (``ProbeNet``) from their own layers with this arithmetic, every
other module from the traced graph (``fcnprobe.measure.trf_graph``), which
follows branches, residual adds, functional calls and transposed convs. The
return value is an ``int`` (finite side in px), ``None`` (global: some op
mixes every position) or, when the graph cannot place an op, a raised
``UnknownReceptiveField`` carrying the reason: never a silent ``None``.
The one numeric cross-check is ``fcnprobe.measure.trf_numeric``.

Example::

    >>> import torch.nn as nn
    >>> net = nn.Sequential(*[nn.Conv2d(3 if i == 0 else 8, 8, 3, padding=1) for i in range(4)])
    >>> theoretical_receptive_field(net, 32)
    9
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

import torch.nn as nn

_POOLS = (nn.MaxPool2d, nn.AvgPool2d)
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_POINTWISE = (nn.ReLU, nn.BatchNorm2d, nn.Identity, nn.Dropout, nn.GELU, nn.Sigmoid, nn.Tanh, nn.LeakyReLU)


def _pair(v: "int | tuple[int, ...]") -> int:
    """Our convs are square; take the first entry of a (h, w) tuple."""
    return v[0] if isinstance(v, tuple) else int(v)


@dataclasses.dataclass
class RF:
    """Running receptive field: ``size`` in input pixels, ``jump`` in input px per step."""

    size: float = 1.0
    jump: float = 1.0

    def conv(self, k: int, s: int = 1, d: int = 1) -> "RF":
        self.size += (k - 1) * d * self.jump
        self.jump *= s
        return self

    def upsample(self, factor: float, taps: int = 2) -> "RF":
        self.size += (taps - 1) * self.jump
        self.jump /= factor
        return self

    def layer(self, m: nn.Module) -> "RF":
        """Advance through one conv or pooling module."""
        if isinstance(m, nn.Conv2d):
            return self.conv(_pair(m.kernel_size), _pair(m.stride), _pair(m.dilation))
        k = _pair(m.kernel_size)
        return self.conv(k, _pair(m.stride if m.stride is not None else k), _pair(getattr(m, "dilation", 1)))

    def value(self) -> int:
        return int(round(self.size))


def chain_rf(modules: Iterable[nn.Module], rf: RF | None = None) -> RF | None:
    """Walk leaf modules in order; ``None`` as soon as one of them is not local.

    Only valid where registration order is forward order and there are no
    branches, as in ``nn.Sequential`` stacks and the seed's models.
    """
    rf = rf or RF()
    for m in modules:
        if list(m.children()) or isinstance(m, _CONTAINERS):
            continue
        if isinstance(m, (nn.Conv2d, *_POOLS)):
            rf.layer(m)
        elif not isinstance(m, _POINTWISE):
            return None
    return rf


class UnknownReceptiveField(ValueError):
    """The graph holds an op the TRF rules cannot place (or the model cannot be traced); ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"receptive field unknown: {reason}")
        self.reason = reason


DEFAULT_SIZE = 64  # px traced when the caller gives no size and the model does not say its own


def theoretical_receptive_field(model: nn.Module, image_size: "int | Sequence[int] | None" = None,
                                output: str | int | None = None, layer: str | None = None) -> int | None:
    """TRF side in px of the centre unit of the model's output (or ``layer``'s); ``None`` if global.

    Zoo models answer from their own layers (``model.receptive_field``); any
    other module from its traced graph at ``image_size`` (default: its
    ``info.image_size``, else 64). Raises ``UnknownReceptiveField`` when the
    graph cannot be placed, so an unknown field is never mistaken for global.
    """
    if hasattr(model, "receptive_field") and output is None and layer is None:
        return model.receptive_field(image_size)
    from fcnprobe.measure.trf_graph import graph_receptive_field

    size = image_size or getattr(getattr(model, "info", None), "image_size", None) or DEFAULT_SIZE
    field = graph_receptive_field(model, size, output=output, layer=layer).field
    if field.kind == "unknown":
        raise UnknownReceptiveField(field.reason or "no reason given")
    return field.side_px
