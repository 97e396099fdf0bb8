"""Effective receptive fields (ERF): batched input gradients of a centre unit, with TRF checks.

* ``gradient_maps(model, inputs)``: the input gradient of the centre unit (its
  channels weighted by random signs), averaged over inputs as mean |g| and mean
  g^2 (summed over input channels). In eval mode samples are independent, so
  one backward of the sum over the batch gives every per-sample gradient at
  once (RepLKNet's ``visualize_erf.py`` runs one image per backward;
  ``benchmarks/test_bench_erf.py`` measures the difference). RepLKNet instead
  backpropagates ``relu(y).sum()`` and keeps ``relu(g)``; our HCA numbers are
  comparable with their Table 10 in kind, not digit for digit.
* ``effective_receptive_field(model, inputs)``: both maps, the numeric TRF
  support (``fcnprobe.measure.receptive``) and the metrics of
  ``fcnprobe.analysis.erf.map_metrics``.

Knows nothing of sweeps or records. References: Luo et al., NeurIPS 2016;
Ding et al. (RepLKNet), CVPR 2022; Araujo et al., Distill 2019.

Example::

    >>> import torch, fcnprobe
    >>> m = fcnprobe.create_model("fcn")
    >>> r = fcnprobe.effective_receptive_field(m, torch.randn(16, 3, 32, 32))
    >>> r.metrics["trf_px"], r.metrics["trf_numeric_px"]
    (13, 13)
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn as nn

from fcnprobe.analysis.erf import default_centre, map_metrics, support_box
from fcnprobe.measure.receptive import centre_unit, numeric_support, support_side, theoretical_receptive_field
from fcnprobe.utils import check_finite

__all__ = ["ERFResult", "effective_receptive_field", "gradient_maps", "rademacher", "unit_centre"]


def rademacher(n: int, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, k) random signs, drawn on the CPU so every device gets the same ones."""
    gen = generator or torch.Generator().manual_seed(0)
    return torch.randint(0, 2, (n, k), generator=gen).mul(2).sub(1)


def gradient_maps(model: nn.Module, inputs: torch.Tensor, batch_size: int = 32,
                  generator: torch.Generator | None = None) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Mean over inputs of sum_c |g| and of sum_c g^2, each (H, W) float64, and the unit map's (h, w).

    Puts ``model`` in eval mode (BatchNorm must not mix the samples of a batch).
    g is the input gradient of ``sum_k s_k y_k``, the centre unit's K channels
    weighted by random signs s (one draw per input, from ``generator``). Then
    E[g^2] is exactly the squared Jacobian norm ``sum_k (dy_k/dx)^2``
    (Hutchinson), without the cross terms a plain channel sum keeps: those
    cancel exactly after a LayerNorm and follow the untrained softmax-invariant
    direction of a classifier's logits. With one channel, |g| is exact.
    A NaN or inf output or gradient raises ``CellError`` naming the stage.
    """
    model.eval()
    dev = next(model.parameters()).device
    abs_sum = torch.zeros(inputs.shape[-2:], dtype=torch.float64, device=dev)
    sq_sum, signs, hw = torch.zeros_like(abs_sum), None, (0, 0)
    for i in range(0, len(inputs), batch_size):
        x = inputs[i:i + batch_size].to(dev).detach().requires_grad_(True)  # (b, C, H, W)
        unit, hw = centre_unit(model, x)  # (b, K)
        if signs is None:  # drawn once for all inputs, so batching never changes the draw
            signs = rademacher(len(inputs), unit.shape[1], generator).to(dev, unit.dtype)  # (N, K)
        (g,) = torch.autograd.grad((unit * signs[i:i + len(x)]).sum(), x)  # one backward per batch
        g = check_finite(g, "erf_gradient").double()
        abs_sum += g.abs().sum((0, 1))
        sq_sum += g.pow(2).sum((0, 1))
    n = len(inputs)
    return (abs_sum / n).cpu().numpy(), (sq_sum / n).cpu().numpy(), hw


def unit_centre(unit_hw: tuple[int, int], input_hw: tuple[int, int],
                support: np.ndarray) -> tuple[float, float]:
    """Input position (row, col) of the unit at (h // 2, w // 2).

    At input resolution it is (H // 2, W // 2). Otherwise it is the centre of the
    unit's numerical support when that lies inside the image (exact for padded
    strided convs), else the centre of the unit's cell, ``(i + 1/2) H / h - 1/2``.
    """
    if tuple(unit_hw) == tuple(input_hw):
        return default_centre(input_hw)
    if not support_side(support)[1]:
        y0, y1, x0, x1 = support_box(support)
        return 0.5 * (y0 + y1), 0.5 * (x0 + x1)
    return tuple((u // 2 + 0.5) * s / u - 0.5 for u, s in zip(unit_hw, input_hw))


@dataclasses.dataclass
class ERFResult:
    """ERF maps and metrics of one model; maps are (H, W) float64 at input resolution."""

    erf_abs: np.ndarray  # mean over inputs of sum_c |dy/dx|
    erf_sq: np.ndarray  # mean over inputs of sum_c (dy/dx)^2
    support: np.ndarray  # gradient of the linearised copy; > 0 exactly on the TRF
    centre: tuple[float, float]  # input position of the probed unit (row, col)
    metrics: dict  # see fcnprobe.analysis.erf.map_metrics, plus TRF entries and n_inputs


def effective_receptive_field(model: nn.Module, inputs: torch.Tensor, batch_size: int = 32,
                              image_size: int | None = None,
                              generator: torch.Generator | None = None) -> ERFResult:
    """ERF of the centre unit of ``model`` over ``inputs`` (B, C, H, W), with TRF checks.

    ``generator`` (CPU) draws the channel signs of ``gradient_maps``.
    ``trf_px`` is analytic (None = global), ``trf_numeric_px`` the support side
    of the linearised copy (clipped to the image; see ``trf_numeric_clipped``)
    and ``erf_trf_ratio = erf_std_px / trf_px`` (None when global).
    """
    size = image_size or inputs.shape[-1]
    m_abs, m_sq, hw = gradient_maps(model, inputs, batch_size, generator)
    support, _ = numeric_support(model, inputs.shape[1], inputs.shape[-1])
    centre = unit_centre(hw, tuple(inputs.shape[-2:]), support)
    trf = theoretical_receptive_field(model, size)
    side, clipped = support_side(support)
    metrics = map_metrics(m_abs, m_sq, centre)
    metrics.update(trf_px=trf, trf_numeric_px=side, trf_numeric_clipped=clipped, n_inputs=len(inputs),
                   erf_trf_ratio=None if trf is None else metrics["erf_std_px"] / trf,
                   unit_row_px=centre[0], unit_col_px=centre[1])
    return ERFResult(m_abs, m_sq, support, centre, metrics)
