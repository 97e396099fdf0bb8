"""Accuracy against distance for the global-context probe (torch-free; the report uses it too).

Conventions:

* Distances are Chebyshev distances in whole pixels; a bin is an inclusive
  range ``[lo, hi]``, so ``dist_bin_lo_px[i] <= d <= dist_bin_hi_px[i]``.
* A bin with no scored element has accuracy ``None`` (never NaN).
* The *failure distance* is the ``lo`` of the first bin, in order of distance,
  whose accuracy is below the midpoint between chance and 1; ``None`` when no
  bin fails. For a model whose theoretical receptive field (TRF) limits it, the
  failure distance should sit just past its *reach* (for a pixel-to-cue distance
  that is the TRF radius, ``(trf - 1) // 2``).

Example::

    >>> lo, hi = dense_bins(9, step=2, fine_until=6)
    >>> lo, hi
    ([0, 1, 3, 5, 7], [0, 2, 4, 6, 9])
    >>> failure_distance([1.0, 0.99, 0.97, 0.96, 0.5], lo, chance=0.5)
    7
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from fcnprobe.utils import failure_threshold


def dense_bins(max_dist: int, step: int = 2, fine_until: int = 12, growth: float = 1.5) -> tuple[list[int], list[int]]:
    """Bins [0, 0], then ``step``-wide bins up to ``fine_until``, then bins growing by ``growth``.

    A last coarse bin narrower than half its predecessor is merged into it.
    The fine bins end exactly at ``fine_until`` when it is a multiple of ``step``,
    so a TRF radius on that grid falls on a bin edge.
    """
    lo, hi = [0], [0]
    while hi[-1] < min(fine_until, max_dist):
        lo.append(hi[-1] + 1)
        hi.append(min(hi[-1] + step, max_dist))
    while hi[-1] < max_dist:
        width = max(step, int(round((hi[-1] + 1) * (growth - 1))))
        if max_dist - hi[-1] - width < width // 2 and hi[-1] >= fine_until:
            width = max_dist - hi[-1]  # fold a sliver of a last bin into this one
        lo.append(hi[-1] + 1)
        hi.append(min(hi[-1] + width, max_dist))
    return lo, hi


def uniform_bins(first: int, last: int, width: int) -> tuple[list[int], list[int]]:
    """Consecutive ``width``-wide inclusive bins covering [first, last]; the last may be narrower."""
    lo = list(range(first, last + 1, width))
    return lo, [min(v + width - 1, last) for v in lo]


def bin_accuracy(correct: np.ndarray, dist: np.ndarray, lo: Sequence[int], hi: Sequence[int],
                 valid: np.ndarray | None = None) -> tuple[list[float | None], list[int]]:
    """Mean of ``correct`` per distance bin, and the number of scored elements per bin.

    ``correct``, ``dist`` and ``valid`` (mask of scored elements) share a shape;
    elements outside every bin are ignored.
    """
    c, d = np.asarray(correct).ravel(), np.asarray(dist).ravel()
    if valid is not None:
        keep = np.asarray(valid).ravel().astype(bool)
        c, d = c[keep], d[keep]
    acc, counts = [], []
    for a, b in zip(lo, hi):
        sel = (d >= a) & (d <= b)
        n = int(sel.sum())
        counts.append(n)
        acc.append(float(c[sel].mean()) if n else None)
    return acc, counts


def failure_distance(acc: Sequence[float | None], lo: Sequence[int], chance: float) -> int | None:
    """``lo`` of the first bin whose accuracy is below the midpoint of chance and 1 (empty bins skipped)."""
    thr = failure_threshold(chance)
    for a, start in zip(acc, lo):
        if a is not None and a < thr:
            return int(start)
    return None


def pooled_pair_ceiling(classes: int) -> float:
    """Best balanced same/different accuracy of a thresholded symmetric sum ``u(a) + u(b)``.

    That is all a translation-invariant FCN with a pooled linear head can compute
    when no unit sees both cues: each cue adds its own local term. The accepted
    set ``{u(a) + u(b) > t}`` holds the m colours with ``u > t/2`` on the diagonal
    and, at best, only their m(m-1) mutual pairs off it, so

        acc(m) = (m / K + 1 - m (m - 1) / (K (K - 1))) / 2,  maximised over m.

    K = 2 gives 3/4 (m = 1); K = 8 gives 9/14 = 0.643 (m = 4). The often-quoted
    1/2 + 1/(2K) is the m = 1 case and undershoots for K > 2. Border effects
    (zero padding) break translation invariance, so a real FCN can exceed this.
    """
    k = classes

    def acc(m: int) -> float:
        return 0.5 * (m / k + 1 - m * (m - 1) / (k * (k - 1)))

    return max(acc(m) for m in range(1, k + 1))


def split_at_reach(correct: np.ndarray, dist: np.ndarray, reach: int | None,
                   valid: np.ndarray | None = None) -> tuple[float | None, float | None]:
    """Accuracy over elements with distance <= reach and over those beyond it.

    With ``reach=None`` (a global model) everything is "within". ``None`` where a
    side has no element.
    """
    c, d = np.asarray(correct).ravel(), np.asarray(dist).ravel()
    if valid is not None:
        keep = np.asarray(valid).ravel().astype(bool)
        c, d = c[keep], d[keep]
    near = np.ones_like(d, dtype=bool) if reach is None else d <= reach
    inside = float(c[near].mean()) if near.any() else None
    beyond = float(c[~near].mean()) if (~near).any() else None
    return inside, beyond


def unit_bin_accuracy(correct: np.ndarray, dist: np.ndarray, lo: Sequence[int], hi: Sequence[int],
                      valid: np.ndarray | None = None, paired: bool = False) -> np.ndarray:
    """(units, bins) mean of ``correct`` per independent unit and distance bin; NaN where a unit has none.

    A unit is one sample (its pixels pooled), or with ``paired`` one held-out pair:
    samples i and i + n/2 (``PairedTask.heldout``'s layout). Pixels of one image
    are not independent, so intervals resample units, never pixels.
    """
    n = len(correct)
    c = np.asarray(correct, dtype=float).reshape(n, -1)
    d = np.asarray(dist).reshape(n, -1)
    v = np.ones_like(c, dtype=bool) if valid is None else np.asarray(valid, dtype=bool).reshape(n, -1)
    if paired:
        half = n // 2
        c, d, v = (np.concatenate([a[:half], a[half:2 * half]], 1) for a in (c, d, v))
    out = np.full((len(c), len(lo)), np.nan)
    for j, (a, b) in enumerate(zip(lo, hi)):
        sel = v & (d >= a) & (d <= b)
        k = sel.sum(1)
        out[k > 0, j] = (c * sel).sum(1)[k > 0] / k[k > 0]
    return out
