"""Effective receptive fields (ERF): batched input gradients of a centre unit, with TRF checks.

* ``gradient_maps(model, inputs)``: the input gradient of the centre unit (its
  channels weighted by random signs), averaged over inputs as mean |g| and mean
  g^2 (summed over input channels). In eval mode samples are independent, so
  one backward of the sum over the batch gives every per-sample gradient at
  once (RepLKNet's ``visualize_erf.py`` runs one image per backward;
  ``benchmarks/test_bench_erf.py`` measures the difference). RepLKNet instead
  backpropagates ``relu(y).sum()`` and keeps ``relu(g)``; our HCA numbers are
  comparable with their Table 10 in kind, not digit for digit.
* ``effective_receptive_field(model, inputs)``: both maps, the graph-exact TRF
  (``fcnprobe.measure.trf_graph``), the numeric support check
  (``fcnprobe.measure.trf_numeric``) with the verdict ``trf_check``
  (agree | disagree | n/a, a disagreement also in ``warnings``), and the
  metrics of ``fcnprobe.analysis.erf.map_metrics``.
* ``UnitModule(model, output, layer)``: the probed tensor as a plain module, so
  every check sees the same unit. ``output`` picks a dict key / tuple index /
  ``.logits``; ``layer`` a submodule's output by forward hook. Zoo models with a
  non-dense head are probed on ``features`` (their last spatial map); any other
  module whose output is not spatial is refused with a hint to ``layer``.

Knows nothing of sweeps or records. References: Luo et al., NeurIPS 2016;
Ding et al. (RepLKNet), CVPR 2022; Araujo et al., Distill 2019.

Example::

    >>> import torch, fcnprobe
    >>> m = fcnprobe.create_model("fcn")
    >>> r = fcnprobe.effective_receptive_field(m, torch.randn(16, 3, 32, 32))
    >>> r.metrics["trf_px"], r.metrics["trf_numeric_px"], r.metrics["trf_check"]
    (13, 13, 'agree')
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn as nn

from fcnprobe.analysis.erf import default_centre, map_metrics
from fcnprobe.measure.outputs import model_device, preserved_mode, probe_tensor
from fcnprobe.measure.trf_graph import ReceptiveField, graph_receptive_field
from fcnprobe.measure.trf_numeric import NumericRF, numeric_receptive_field
from fcnprobe.utils import check_finite

__all__ = ["ERFResult", "UnitModule", "centre_unit", "effective_receptive_field", "gradient_maps", "rademacher",
           "trf_check", "unit_centre"]


class UnitModule(nn.Module):
    """``model`` whose forward returns the probed map: ``output``/``layer``'s tensor, else the default unit map."""

    def __init__(self, model: nn.Module, output: str | int | None = None, layer: str | None = None) -> None:
        super().__init__()
        self.model, self.output, self.layer = model, output, layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        if self.output is None and self.layer is None and _probes_features(m):
            return m.features(x)
        y = probe_tensor(m, x, self.output, self.layer)
        if y.dim() < 3:
            raise ValueError(f"{type(m).__name__}'s output {tuple(y.shape)} has no spatial unit; "
                             "name a spatial module with layer= (--layer NAME) or a part with output= (--output KEY)")
        return y


def _probes_features(model: nn.Module) -> bool:
    """Zoo models with a vector or box head are probed on their trunk's last map (the seed's examples)."""
    head = str(getattr(getattr(model, "info", None), "head", "dense"))
    return hasattr(model, "features") and hasattr(model, "receptive_field") and not head.startswith("dense")


