"""The aten op table of the graph receptive field: op name -> rule (see ``trf_ops`` for the layout model).

A rule gets a ``Call`` (the op's args, its tensor outputs and a lookup from a
tensor to its traced value) and returns, per output, ``(layout, back, srcs)``:
the output's layout, the function from a needed output box to the boxes needed
on ``srcs``, and ``srcs`` (the dependent inputs it reads). Ops missing from the
table give "unknown" with their name; ``CONSTANT`` ops make an input-free value.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable

import torch
from torch.utils._pytree import tree_flatten

from fcnprobe.measure import trf_ops as ops
from fcnprobe.measure.trf_ops import TOKENS, Global, Opaque, Unknown, dim_axes, plain

CONSTANT = {"zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like", "new_zeros",
            "new_ones", "new_empty", "new_full", "zero", "fill", "_local_scalar_dense", "is_nonzero", "equal",
            "sym_size", "sym_stride", "_assert_tensor_metadata"}
POINTWISE = {
    *"add sub rsub mul div neg abs exp log log1p sqrt rsqrt pow relu hardtanh hardswish hardsigmoid gelu silu "
     "sigmoid tanh leaky_relu elu celu selu mish softplus erf clamp clamp_min clamp_max minimum maximum where "
     "masked_fill lerp addcmul addcdiv sign reciprocal square floor ceil round trunc remainder fmod eq ne lt "
     "le gt ge logical_and logical_or logical_not bitwise_and bitwise_or bitwise_not alias detach clone "
     "contiguous _to_copy to lift_fresh_copy native_dropout dropout threshold nan_to_num sin cos glu "
     "native_batch_norm _native_batch_norm_legit _native_batch_norm_legit_no_training _batch_norm_with_update "
     "_batch_norm_no_update native_layer_norm native_group_norm _prelu_kernel log_sigmoid_forward "
     "_fused_rms_norm hardshrink softshrink type_as masked_fill_ copy".split()}
VIEWS = {"view", "_unsafe_view", "reshape", "_reshape_alias", "unsqueeze", "squeeze", "flatten", "unflatten"}
REDUCTIONS = {"mean", "sum", "amax", "amin", "max", "min", "var", "std", "var_mean", "std_mean", "logsumexp",
              "any", "all", "argmax", "argmin", "linalg_vector_norm", "norm", "prod"}
TOKEN_MIX = {"_softmax", "_safe_softmax", "_log_softmax", "softmax", "log_softmax", "cumsum", "cumprod"}
ATTENTION = {"_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
             "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
             "scaled_dot_product_attention", "_scaled_dot_product_attention_math"}
FUSED_ATTENTION = {"_native_multi_head_attention", "_transformer_encoder_layer_fwd"}


@dataclasses.dataclass
class Call:
    """One dispatched op: its name (in-place suffix stripped), arguments, tensor outputs and value lookup."""

    name: str
    args: tuple
    kwargs: dict
    outs: list
    val: Callable[[Any], Any]  # tensor -> traced value or None

    def arg(self, i: int, key: str, default: Any = None) -> Any:
        return self.args[i] if len(self.args) > i else self.kwargs.get(key, default)

    def deps(self) -> list:
        flat, _ = tree_flatten((self.args, self.kwargs))
        return [v for v in (self.val(t) for t in flat if torch.is_tensor(t)) if v is not None]

    def only(self, i: int = 0) -> Any:
        """The value of arg ``i``, which must be the op's only input-dependent argument."""
        v, deps = self.val(self.args[i]), self.deps()
        if v is None or any(d is not v for d in deps):
            raise Unknown("an input-dependent weight or second operand")
        return v


def _pointwise(c: Call) -> list:
    deps = list({id(v): v for v in c.deps()}.values())
    main = tuple(c.outs[0].shape)
    stats = (tuple(plain(s) for s in main), lambda box: [], [])  # a norm's mean / rstd: no unit is probed there
    return [(*ops.pointwise(deps, main), deps) if i == 0 or tuple(o.shape) == main else stats
            for i, o in enumerate(c.outs)]


def _view(c: Call) -> list:
    v = c.only()
    return [(ops.reshape(v.layout, tuple(o.shape)), ops._ident(1), [v]) for o in c.outs]


def _permute(c: Call) -> list:
    v = c.only()
    n = len(v.shape)
    if c.name == "permute":
        order = [d % n for d in c.arg(1, "dims")]
    else:
        d0, d1 = (0, 1) if c.name == "t" else (c.arg(1, "dim0") % n, c.arg(2, "dim1") % n)
        order = list(range(n))
        order[d0], order[d1] = d1, d0
    return [(tuple(v.layout[d] for d in order), ops._ident(1), [v])]


def _expand(c: Call) -> list:
    v, out = c.only(), tuple(c.outs[0].shape)
    off = len(out) - len(v.shape)
    dims = [plain(s) for s in out[:off]]
    dims += [v.layout[i] if v.shape[i] == out[off + i] else plain(out[off + i]) for i in range(len(v.shape))]
    if any(v.shape[i] != out[off + i] and dim_axes(v.layout, i) for i in range(len(v.shape))):
        raise Unknown("expand of a spatial axis")
    return [(tuple(dims), ops._ident(1), [v])]


