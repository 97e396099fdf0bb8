"""Pooled-local ceilings: what a sum of local functions can reach on each task (torch-free).

A *pooled-local* model computes one local function ``f`` of every window of
side ``2R + 1`` (a translation-invariant FCN with TRF ``2R + 1``), averages it
over the image (a parameter-free global pool) and reads the pooled vector out
(linear, or any function). This is how an FCN+pool answers an image-level
question. Its *ceiling* on a task is its best accuracy over samples *beyond
reach*: no window holds a pixel of both objects. A task whose ceiling is 1 is a
control (one pooling op solves it), not evidence about long-range context.

**left_of (1/2).** Beyond reach every window sees at most one object, so the
pooled vector is ``B + T(red, p_red) + T(blue, p_blue)``, where ``T(c, p)`` sums
``f`` over the windows that touch the object of colour ``c`` at ``p`` and ``B``
over the windows that touch neither. On an infinite plane (no border) ``T(c, p)``
does not depend on ``p``: the windows around an object are the same set of
views wherever it is. The pooled vector is then the same function of the two
colours whatever their order, so it carries no information about the label and
*every* readout, linear or not, scores 1/2 (= chance). The sum is permutation
invariant in *where* things are; only *what* is there survives. With image
noise this holds in expectation (the noise is i.i.d., hence stationary).
``bag_ceiling(..., borders=False)`` checks it exactly on the noiseless skeleton
by enumerating every placement and grouping placements by the multiset of
window views, which is everything a pool of any local feature can keep.

Borders break the argument: with zero padding a window that sees an object and
an edge knows where the object is, and a linear readout of ``g(x_red) +
h(x_blue)`` with ``g = -x``, ``h = x`` decides the order exactly (CNNs do learn
absolute position from padding: Islam et al. 2020, Kayhan & van Gemert 2020).
``bag_ceiling(..., borders=True)`` measures that leak exactly on the skeleton
(windows centred on image pixels, padding visible, as in a 'same'-padded FCN);
``bordered_bag_ceiling`` computes it at real sizes. At 32 px it is 0.63 for
R = 1, 0.85 for R = 3 and 0.99 for R = 6 (fcn's default TRF of 13): for
zero-padded FCN+pool models left_of_image is *not* evidence, only for models
whose windows cannot see an edge.

**same_different (9/14 for K = 8).** The pooled vector is ``B + T(a) + T(b)``
for the two cue colours, so a *linear* readout thresholds ``u(a) + u(b)``;
``analysis.context.pooled_pair_ceiling`` derives the best such rule. A
non-linear readout of the pooled vector could decode both colours, so this
ceiling is for the FCN+pool design (pool, then a linear head), not for any MLP.
With borders the windows can tell the two cues apart by position, so the rule
becomes an asymmetric ``u(a) + v(b)``; ``asymmetric_pair_ceiling`` bounds that
by 3/4 for every K >= 2: still below 1 with padding.

**aligned (1/2; 3/4 with padding).** "Same row?" Without edges the pool sees
no position at all (as for left_of): 1/2. With zero padding the windows may
know both rows, but the rule is then a threshold of ``u(row_red) + v(row_blue)``
(for each pair of columns), and the other row is uniform over the rest, so
``asymmetric_pair_ceiling`` applies with K = rows: at most 3/4.

**global_cue (1, control).** Pool a local detector of the target colour.

Pixel level: a pixel beyond reach sees at most one object. For same_different
its view says nothing about the other colour (1/2, borders or not:
``PIXEL_SAME_DIFFERENT_CEILING``). For left_of it can still
learn a little: "I see red at my left edge and no blue in my window" hints that
blue lies elsewhere, mostly to the right of the window; ``view_ceiling``
measures that leak exactly on the skeleton: 0.509 at 10 px and 0.516 at
12 px (R = 1, 2) without edges, 0.54 and 0.58 with zero padding. So the
pixel-level left_of's 1/2 is approximate, and with padding it has no bound
below 1 (a pixel near an edge knows its column); it shows where designs fail.
"""
from __future__ import annotations

import numpy as np

from fcnprobe.analysis.context import pooled_pair_ceiling

