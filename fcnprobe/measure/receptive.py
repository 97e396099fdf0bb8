"""Theoretical receptive field (TRF): analytic, read off the layers, and numeric, from gradients.

For a chain of layers with kernel k_i, stride s_i and dilation d_i, one output
unit sees ``r = 1 + sum_i (k_i - 1) * d_i * J_i`` input pixels per axis, where
``J_i = prod_{j<i} s_j`` is the jump (input pixels per step) before layer i
(Araujo et al., "Computing Receptive Fields of CNNs", Distill 2019). An
upsampling by f that interpolates between ``taps`` neighbours adds
``(taps - 1) * J`` and divides the jump by f. Any global operation (global
pooling, attention, a flatten + FC) makes the field global: ``None``.

The numeric TRF (``numeric_receptive_field``) is the support of the input
gradient of a linearised copy (activations, BatchNorm, LayerNorm and dropout
removed, weights made positive, float64). Positive weights cannot cancel, so
the support is exactly the set of connected pixels, for skips, branches and
attention too: a check on the analytic value that needs no knowledge of the layers.

Example::

    >>> import torch.nn as nn
    >>> net = nn.Sequential(*[nn.Conv2d(3 if i == 0 else 8, 8, 3, padding=1) for i in range(4)])
    >>> theoretical_receptive_field(net), numeric_receptive_field(net, 32)
    (9, (9, False))
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Iterable

import numpy as np
import torch
import torch.nn as nn

from fcnprobe.analysis.erf import support_box
from fcnprobe.utils import check_finite

_POOLS = (nn.MaxPool2d, nn.AvgPool2d)
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_REMOVED = (nn.ReLU, nn.GELU, nn.LeakyReLU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.modules.batchnorm._BatchNorm,
            nn.LayerNorm, nn.modules.dropout._DropoutNd)  # per-position maps: support-neutral
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


# --------------------------------------------------------------------------- numeric TRF
def unit_map(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The (B, K, h, w) map whose centre unit is probed: the dense output, else the last spatial map.

    A model with ``info.head`` not dense and a ``features`` method (a zoo ``ProbeNet``)
    is probed on its features; any other model on its output, or on ``features``
    when the output is not spatial.
    """
    head = str(getattr(getattr(model, "info", None), "head", "dense"))
    if not head.startswith("dense") and hasattr(model, "features"):
        return model.features(x)
    out = model(x)
    if out.dim() == 4:
        return out
    if hasattr(model, "features"):
        return model.features(x)
    raise ValueError(f"{type(model).__name__} returns {tuple(out.shape)} and has no features(): no spatial unit")


def centre_unit(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """The centre unit's channel vector for each sample, (B, K), and the unit map's (h, w)."""
    fmap = check_finite(unit_map(model, x), "forward")  # (B, K, h, w)
    h, w = fmap.shape[-2:]
    return fmap[:, :, h // 2, w // 2], (h, w)


def linearised_copy(model: nn.Module) -> nn.Module:
    """A float64 copy with per-position nonlinearities and norms removed and positive weights.

    Each weight tensor becomes |w| (floored at 1e-6 of its max, so a zero weight
    still connects) normalised per output row; biases become 0. With positive
    inputs every activation is then positive, so functional ReLUs and max-pools
    pass gradients too. With BatchNorm and dropout gone, train mode computes the
    same function as eval and keeps torch's eval-only fused transformer path
    (which reads LayerNorm attributes) out of the way.
    """
    lin = copy.deepcopy(model).double()
    for parent in list(lin.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, _REMOVED):
                setattr(parent, name, nn.Identity())
    with torch.no_grad():
        for p in lin.parameters():
            if p.dim() >= 2:
                a = p.abs().clamp_min(1e-6 * float(p.abs().max()) + 1e-300)
                p.copy_(a / a.flatten(1).sum(1).view(-1, *[1] * (p.dim() - 1)))
            else:
                p.zero_()
    return lin.train()


def numeric_support(model: nn.Module, in_channels: int, image_size: int,
                    generator: torch.Generator | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """(H, W) input-gradient magnitude of the centre unit of ``linearised_copy(model)`` (float64)."""
    lin = linearised_copy(model)
    dev = next(lin.parameters()).device
    gen = generator or torch.Generator().manual_seed(0)  # CPU: the same input on every device
    x = 0.5 + torch.rand(1, in_channels, image_size, image_size, generator=gen, dtype=torch.float64)
    x = x.to(dev)  # (1, C, H, W), positive: keeps every ReLU open
    unit, hw = centre_unit(lin, x.requires_grad_(True))  # (1, K), every entry positive
    (g,) = torch.autograd.grad(unit.sum(), x)  # positive weights: no channel can cancel another
    return check_finite(g, "numeric_trf_gradient").abs().sum((0, 1)).cpu().numpy(), hw


def support_side(support: np.ndarray) -> tuple[int, bool]:
    """(side in px, clipped): side of the support's bounding box; clipped if it touches the border."""
    y0, y1, x0, x1 = support_box(support)
    h, w = support.shape
    return max(y1 - y0 + 1, x1 - x0 + 1), min(y0, x0) == 0 or y1 == h - 1 or x1 == w - 1


def numeric_receptive_field(model: nn.Module, image_size: int, in_channels: int = 3) -> tuple[int, bool]:
    """(side in px, clipped): side of the numerical support; clipped if it touches the image border."""
    support, _ = numeric_support(model, in_channels, image_size)
    return support_side(support)