def centre_unit(unit: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """The centre unit's channel vector per sample, (B, K), and the unit map's spatial extent."""
    fmap = check_finite(unit(x), "forward")  # (B, K, h, w) or (B, K, n) tokens
    spatial = tuple(fmap.shape[2:])
    return fmap[(slice(None), slice(None), *(s // 2 for s in spatial))], spatial


def rademacher(n: int, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, k) random signs, drawn on the CPU so every device gets the same ones."""
    gen = generator or torch.Generator().manual_seed(0)
    return torch.randint(0, 2, (n, k), generator=gen).mul(2).sub(1)


def gradient_maps(model: nn.Module, inputs: torch.Tensor, batch_size: int = 32,
                  generator: torch.Generator | None = None) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Mean over inputs of sum_c |g| and of sum_c g^2, each (H, W) float64, and the unit map's (h, w).

    Runs ``model`` in eval mode (BatchNorm must not mix the samples of a batch), then restores its flags.
    g is the input gradient of ``sum_k s_k y_k``, the centre unit's K channels
    weighted by random signs s (one draw per input, from ``generator``). Then
    E[g^2] is exactly the squared Jacobian norm ``sum_k (dy_k/dx)^2``
    (Hutchinson), without the cross terms a plain channel sum keeps: those
    cancel exactly after a LayerNorm and follow the untrained softmax-invariant
    direction of a classifier's logits. With one channel, |g| is exact.
    A NaN or inf output or gradient raises ``CellError`` naming the stage.
    """
    unit = model if isinstance(model, UnitModule) else UnitModule(model)
    with preserved_mode(unit):
        return _gradient_maps(unit.eval(), inputs, batch_size, generator)


def _gradient_maps(model: nn.Module, inputs: torch.Tensor, batch_size: int,
                   generator: torch.Generator | None) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    dev = model_device(model)
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


def unit_centre(unit_hw: tuple[int, ...], input_hw: tuple[int, int], num: NumericRF) -> tuple[float, float]:
    """Input position (row, col) of the unit at (h // 2, w // 2).

    At input resolution it is (H // 2, W // 2). Otherwise it is the centre of the
    unit's numerical support when that lies inside the image (exact for padded
    strided convs), else the centre of the unit's cell, ``(i + 1/2) H / h - 1/2``.
    """
    if tuple(unit_hw) == tuple(input_hw):
        return default_centre(input_hw)
    if not num.clipped:
        (y0, y1), (x0, x1) = num.box
        return 0.5 * (y0 + y1), 0.5 * (x0 + x1)
    if len(unit_hw) != 2:  # a token sequence: no cell geometry to fall back on
        return default_centre(input_hw)
    return tuple((u // 2 + 0.5) * s / u - 0.5 for u, s in zip(unit_hw, input_hw))


@dataclasses.dataclass
class ERFResult:
    """ERF maps and metrics of one model; maps are (H, W) float64 at input resolution."""

    erf_abs: np.ndarray  # mean over inputs of sum_c |dy/dx|
    erf_sq: np.ndarray  # mean over inputs of sum_c (dy/dx)^2
    support: np.ndarray  # gradient of the linearised copy; > 0 exactly on the TRF
    centre: tuple[float, float]  # input position of the probed unit (row, col)
    metrics: dict  # see fcnprobe.analysis.erf.map_metrics, plus TRF entries and n_inputs


def trf_check(graph: ReceptiveField, num: NumericRF, input_hw: tuple[int, ...]) -> tuple[str, str | None]:
    """('agree' | 'disagree' | 'n/a', warning): the graph box clipped to the image against the numeric support."""
    full = tuple((0, n - 1) for n in input_hw)
    if graph.kind == "unknown":
        return "n/a", None
    want = full if graph.kind == "global" else tuple((max(lo, 0), min(hi, n - 1))
                                                     for (lo, hi), n in zip(graph.box, input_hw))
    if tuple(num.box) == want:
        return "agree", None
    return "disagree", (f"graph TRF ({graph.kind}, box {want}) and numeric support (box {tuple(num.box)}) "
                        "disagree")


def effective_receptive_field(model: nn.Module, inputs: torch.Tensor, batch_size: int = 32,
                              image_size: int | None = None, generator: torch.Generator | None = None,
                              output: str | int | None = None, layer: str | None = None) -> ERFResult:
    """ERF of the centre unit of ``model`` (or of ``output`` / ``layer``) over ``inputs`` (B, C, H, W).

    ``trf_px`` is the graph TRF side (None unless finite; ``trf_kind`` says
    finite | global | unknown and ``trf_reason`` why), ``trf_numeric_px`` the
    numeric support side (clipped to the image: ``trf_numeric_clipped``),
    ``trf_check`` their verdict and ``erf_trf_ratio = erf_std_px / trf_px``.
    The caller's train/eval flags are restored. ``image_size`` is unused
    (kept for old callers): the TRF is traced at the inputs' size.
    """
    unit = UnitModule(model, output, layer)
    with preserved_mode(model):
        m_abs, m_sq, hw = gradient_maps(unit, inputs, batch_size, generator)
        graph = graph_receptive_field(unit, tuple(inputs.shape[1:])).field
        num = numeric_receptive_field(unit, tuple(inputs.shape[1:]))
    hw_in = tuple(inputs.shape[-2:])
    centre = unit_centre(hw, hw_in, num)
    check, warning = trf_check(graph, num, hw_in)
    trf = graph.side_px
    metrics = map_metrics(m_abs, m_sq, centre)
    metrics.update(trf_px=trf, trf_kind=graph.kind, trf_reason=graph.reason, trf_numeric_px=num.side_px,
                   trf_numeric_clipped=num.clipped, trf_check=check, warnings=[warning] if warning else [],
                   n_inputs=len(inputs), erf_trf_ratio=None if trf is None else metrics["erf_std_px"] / trf,
                   unit_row_px=centre[0], unit_col_px=centre[1])
    return ERFResult(m_abs, m_sq, num.support, centre, metrics)