CUE = 3  # object side in px (tasks.context.CUE_SIZE; this module stays torch-free)
LEFT_OF_POOLED_CEILING = 0.5  # derived above: the pool forgets the order of the two objects
ALIGNED_PADDED_CEILING = 0.75  # asymmetric_pair_ceiling over rows: zero padding reveals each row, not their equality
PIXEL_SAME_DIFFERENT_CEILING = 0.5  # one window sees one cue; the other colour is a fair coin given it


def same_different_ceiling(classes: int) -> float:
    """Best accuracy of a pooled-local model with a linear readout on same_different (K colours)."""
    return pooled_pair_ceiling(classes)


def asymmetric_pair_ceiling(classes: int) -> float:
    """Best balanced same/different accuracy of a threshold rule ``u(a) + v(b) > t`` (u, v free).

    If m colours are accepted on the diagonal, then for any two of them i, j the
    sums u(i)+v(j) and u(j)+v(i) add up to more than 2t, so at least one of the
    two off-diagonal pairs is accepted too: at least m(m-1)/2 of the K(K-1)
    different pairs. Hence acc <= max_m (m/K + 1 - m(m-1)/(2K(K-1))) / 2, which
    an anti-diagonal staircase attains; 3/4 for every K >= 2 (m = K).
    """
    k = classes
    return max(0.5 * (m / k + 1 - m * (m - 1) / (2 * k * (k - 1))) for m in range(1, k + 1))