def _select(c: Call) -> list:
    v = c.only()
    d = c.arg(1, "dim") % len(v.shape)
    idx = c.arg(2, "index") % v.shape[d]
    layout = v.layout[:d] + v.layout[d + 1:]
    ax = dim_axes(v.layout, d)
    if len(v.layout[d]) > 1 and ax:
        raise Unknown("select in a merged spatial dim")
    if not ax:
        return [(layout, ops._ident(1), [v])]
    return [(layout, lambda box, a=ax[0]: [{**box, a: (idx, idx)}], [v])]


def _slice(c: Call) -> list:
    v = c.only()
    d = c.arg(1, "dim", 0) % len(v.shape)
    start = c.arg(2, "start") or 0
    start = max(start + v.shape[d], 0) if start < 0 else min(start, v.shape[d])
    return [(*ops.shift(v, d, start, c.arg(4, "step", 1), c.outs[0].shape[d]), [v])]


def _pad(c: Call) -> list:
    v, out = c.only(), tuple(c.outs[0].shape)
    pad = list(c.arg(1, "pad" if c.name == "constant_pad_nd" else "padding"))
    layout, before = list(v.layout), {}
    for i in range(len(pad) // 2):
        d = len(v.shape) - 1 - i
        ax = dim_axes(v.layout, d)
        if ax and len(v.layout[d]) > 1:
            raise Unknown("padding of a merged spatial dim")
        layout[d] = ((ax[0], out[d]),) if ax else plain(out[d])
        if ax:
            before[ax[0]] = pad[2 * i]

    def back(box: dict) -> list:
        return [{a: (lo - before.get(a, 0), hi - before.get(a, 0)) for a, (lo, hi) in box.items()}]

    return [(tuple(layout), back, [v])]


def _split(c: Call) -> list:
    v = c.only()
    d = c.arg(2 if c.name != "unbind" else 1, "dim", 0) % len(v.shape)
    if dim_axes(v.layout, d):
        raise Unknown("split along a spatial axis")
    res = []
    for o in c.outs:
        lay = list(v.layout)
        lay[d:d + 1] = [plain(o.shape[d])] if c.name != "unbind" else []
        res.append((tuple(lay), ops._ident(1), [v]))
    return res


def _cat(c: Call) -> list:
    ts = [t for t in c.arg(0, "tensors")]
    deps = [c.val(t) for t in ts if c.val(t) is not None]
    d = c.arg(1, "dim", 0) % len(c.outs[0].shape)
    if c.name == "stack":
        layout = deps[0].layout[:d] + ((),) + deps[0].layout[d:]
    else:
        layout = deps[0].layout[:d] + (plain(c.outs[0].shape[d]),) + deps[0].layout[d + 1:]
        if any(dim_axes(v.layout, d) for v in deps):
            tokens = ((TOKENS, c.outs[0].shape[d]),)
            raise Opaque("cat along a spatial axis (extra tokens)", layout[:d] + (tokens,) + layout[d + 1:])
    if any(ops.axes(v.layout) != ops.axes(deps[0].layout) for v in deps):
        raise Unknown("cat of maps at different resolutions")
    return [(layout, lambda box: [box] * len(deps), deps)]


def _conv(c: Call) -> list:
    v, w = c.only(), c.args[1]
    n = w.dim() - 2
    k = list(w.shape[2:])
    st, pd, dl = (ops.expand(n, c.arg(i, key)) for i, key in ((3, "stride"), (4, "padding"), (5, "dilation")))
    return [(*ops.sliding(v, tuple(c.outs[0].shape), k, st, pd, dl, bool(c.arg(6, "transposed"))), [v])]


def _pool(c: Call) -> list:
    v = c.only()
    k = list(c.arg(1, "kernel_size"))
    n = len(k) if len(k) > 1 else int(c.name[-2]) if c.name[-2].isdigit() else 2
    k = ops.expand(n, k)
    stride = c.arg(2, "stride") or k
    dil = c.arg(4, "dilation", 1) if "max" in c.name else 1
    layout, back = ops.sliding(v, tuple(c.outs[0].shape), k, ops.expand(n, stride),
                               ops.expand(n, c.arg(3, "padding", 0)), ops.expand(n, dil))
    return [(layout, back, [v]) for _ in c.outs]


def _adaptive(c: Call) -> list:
    v = c.only()
    n = len(c.arg(1, "output_size"))
    return [(*ops.adaptive(v, tuple(c.outs[0].shape), n), [v]) for _ in c.outs]


def _upsample(c: Call) -> list:
    v = c.only()
    n = int(re.search(r"(\d)d", c.name).group(1))
    mode = next(m for m in ("nearest_exact", "nearest", "bicubic", "trilinear", "bilinear", "linear") if m in c.name)
    if c.name.endswith("_aa"):
        raise Unknown("antialiased resampling")
    has_align = mode not in ("nearest", "nearest_exact")
    rest = list(c.args[2 + has_align:])
    scales = rest[0] if rest and isinstance(rest[0], (list, tuple)) else rest
    scales = list(scales or []) + [None] * n
    align = bool(c.arg(2, "align_corners")) if has_align else False
    return [(*ops.resample(v, tuple(c.outs[0].shape), mode, align, scales[:n]), [v])]


def _reduce(c: Call) -> list:
    v = c.only()
    dims = c.arg(1, "dim")
    dims = [dims] if isinstance(dims, int) else list(dims or [])
    keep = bool(c.arg(2, "keepdim")) if c.name not in ("var", "std", "var_mean", "std_mean") \
        else bool(c.kwargs.get("keepdim", False))
    layout, back = ops.reduce(v, dims, keep, c.name)
    return [(layout, back, [v]) for _ in c.outs]


def _token_mix(c: Call) -> list:
    v = c.only()
    d = c.arg(1, "dim") % len(v.shape)
    if dim_axes(v.layout, d):
        raise Global(f"{c.name} over tokens")
    return [(v.layout, ops._ident(1), [v])]


def _matmul(c: Call) -> list:
    a, b = (c.args[1], c.args[2]) if c.name in ("addmm", "baddbmm") else (c.args[0], c.args[1])
    va, vb = c.val(a), c.val(b)
    if (va and dim_axes(va.layout, -1)) or (vb and dim_axes(vb.layout, len(vb.shape) - 2)):
        raise Global(f"{c.name} over tokens")
    out = tuple(c.outs[0].shape)
    dims = [plain(s) for s in out]
    if va:
        dims[:-1] = va.layout[:-1]
    if vb:
        if va and any(dim_axes(vb.layout, i) for i in range(len(vb.shape) - 2)) and va.layout[:-2] != vb.layout[:-2]:
            raise Unknown("batched matmul of two maps")
        if dim_axes(vb.layout, -1):
            if va and ops.axes(va.layout):
                raise Global("token-by-token product (attention scores)")
            dims[-1] = vb.layout[-1]
        elif not va:
            dims[:-2] = vb.layout[:-2]
    deps = [v for v in (va, vb) if v is not None]
    return [(tuple(dims), lambda box: [ops.restrict(box, v.layout) for v in deps], deps)]


def _attention(c: Call) -> list:
    q, k, v = (c.val(t) for t in c.args[:3])
    if any(x is not None and dim_axes(x.layout, len(x.shape) - 2) for x in (k, v)):
        raise Global("attention over tokens")
    if q is None or k is not None or v is not None:
        raise Unknown("attention with input-dependent keys but no spatial tokens")
    return [(q.layout, ops._ident(1), [q]) for _ in c.outs]


def _fused(c: Call) -> list:
    raise Global("fused attention")


def _index_like(c: Call) -> list:
    v = c.only()
    d = c.arg(1, "dim") % len(v.shape)
    if dim_axes(v.layout, d):
        raise Unknown("indexing along a spatial axis")
    lay = list(v.layout)
    lay[d] = plain(c.outs[0].shape[d])
    return [(tuple(lay), ops._ident(1), [v])]


def _roll(c: Call) -> list:
    v = c.only()
    dims = c.arg(2, "dims") or list(range(len(v.shape)))
    if any(dim_axes(v.layout, d) for d in dims):
        raise Unknown("roll along a spatial axis (shifted windows)")
    return [(v.layout, ops._ident(1), [v])]


RULES: dict[str, Callable[[Call], list]] = {
    **{n: _pointwise for n in POINTWISE}, **{n: _view for n in VIEWS}, **{n: _reduce for n in REDUCTIONS},
    **{n: _token_mix for n in TOKEN_MIX}, **{n: _attention for n in ATTENTION}, **{n: _fused for n in FUSED_ATTENTION},
    "permute": _permute, "transpose": _permute, "t": _permute, "expand": _expand, "select": _select,
    "slice": _slice, "constant_pad_nd": _pad, "reflection_pad1d": _pad, "reflection_pad2d": _pad,
    "replication_pad2d": _pad, "split": _split, "split_with_sizes": _split, "unbind": _split,
    "cat": _cat, "stack": _cat, "convolution": _conv, "mm": _matmul, "addmm": _matmul, "bmm": _matmul,
    "baddbmm": _matmul, "index_select": _index_like, "gather": _index_like, "roll": _roll,
    **{f"{p}_pool{n}d{s}": _pool for p in ("max", "avg") for n in (1, 2, 3) for s in ("", "_with_indices")},
    **{f"{p}adaptive_{k}_pool{n}d": _adaptive for p in ("", "_") for k in ("avg", "max") for n in (1, 2, 3)},
    **{f"{p}upsample_{m}{n}d{s}": _upsample for p in ("", "_") for m in ("nearest", "nearest_exact", "linear",
       "bilinear", "trilinear", "bicubic") for n in (1, 2, 3) for s in ("", "_aa")},
}
