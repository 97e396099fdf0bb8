"""Per-op rules of the graph receptive field: how an aten op moves spatial axes and index intervals.

A traced value carries a *layout*: for each tensor dim, the factors it is made
of, ``(axis, extent)``, where ``axis`` is an image axis (0 = H, 1 = W) or None
for a non-spatial factor (batch, channel). ``(B, C, H, W)`` flattened to
tokens ``(B, H*W, C)`` keeps both axes in its token dim, so a later reshape
back to a map is followed and a matmul over tokens is seen as one.

Each rule returns, per output tensor, its layout and a *back* function that
maps the index interval ``[lo, hi]`` a unit needs on each axis of the output to
the intervals it needs on each dependent input (Araujo et al., "Computing
receptive fields of CNNs", Distill 2019, run backwards from one unit so that
branches merge exactly). A rule raises ``Global`` for an op that mixes all
positions of an axis (reductions over space, matmul or softmax over tokens,
attention, adaptive pooling) and ``Unknown`` for an op it cannot place.
Normalisation statistics are ignored (a norm is per position), as the
linearised numeric check does.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

Factor = tuple  # (axis | None, extent)
Layout = tuple  # per dim: tuple[Factor, ...]
Box = dict  # axis -> (lo, hi), unclipped indices
Back = Callable[[Box], list]  # output box -> [input box per dependent input]


class Global(Exception):
    """The op mixes every position of a spatial axis."""


class Unknown(Exception):
    """The op cannot be placed; the message names it."""


class Opaque(Exception):
    """The op's output cannot be traced back to a unit, but its layout is known (``layout``).

    Used for extra tokens concatenated to the spatial ones (a ViT's CLS token):
    the merged token dim gets the pseudo-axis ``TOKENS``, so a later op that
    mixes tokens still makes the value global, and anything else keeps it unknown.
    """

    def __init__(self, message: str, layout: tuple) -> None:
        super().__init__(message)
        self.layout = layout


TOKENS = -1  # pseudo-axis of a token dim that holds the spatial positions and more


def axes(layout: Layout) -> dict:
    """axis -> extent over all dims."""
    return {a: e for dim in layout for a, e in dim if a is not None}


def dim_axes(layout: Layout, d: int) -> list:
    return [a for a, _ in layout[d] if a is not None]


def plain(size: int) -> tuple:
    """A non-spatial dim of ``size``."""
    return ((None, size),) if size != 1 else ()


def restrict(box: Box, layout: Layout) -> Box:
    return {a: box[a] for a in axes(layout) if a in box}


def reshape(layout: Layout, shape: Sequence[int]) -> Layout:
    """Layout after view/reshape to ``shape``; Unknown when a spatial factor would be split."""
    queue = [f for dim in layout for f in dim if f[1] != 1]
    out = []
    for size in shape:
        dim, prod = [], 1
        while prod < size:
            if not queue:
                raise Unknown("view: shapes do not factor")
            a, e = queue.pop(0)
            if size % (prod * e) == 0:
                dim.append((a, e))
                prod *= e
            elif a is None and size % prod == 0 and e % (size // prod) == 0:
                dim.append((None, size // prod))
                queue.insert(0, (None, e * prod // size))
                prod = size
            else:
                raise Unknown("view splits a spatial axis (windows, pixel shuffle)")
        out.append(tuple(dim))
    if queue:
        raise Unknown("view: shapes do not factor")
    return tuple(out)


def _ident(n: int) -> Back:
    return lambda box: [box] * n


# ---- pointwise with broadcasting -------------------------------------------------------
def pointwise(ins: list, shape: Sequence[int]) -> tuple[Layout, Back]:
    """Elementwise op (any broadcast): each output dim takes the spatial factors of an aligned input."""
    dims = []
    for d, size in enumerate(shape):
        found = plain(size)
        for v in ins:
            k = d - (len(shape) - len(v.shape))
            if k >= 0 and v.shape[k] == size and dim_axes(v.layout, k):
                if dim_axes((found,), 0) and found != v.layout[k]:
                    raise Unknown("broadcast of two different spatial layouts")
                found = v.layout[k]
        dims.append(found)
    out_axes = axes(tuple(dims))
    if any(out_axes.get(a) != e for v in ins for a, e in axes(v.layout).items()):
        raise Unknown("broadcast across a spatial axis")
    return tuple(dims), lambda box: [restrict(box, v.layout) for v in ins]


def reduce(v: Any, dims: Sequence[int], keepdim: bool, what: str) -> tuple[Layout, Back]:
    """Reduction over ``dims``: global if a reduced dim holds a spatial axis."""
    dims = sorted({d % len(v.shape) for d in dims} if dims else range(len(v.shape)))
    hit = [a for d in dims for a in dim_axes(v.layout, d)]
    if hit:
        raise Global(f"{what} over a spatial axis")
    layout = tuple(() if d in dims else dim for d, dim in enumerate(v.layout) if keepdim or d not in dims)
    return layout, _ident(1)


# ---- sliding windows: conv, pools, transposed conv ----------------------------------
def _window(lo: int, hi: int, k: int, s: int, p: int, d: int) -> tuple[int, int]:
    return lo * s - p, hi * s - p + (k - 1) * d


def _transposed(lo: int, hi: int, k: int, s: int, p: int, d: int) -> tuple[int, int]:
    return -((-(lo + p - (k - 1) * d)) // s), (hi + p) // s  # ceil, floor


def sliding(v: Any, out_shape: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
            padding: Sequence[int], dilation: Sequence[int], transposed: bool = False) -> tuple[Layout, Back]:
    """Windowed op over the last ``len(kernel)`` dims (conv, pooling, transposed conv)."""
    n = len(kernel)
    first = len(out_shape) - n
    if any(dim_axes(v.layout, d) for d in range(first)):
        raise Unknown("window op with a spatial axis in a batch or channel dim")
    per_axis, dims = {}, [plain(s) for s in out_shape[:first]]
    for i in range(n):
        ax = dim_axes(v.layout, first + i)
        if len(v.layout[first + i]) > 1:
            raise Unknown("window op over a merged dim")
        if ax:
            per_axis[ax[0]] = (kernel[i], stride[i], padding[i], dilation[i])
        dims.append(((ax[0], out_shape[first + i]),) if ax else plain(out_shape[first + i]))
    step = _transposed if transposed else _window

    def back(box: Box) -> list:
        return [{a: step(*box[a], *per_axis[a]) if a in per_axis else box[a] for a in box}]

    return tuple(dims), back


def expand(n: int, value: Any) -> list:
    """An int or a list argument as n ints (a one-element list is repeated, as torch does)."""
    vals = list(value) if isinstance(value, (list, tuple)) else [value]
    return vals * n if len(vals) == 1 else vals


# ---- resampling -----------------------------------------------------------------------
def _src(mode: str, align: bool, n_in: int, n_out: int, scale: float | None) -> Callable[[int], tuple]:
    """Map an output index to the (first, last) input index it reads."""
    ratio = (n_in - 1) / (n_out - 1) if align and n_out > 1 else (1 / scale if scale else n_in / n_out)

    def taps(o: int) -> tuple[int, int]:
        if mode == "nearest":
            i = min(math.floor(o * ratio), n_in - 1)
            return i, i
        if mode == "nearest_exact":
            i = min(math.floor((o + 0.5) * ratio), n_in - 1)
            return i, i
        src = o * ratio if align else max((o + 0.5) * ratio - 0.5, 0.0)
        i0 = min(math.floor(src), n_in - 1)
        width = 1 if mode in ("linear", "bilinear", "trilinear") else 2  # bicubic reads i0-1 .. i0+2
        lo = i0 if width == 1 else i0 - 1
        hi = i0 + (width if src > math.floor(src) or width == 2 else 0)
        return max(lo, 0), min(hi, n_in - 1)

    return taps


def resample(v: Any, out_shape: Sequence[int], mode: str, align: bool,
             scales: Sequence[float | None]) -> tuple[Layout, Back]:
    """Nearest / (bi,tri)linear / bicubic upsampling or downsampling over the last dims."""
    n = len(scales)
    first = len(out_shape) - n
    maps, dims = {}, [v.layout[d] for d in range(first)]
    for i in range(n):
        ax = dim_axes(v.layout, first + i)
        if len(v.layout[first + i]) > 1 or any(dim_axes(v.layout, d) for d in range(first)):
            raise Unknown("resampling over a merged dim")
        if ax:
            maps[ax[0]] = _src(mode, align, v.shape[first + i], out_shape[first + i], scales[i])
        dims.append(((ax[0], out_shape[first + i]),) if ax else plain(out_shape[first + i]))

    def back(box: Box) -> list:
        return [{a: (maps[a](lo)[0], maps[a](hi)[1]) if a in maps else (lo, hi) for a, (lo, hi) in box.items()}]

    return tuple(dims), back


def adaptive(v: Any, out_shape: Sequence[int], n: int) -> tuple[Layout, Back]:
    """Adaptive pooling: the identity where sizes match, else global (its window grows with the image)."""
    for i in range(1, n + 1):
        if dim_axes(v.layout, -i) and v.shape[-i] != out_shape[-i]:
            raise Global("adaptive pooling: its window grows with the image")
    return v.layout, _ident(1)


def shift(v: Any, d: int, start: int, step: int, out_size: int) -> tuple[Layout, Back]:
    """Slice (start, step) or pad (start = -before) along dim ``d``."""
    ax = dim_axes(v.layout, d)
    layout = list(v.layout)
    if not ax:
        layout[d] = plain(out_size)
        return tuple(layout), _ident(1)
    if len(v.layout[d]) > 1:
        raise Unknown("slice or pad of a merged spatial dim")
    layout[d] = ((ax[0], out_size),)
    a = ax[0]
    return tuple(layout), lambda box: [{**box, a: (start + box[a][0] * step, start + box[a][1] * step)}]
