"""Theoretical receptive field (TRF) arithmetic, read off the layers themselves.

For a chain of layers with kernel k_i, stride s_i and dilation d_i, one output
unit sees ``r = 1 + sum_i (k_i - 1) * d_i * J_i`` input pixels per axis, where
``J_i = prod_{j<i} s_j`` is the jump (input pixels per step) before layer i
(Araujo et al., "Computing Receptive Fields of CNNs", Distill 2019). An
upsampling by f that interpolates between ``taps`` neighbours adds
``(taps - 1) * J`` and divides the jump by f. Any global operation (global
pooling, attention, a flatten + FC) makes the field global: ``None``.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable

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


def theoretical_receptive_field(model: nn.Module, image_size: int | None = None) -> int | None:
    """TRF side in pixels of a unit of the model's last spatial map; None if global.

    Registered models answer from their own layers (``model.receptive_field``).
    Other models are walked as a plain chain of leaf modules, which is right for
    sequential conv nets and returns None on any layer it cannot place.
    """
    if hasattr(model, "receptive_field"):
        return model.receptive_field(image_size)
    rf = chain_rf(model.modules())
    return None if rf is None else rf.value()
