"""Numeric TRF cross-check: the gradient support of a linearised, positive copy of the model.

``linearised_copy`` makes every path from the input to the probed unit carry a
non-zero, same-signed gradient, so the support of |d unit / d input| is
exactly the set of pixels the unit is connected to, whatever the weights:

* ReLU-like and saturating activations (ReLU, ReLU6, Hardtanh, Hardswish,
  Hardsigmoid, GELU, SiLU, Sigmoid, Tanh, ...) become the identity, since a
  closed ReLU or a flat sigmoid would hide a connection;
* norm layers become the identity (their statistics are not part of the TRF,
  as in ``fcnprobe.measure.trf_graph``), dropout too;
* max-pooling becomes average pooling over the same window, so every window
  position counts and not only the argmax (max-pool under-reads otherwise:
  196 instead of 212 px at VGG-16's pool5);
* every weight with two or more dims becomes the positive constant 1 / fan-in
  (nothing cancels, activations stay O(1)); biases become 0, 1-D scales 1.

The input is positive, in float64. Functional activations and pools inside a
module's ``forward`` cannot be swapped; with positive inputs and weights most
of them pass a non-zero gradient anyway (``F.max_pool2d`` does not: the
result then under-reads, which the graph walk does not).

Example::

    >>> numeric_receptive_field(model, 64).size_px
    (9, 9)
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn

from fcnprobe.measure.outputs import probe_tensor
from fcnprobe.measure.trf_graph import input_shape, model_in_channels
from fcnprobe.utils import no_mha_fast_path

__all__ = ["NumericRF", "linearised_copy", "numeric_receptive_field"]

IDENTITY = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.GELU, nn.SiLU, nn.Mish, nn.Sigmoid,
            nn.Tanh, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.Softplus, nn.PReLU, nn.Identity,
            nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm, nn.GroupNorm, nn.LayerNorm,
            nn.modules.dropout._DropoutNd)
_MAX_TO_AVG = {nn.MaxPool1d: nn.AvgPool1d, nn.MaxPool2d: nn.AvgPool2d, nn.MaxPool3d: nn.AvgPool3d}
_ADAPTIVE = {nn.AdaptiveMaxPool1d: nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool2d: nn.AdaptiveAvgPool2d,
             nn.AdaptiveMaxPool3d: nn.AdaptiveAvgPool3d}


@dataclasses.dataclass(frozen=True)
class NumericRF:
    """Support of the centre unit's input gradient: side per axis (H, W), clipped to the image."""

    size_px: tuple[int, ...]
    box: tuple[tuple[int, int], ...]  # first and last supported pixel per axis
    clipped: bool  # the support touches the image border, so the true TRF may be larger
    support: np.ndarray  # (H, W) float64, sum over channels of |d unit / d input|

    @property
    def side_px(self) -> int:
        return max(self.size_px)


def _replacement(m: nn.Module) -> nn.Module | None:
    if isinstance(m, IDENTITY):
        return nn.Identity()
    if type(m) in _MAX_TO_AVG:
        return _MAX_TO_AVG[type(m)](m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode)
    if type(m) in _ADAPTIVE:
        return _ADAPTIVE[type(m)](m.output_size)
    return None


def _dilated_max_pool(m: nn.Module) -> bool:
    if type(m) not in _MAX_TO_AVG:
        return False
    d = m.dilation if isinstance(m.dilation, tuple) else (m.dilation,)
    return any(x != 1 for x in d)


def linearised_copy(model: nn.Module) -> nn.Module:
    """A float64 eval-mode copy with activations, norms and dropout removed, max-pools averaged, weights 1/fan-in."""
    lin = copy.deepcopy(model).double().eval()
    for parent in list(lin.modules()):
        for name, child in list(parent.named_children()):
            if _dilated_max_pool(child):
                raise ValueError(f"{name}: a dilated max-pool has no average-pool twin")
            new = _replacement(child)
            if new is not None:
                setattr(parent, name, new)
    with torch.no_grad():
        for name, p in lin.named_parameters():
            if p.dim() >= 2:
                p.fill_(1.0 / max(p[0].numel(), 1))  # fan-in: every output's weights sum to 1
            else:
                p.fill_(0.0 if name.endswith("bias") else 1.0)
    return lin


def _box(support: np.ndarray) -> tuple[tuple[int, int], ...]:
    idx = np.nonzero(support > 0)
    if not len(idx[0]):
        raise ValueError("the probed unit's input gradient is zero everywhere")
    return tuple((int(i.min()), int(i.max())) for i in idx)


def numeric_receptive_field(model: nn.Module, input_size: "int | Sequence[int]", output: str | int | None = None,
                            layer: str | None = None, seed: int = 0) -> NumericRF:
    """Support of |d unit / d input| for the centre unit of the chosen tensor of ``linearised_copy(model)``."""
    lin = linearised_copy(model)
    shape = input_shape(input_size, model_in_channels(model))
    gen = torch.Generator().manual_seed(seed)
    x = (0.5 + torch.rand(shape, generator=gen, dtype=torch.float64)).requires_grad_(True)  # positive
    with no_mha_fast_path(), torch.enable_grad():  # the fused path reads LayerNorm attributes the copy lacks
        y = probe_tensor(lin, x, output, layer)  # (B, K, *spatial) or (B, N, K) tokens: centre by index
        centre = y[(slice(None), slice(None), *(s // 2 for s in y.shape[2:]))] if y.dim() >= 3 else y
        (g,) = torch.autograd.grad(centre.sum(), x)
    support = g.abs().sum((0, 1)).numpy()  # (H, W)
    box = _box(support)
    clipped = any(lo == 0 or hi == n - 1 for (lo, hi), n in zip(box, support.shape))
    return NumericRF(tuple(hi - lo + 1 for lo, hi in box), box, clipped, support)