def placements(size: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners (M, 2) of the left and right objects for every placement beyond reach.

    Beyond reach: Chebyshev centre distance > 2R + CUE - 1, so no window of side
    2R + 1 touches both; the right object's column is strictly larger.
    """
    top = np.arange(size - CUE + 1)
    yy, xx = np.meshgrid(top, top, indexing="ij")
    pos = np.stack([yy.ravel(), xx.ravel()], 1)  # (P, 2)
    a, b = np.repeat(pos, len(pos), 0), np.tile(pos, (len(pos), 1))
    keep = (b[:, 1] > a[:, 1]) & (np.abs(b - a).max(1) > 2 * radius + CUE - 1)
    return a[keep], b[keep]


def _object_code(obj: np.ndarray, colour: int, centres: np.ndarray, radius: int) -> np.ndarray:
    """(M, W) code of one object's colour and offset in each window centred at ``centres`` (M, W, 2)."""
    span = 2 * radius + CUE  # offsets -R-2..R
    off = obj[:, None, :] - centres + radius + CUE - 1  # (M, W, 2) in [0, span)
    return (colour * span + off[..., 0]) * span + off[..., 1]


def _border_code(centres: np.ndarray, size: int, radius: int) -> np.ndarray:
    """(M, W) code of how far each window sticks out past each edge: what zero padding reveals."""
    code = np.zeros(centres.shape[:-1], dtype=np.int64)
    for axis in (0, 1):
        lo = np.clip(radius - centres[..., axis], 0, None)
        hi = np.clip(centres[..., axis] + radius - (size - 1), 0, None)
        code = (code * (radius + 1) + lo) * (radius + 1) + hi
    return code


def _view_codes(obj: np.ndarray, colour: int, centres: np.ndarray, size: int, radius: int,
                borders: bool) -> np.ndarray:
    """(M, W) what each window sees of one object, plus the padding it sees if ``borders``."""
    code = _object_code(obj, colour, centres, radius)
    return code * (radius + 1) ** 4 + _border_code(centres, size, radius) if borders else code


def _bags(obj: np.ndarray, colour: int, size: int, radius: int, borders: bool) -> np.ndarray:
    """(M, W) views of every window that touches one object; -1 for windows centred off the image.

    Without ``borders`` the image is an infinite plane: every window exists.
    """
    rel = np.arange(-radius - CUE + 1, radius + 1)
    dy, dx = np.meshgrid(rel, rel, indexing="ij")
    centres = obj[:, None, :] - np.stack([dy.ravel(), dx.ravel()], 1)[None]  # (M, W, 2)
    code = _view_codes(obj, colour, centres, size, radius, borders)
    if borders:
        inside = ((centres >= 0) & (centres < size)).all(-1)
        code = np.where(inside, code, -1)
    return code


def _grouped_ceiling(keys: np.ndarray, labels: np.ndarray) -> float:
    """Best accuracy of any function of ``keys`` (rows): each group takes its majority label."""
    _, group = np.unique(keys, axis=0, return_inverse=True)
    counts = np.zeros((group.max() + 1, 2))
    np.add.at(counts, (group.ravel(), labels), 1)
    return float(counts.max(1).sum() / counts.sum())


def bag_ceiling(size: int, radius: int, borders: bool) -> float:
    """Exact ceiling of any readout of a pooled local feature on left_of's noiseless skeleton.

    Enumerates every placement beyond reach in both colourings (red left, label
    1; blue left, label 0) and groups them by the multiset of window views. The
    windows that touch no object add a bag fixed by the rest, so they are left out.
    """
    left, right = placements(size, radius)
    bags, labels = [], []
    for red_left, (red, blue) in ((1, (left, right)), (0, (right, left))):
        views = np.concatenate([_bags(red, 0, size, radius, borders), _bags(blue, 1, size, radius, borders)], 1)
        bags.append(np.sort(views, 1))  # a multiset: order-free
        labels.append(np.full(len(left), red_left))
    return _grouped_ceiling(np.concatenate(bags), np.concatenate(labels))


def view_ceiling(size: int, radius: int, borders: bool) -> float:
    """Exact ceiling of one pixel's window on pixel-level left_of, over pixels beyond reach.

    A pixel is beyond reach when its window misses at least one object; its view
    is then the one object it sees (or none) and, with ``borders``, the padding.
    """
    left, right = placements(size, 0)  # any distance: a pixel's reach is its own
    grid = np.stack(np.meshgrid(np.arange(size), np.arange(size), indexing="ij"), -1).reshape(1, -1, 2)
    keys, labels = [], []
    for red_left, (red, blue) in ((1, (left, right)), (0, (right, left))):
        centres = np.broadcast_to(grid, (len(left), size * size, 2))
        sees = [_touches(o, centres, radius) for o in (red, blue)]
        code = np.where(sees[0], _object_code(red, 0, centres, radius),
                        np.where(sees[1], _object_code(blue, 1, centres, radius), -1))
        if borders:
            code = (code + 1) * (radius + 1) ** 4 + _border_code(centres, size, radius)
        beyond = ~(sees[0] & sees[1])
        keys.append(code[beyond])
        labels.append(np.full(int(beyond.sum()), red_left))
    return _grouped_ceiling(np.concatenate(keys)[:, None], np.concatenate(labels))


def _touches(obj: np.ndarray, centres: np.ndarray, radius: int) -> np.ndarray:
    """(M, W) whether the window at each centre holds a pixel of the CUE-sided object at ``obj``."""
    rel = obj[:, None, :] - centres  # (M, W, 2) object corner relative to the window centre
    return ((rel <= radius) & (rel >= -radius - CUE + 1)).all(-1)


def _edge_class(obj: np.ndarray, size: int, radius: int) -> np.ndarray:
    """(M,) code of an object's distances to the four edges, clipped where no window sees them any more.

    Windows touching an object at top-left y have centres y - R .. y + R + 2; the
    nearest sees the top padding, or lies off the image, only while y < 2R.
    """
    k = 2 * radius  # distances >= 2R all give the same views
    far = size - CUE - obj  # distance from the object's far side to the far edge
    parts = [np.minimum(obj[:, 0], k), np.minimum(far[:, 0], k), np.minimum(obj[:, 1], k), np.minimum(far[:, 1], k)]
    code = np.zeros(len(obj), dtype=np.int64)
    for p in parts:
        code = code * (k + 1) + p
    return code


def bordered_bag_ceiling(size: int, radius: int) -> float:
    """``bag_ceiling(size, radius, borders=True)`` at realistic sizes.

    With borders a pooled view bag depends on each object only through its colour
    and its clipped distances to the edges (``_edge_class``), so placements are
    grouped by the pair of edge classes; the test checks this against the exact
    enumeration on small images.
    """
    left, right = placements(size, radius)
    cl, cr = _edge_class(left, size, radius), _edge_class(right, size, radius)
    # red left (label 1): (red, blue) = (left, right); blue left (label 0): (red, blue) = (right, left)
    keys = np.concatenate([np.stack([cl, cr], 1), np.stack([cr, cl], 1)])
    labels = np.concatenate([np.ones(len(cl), int), np.zeros(len(cl), int)])
    return _grouped_ceiling(keys, labels)
