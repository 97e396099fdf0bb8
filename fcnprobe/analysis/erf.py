"""Metrics on an effective-receptive-field (ERF) map, in numpy only (the report imports this).

A map is a non-negative (H, W) array of input-gradient magnitudes for one output
unit whose input position is ``centre`` (row, col; may be fractional).

* ``axis_std``: per-axis std, the square root of the second moment of the
  normalised map about the centre (not about its own mean, so an ERF that looks
  off to one side counts as wide).
* ``hca_side``: RepLKNet's "high-contribution area ratio" (Ding et al., CVPR 2022,
  Table 10 and ``erf/analyze_erf.py``): the smallest centred square of odd side
  ``2i + 1`` whose sum exceeds a fraction t of the total. ``replknet_transform``
  is their ``log10(g + 1) / max`` (we use ``log1p``, the same function without
  float rounding of ``g + 1``); it depends on the gradient's absolute scale, so
  ``map_metrics`` also reports the scale-free variant on the raw map.
* ``fit_gaussian``: an axis-aligned Gaussian about the centre, least squares on
  the normalised map (a log grid over the two sigmas, then a local refinement;
  scipy is not a dependency). Its residual says how Gaussian the ERF is.
* ``trinomial_map``: the closed form. The gradient of n stacked all-ones 3x3
  convs (dilation d) is the n-fold convolution of a 3-tap box: per-axis variance
  ``2 n d^2 / 3``; with i.i.d. zero-mean weights, E[g^2] has the same shape
  (Luo et al., "Understanding the Effective Receptive Field", NeurIPS 2016).
* ``depth_slope``: the log-log slope of ERF std against depth (Luo et al.: 0.5).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from fcnprobe.analysis.common import loglog_slope

HCA_THRESHOLDS = (0.2, 0.3, 0.5, 0.99)  # RepLKNet's Table 10 thresholds
MAX_STORED_SIDE = 64  # maps kept for the report's heatmaps are block-averaged down to this

Centre = tuple[float, float]  # (row, col) in pixels


def default_centre(shape: tuple[int, int]) -> Centre:
    """The centre unit of an (H, W) map at input resolution: (H // 2, W // 2), as RepLKNet."""
    return float(shape[0] // 2), float(shape[1] // 2)


def _prob(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if m.ndim != 2 or (m < 0).any():
        raise ValueError("an ERF map is a non-negative 2-D array")
    total = m.sum()
    if not total > 0:
        raise ValueError("the ERF map is all zeros: the unit does not depend on the input")
    return m / total


def axis_std(m: np.ndarray, centre: Centre | None = None) -> tuple[float, float]:
    """(std_y, std_x) in px: root second moment of the normalised map about ``centre``."""
    p = _prob(m)
    cy, cx = centre if centre is not None else default_centre(p.shape)
    ys, xs = np.arange(p.shape[0]) - cy, np.arange(p.shape[1]) - cx
    var_y = float(p.sum(1) @ ys**2)  # marginal over rows
    var_x = float(p.sum(0) @ xs**2)
    return var_y**0.5, var_x**0.5


def hca_side(m: np.ndarray, t: float, centre: Centre | None = None, start: int = 0) -> int | None:
    """Smallest odd side 2i+1 (i >= start) of a centred square holding more than t of the sum.

    Only squares that fit inside the map are tried, as in RepLKNet's script
    (which starts at i = 1); None when none of them holds enough.
    """
    p = _prob(m)
    cy, cx = (int(np.floor(c + 0.5)) for c in (centre if centre is not None else default_centre(p.shape)))
    h, w = p.shape
    csum = np.pad(p.cumsum(0).cumsum(1), ((1, 0), (1, 0)))  # summed-area table
    for i in range(start, min(cy, cx, h - 1 - cy, w - 1 - cx) + 1):
        y0, y1, x0, x1 = cy - i, cy + i + 1, cx - i, cx + i + 1
        if csum[y1, x1] - csum[y0, x1] - csum[y1, x0] + csum[y0, x0] > t:
            return 2 * i + 1
    return None


def replknet_transform(m: np.ndarray) -> np.ndarray:
    """RepLKNet's ``log10(g + 1)`` rescaled to max 1 (computed with log1p)."""
    g = np.log1p(np.asarray(m, dtype=np.float64)) / np.log(10.0)
    top = g.max()
    return g / top if top > 0 else g


def hca_metrics(m_abs: np.ndarray, centre: Centre | None = None) -> dict[str, float | int | None]:
    """Side and area fraction at each threshold, raw (scale-free) and RepLKNet-log variants."""
    h, w = m_abs.shape
    out: dict[str, float | int | None] = {}
    for prefix, m, start in (("hca", m_abs, 0), ("hca_log", replknet_transform(m_abs), 1)):
        for t in HCA_THRESHOLDS:
            side = hca_side(m, t, centre, start=start)
            tag = f"t{round(t * 100)}"
            out[f"{prefix}_side_px_{tag}"] = side
            out[f"{prefix}_area_frac_{tag}"] = None if side is None else side * side / (h * w)
    return out


@dataclasses.dataclass(frozen=True)
class GaussFit:
    """An axis-aligned Gaussian about a fixed centre fitted to a normalised map."""

    sigma_y: float  # px
    sigma_x: float  # px
    amplitude: float  # peak, in units of the normalised map
    resid_frac: float  # ||map - fit||_2 / ||map||_2

    @property
    def sigma(self) -> float:
        return 0.5 * (self.sigma_y + self.sigma_x)


def _gauss_resid(p: np.ndarray, dy2: np.ndarray, dx2: np.ndarray, sy: float, sx: float) -> tuple[float, float]:
    """Least-squares amplitude and squared residual for given sigmas."""
    f = np.exp(-dy2 / (2 * sy * sy))[:, None] * np.exp(-dx2 / (2 * sx * sx))[None, :]  # (H, W)
    ff = float((f * f).sum())
    a = float((p * f).sum()) / ff if ff > 0 else 0.0
    return a, float(((p - a * f) ** 2).sum())


def fit_gaussian(m: np.ndarray, centre: Centre | None = None, refine: int = 40) -> GaussFit:
    """Fit ``a * exp(-dy^2 / 2sy^2 - dx^2 / 2sx^2)`` about ``centre`` by least squares."""
    p = _prob(m)
    cy, cx = centre if centre is not None else default_centre(p.shape)
    dy2, dx2 = (np.arange(p.shape[0]) - cy) ** 2, (np.arange(p.shape[1]) - cx) ** 2
    grid = np.geomspace(0.2, 4.0 * max(p.shape), 48)
    cost = np.array([[_gauss_resid(p, dy2, dx2, sy, sx)[1] for sx in grid] for sy in grid])
    iy, ix = np.unravel_index(np.argmin(cost), cost.shape)
    sy, sx, step, best = grid[iy], grid[ix], grid[1] / grid[0], cost[iy, ix]
    for _ in range(refine):  # pattern search in log-sigma; the step shrinks geometrically
        step = step**0.7
        for cand in ((sy * step, sx), (sy / step, sx), (sy, sx * step), (sy, sx / step)):
            c = _gauss_resid(p, dy2, dx2, *cand)[1]
            if c < best:
                (sy, sx), best = cand, c
    a, r2 = _gauss_resid(p, dy2, dx2, sy, sx)
    return GaussFit(float(sy), float(sx), a, float(np.sqrt(r2 / (p * p).sum())))


def trinomial_1d(n: int, dilation: int = 1) -> np.ndarray:
    """n-fold convolution of [1, 1, 1] dilated by d: length 2nd + 1, zeros off the d-grid."""
    k = np.zeros(2 * dilation + 1)
    k[::dilation] = 1.0
    out = np.ones(1)
    for _ in range(n):
        out = np.convolve(out, k)
    return out


def trinomial_map(n: int, dilation: int = 1) -> np.ndarray:
    """The 2-D closed form: outer product of two ``trinomial_1d`` (the all-ones 3x3 kernel is separable)."""
    t = trinomial_1d(n, dilation)
    return np.outer(t, t)


def trinomial_variance(n: int, dilation: int = 1, strides: Sequence[int] | None = None) -> float:
    """Per-axis variance of n stacked 3-tap boxes: sum over layers of (2/3) (d J)^2, J the jump."""
    jumps = np.cumprod([1, *(strides or [1] * n)])[:n]
    return float(sum(2.0 / 3.0 * (dilation * j) ** 2 for j in jumps))


def support_box(m: np.ndarray, tol: float = 0.0) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) inclusive bounds of the entries above ``tol``; None if there are none."""
    rows, cols = np.nonzero(np.asarray(m) > tol)
    if rows.size == 0:
        return None
    return int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())


def downsample(m: np.ndarray, max_side: int = MAX_STORED_SIDE) -> np.ndarray:
    """Block-average by the smallest integer factor that brings both sides to <= max_side."""
    m = np.asarray(m, dtype=np.float64)
    f = int(np.ceil(max(m.shape) / max_side))
    if f <= 1:
        return m
    h, w = (-(-s // f) * f for s in m.shape)  # pad up to a multiple of f
    padded = np.pad(m, ((0, h - m.shape[0]), (0, w - m.shape[1])))
    return padded.reshape(h // f, f, w // f, f).mean((1, 3))


def depth_slope(depths: Sequence[float], stds: Sequence[float | None]) -> float | None:
    """Least-squares slope of log(ERF std) against log(depth); replicates are separate points.

    Luo et al. predict 0.5 for random-weight stacks; None with fewer than two depths.
    """
    return loglog_slope(list(depths), list(stds))


def map_metrics(m_abs: np.ndarray, m_sq: np.ndarray, centre: Centre | None = None) -> dict:
    """Every per-map metric the probe records (std and Gaussian on E[g^2], HCA on E|g|)."""
    sy, sx = axis_std(m_sq, centre)
    ay, ax = axis_std(m_abs, centre)
    fit = fit_gaussian(m_sq, centre)
    return {"erf_std_px": 0.5 * (sy + sx), "erf_std_y_px": sy, "erf_std_x_px": sx,
            "erf_abs_std_px": 0.5 * (ay + ax), "gauss_sigma_px": fit.sigma,
            "gauss_resid_frac": fit.resid_frac, **hca_metrics(m_abs, centre)}
