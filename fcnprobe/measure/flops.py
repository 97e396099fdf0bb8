"""FLOP counting with one stated convention, on any ``nn.Module`` (real or meta device).

Convention (fvcore's and torchvision's published ``_ops``): ``macs`` counts the multiply-accumulates
of conv (incl. transposed), linear / mm / addmm / bmm / baddbmm / matmul / einsum and attention (SDPA:
B*h*L*S*(E+Ev), its two matmuls; a causal mask is ignored) and nothing else; **one MAC = 2 FLOPs**
(``flops``). Every other arithmetic op goes to ``other_flops``, in FLOPs, with these per-element costs:

* elementwise ops (activations incl. hardswish / hardsigmoid, residual adds,
  the squeeze-excite multiply, divisions): 1 per output element; softmax 3;
* norms: eval batch norm 2 per element with an affine, 1 without; batch norm
  in training, layer norm and group norm 5 / 4 (fvcore's per-element counts);
* pooling: the window volume per output element (max / avg); adaptive average
  pooling and reductions (``aten.mean.dim``, sum, amax): 1 per input element;
* resampling: 2 per interpolation tap per output element (one multiply-add;
  nearest copies, 0); grid sampling 8 per output element.

The counter is ``torch.utils.flop_counter.FlopCounterMode`` plus ``TORCH_FORMULAS`` (CPU flash attention,
which it misses, and the ``other_flops`` formulas). It runs unchanged on the meta device (shapes only), so
a count there (``path="meta"``, above ``meta_above_macs``) has the same convention. On the real path
fvcore cross-checks ``macs`` (its MAC handles plus ``FVCORE_HANDLES``: SDPA, which fvcore counts as 0,
and ``baddbmm``, which it skips; norms, resampling off); ``agree``: both give the same MACs.

* ``nn.MultiheadAttention`` / ``TransformerEncoderLayer`` in eval mode under
  ``no_grad`` take a fused fast path that no counter sees; counting runs with
  grad enabled, a grad-requiring input and the fast path off.
* Ops fvcore leaves uncounted must be on ``ALLOWLIST`` (with the reason) or
  are reported in ``FlopCount.unsupported``.

References: fvcore ``FlopCountAnalysis`` (flop_count.py, jit_handles.py); torch ``torch/utils/flop_counter.py``.

Example::

    >>> c = count_flops(create_model("attention"), torch.randn(1, 3, 32, 32))
    >>> c.agree, c.unsupported, c.other_flops > 0
    (True, (), True)
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import warnings
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode, flop_registry
from torch.utils._pytree import tree_flatten

from fcnprobe.utils import no_mha_fast_path

MAC_FLOPS = 2  # FLOPs per multiply-accumulate

_OTHER_NOTE = "not a MAC: counted in other_flops"
ALLOWLIST: dict[str, str] = {  # fvcore ops outside the MAC convention, and why
    **{f"aten::{op}": f"elementwise arithmetic (residual sums, SE multiply, scaling); {_OTHER_NOTE}"
       for op in ("add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "neg", "sqrt", "rsqrt",
                  "pow", "exp")},
    **{f"aten::{op}": f"reduction or pooling (sums or comparisons); {_OTHER_NOTE}"
       for op in ("mean", "sum", "amax", "amin", "max_pool2d", "max_pool1d", "avg_pool2d", "adaptive_avg_pool2d",
                  "adaptive_max_pool2d", "max_pool2d_with_indices")},
    **{f"aten::{op}": f"activation or softmax; {_OTHER_NOTE}"
       for op in ("sigmoid", "tanh", "gelu", "silu", "softmax", "log_softmax", "relu6", "leaky_relu", "hardtanh",
                  "hardtanh_", "hardswish", "hardswish_", "hardsigmoid", "hardsigmoid_", "silu_", "sigmoid_")},
    **{f"aten::{op}": f"normalisation; {_OTHER_NOTE}"
       for op in ("batch_norm", "layer_norm", "group_norm", "instance_norm")},
    **{f"aten::{op}": f"resampling; {_OTHER_NOTE}"
       for op in ("upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "upsample_linear1d",
                  "upsample_bilinear2d", "upsample_trilinear3d", "upsample_bicubic2d", "_upsample_nearest_exact1d",
                  "_upsample_nearest_exact2d", "_upsample_nearest_exact3d", "_upsample_bilinear2d_aa",
                  "_upsample_bicubic2d_aa", "grid_sampler")},
    **{f"aten::{op}": "comparison, or dropout (identity in eval): no arithmetic counted"
       for op in ("min", "max", "ne", "eq", "lt", "gt", "le", "ge", "dropout", "dropout_", "feature_dropout")},
    **{f"aten::{op}": f"pooling; {_OTHER_NOTE}" for op in ("adaptive_avg_pool1d", "adaptive_avg_pool3d", "avg_pool1d")},
    **{f"aten::{op}": "tensor creation or reshaping, no arithmetic"
       for op in ("linspace", "meshgrid", "unflatten", "expand_as", "repeat", "clone", "pad", "pixel_shuffle")},
}
FAST_PATH_OPS = ("aten::_native_multi_head_attention", "aten::_transformer_encoder_layer_fwd")  # never allowed
_FVCORE_OFF = ("batch_norm", "group_norm", "layer_norm", "instance_norm", "upsample_nearest2d",
               "upsample_bilinear2d", "adaptive_avg_pool2d", "grid_sampler")  # fvcore's stock non-MAC handles: ignored

_TAPS = {"linear": 2, "bilinear": 2, "trilinear": 2, "bicubic": 4}  # interpolation taps per axis
_UPSAMPLE_OPS = {  # aten op -> (mode, antialiased)
    "upsample_linear1d": ("linear", False), "upsample_bilinear2d": ("bilinear", False),
    "upsample_trilinear3d": ("trilinear", False), "upsample_bicubic2d": ("bicubic", False),
    "_upsample_bilinear2d_aa": ("bilinear", True), "_upsample_bicubic2d_aa": ("bicubic", True),
}
_SDPA_OPS = ("scaled_dot_product_attention", "_scaled_dot_product_flash_attention_for_cpu",
             "_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
             "_scaled_dot_product_cudnn_attention")
_ELEMENTWISE = ("add", "sub", "rsub", "mul", "div", "neg", "exp", "sqrt", "rsqrt", "pow", "erf", "abs", "relu",
                "hardtanh", "hardswish", "hardsigmoid", "gelu", "silu", "sigmoid", "tanh", "leaky_relu", "elu",
                "mish", "softplus", "clamp", "clamp_min", "clamp_max", "maximum", "minimum", "where", "_prelu_kernel",
                "reciprocal", "log", "addcmul", "lerp")


def sdpa_macs(q: Sequence[int], k: Sequence[int], v: Sequence[int]) -> int:
    """B*h*L*S*(E+Ev): Q K^T plus A V, for q (..., L, E), k (..., S, E), v (..., S, Ev)."""
    batch = math.prod(q[:-2])  # query heads count, so grouped-query attention is right too
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def upsample_flops(mode: str, antialias: bool, in_shape: Sequence[int], out_shape: Sequence[int]) -> int:
    """2 FLOPs per tap per output element; antialiasing widens each axis's kernel by the downscale."""
    taps = 1
    for d in range(2, len(out_shape)):
        taps *= math.ceil(_TAPS[mode] * (max(in_shape[d] / out_shape[d], 1.0) if antialias else 1.0))
    return MAC_FLOPS * taps * math.prod(out_shape)


def _fv_sdpa(inputs: list, outputs: list) -> int:
    """fvcore handle: inputs / outputs are torch._C.Value lists from the jit trace."""
    from fvcore.nn.jit_handles import get_shape

    return sdpa_macs(*(get_shape(v) for v in inputs[:3]))


def _fv_baddbmm(inputs: list, outputs: list) -> int:
    """fvcore handle for ``baddbmm(c, a, b)`` (fvcore leaves it out): B*N*M*P (attention's training path)."""
    from fvcore.nn.jit_handles import get_shape

    return math.prod(get_shape(inputs[1])) * get_shape(inputs[2])[-1]


FVCORE_HANDLES = {**{f"aten::{op}": _fv_sdpa for op in _SDPA_OPS}, "aten::baddbmm": _fv_baddbmm}


# ---- FlopCounterMode formulas: args arrive as shapes (shape_wrapper); return FLOPs
def _t_sdpa(q, k, v, *args, out_shape=None, **kwargs) -> int:
    return MAC_FLOPS * sdpa_macs(q, k, v)


def _first(shape: Any) -> Sequence[int]:
    return shape[0] if shape and not isinstance(shape[0], int) else shape


def _t_upsample(mode: str, antialias: bool) -> Callable[..., int]:
    def formula(x, *args, out_shape=None, **kwargs) -> int:
        return upsample_flops(mode, antialias, x, out_shape)

    return formula


def _t_norm(weight_at: int, training_at: int | None, training: bool = False) -> Callable[..., int]:
    """5 (affine) / 4 FLOPs per element with batch statistics, 2 / 1 for eval batch norm.

    ``weight_at`` / ``training_at`` are 1-based positions after the input (None: fixed ``training``).
    """
    def formula(x, *args, out_shape=None, **kwargs) -> int:
        train = bool(args[training_at - 1]) if training_at is not None else training
        affine = len(args) >= weight_at and args[weight_at - 1] is not None
        return ((5 if affine else 4) if train else (2 if affine else 1)) * math.prod(x)

    return formula


def _t_per_element(of_output: bool, per: int) -> Callable[..., int]:
    def formula(x, *args, out_shape=None, **kwargs) -> int:
        return per * math.prod(_first(out_shape) if of_output else x)

    return formula


def _t_pool(x, kernel_size, *args, out_shape=None, **kwargs) -> int:
    k = list(kernel_size) * (len(x) - 2 if len(kernel_size) == 1 else 1)
    return math.prod(k) * math.prod(_first(out_shape))


def _other_formulas() -> dict[str, Callable[..., int]]:
    return {
        **{op: _t_per_element(True, 1) for op in _ELEMENTWISE}, **{f"{op}_": _t_per_element(True, 1)
                                                                   for op in _ELEMENTWISE},
        "_softmax": _t_per_element(True, 3), "_log_softmax": _t_per_element(True, 3),
        "native_batch_norm": _t_norm(1, 5), "_native_batch_norm_legit": _t_norm(1, 5),
        "_native_batch_norm_legit_no_training": _t_norm(1, None, False),
        "_batch_norm_with_update": _t_norm(1, None, True),
        "_batch_norm_no_update": _t_norm(1, None, False), "native_layer_norm": _t_norm(2, None, True),
        "native_group_norm": _t_norm(1, None, True),
        **{op: _t_pool for op in ("max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices",
                                   "max_pool3d_with_indices", "avg_pool1d", "avg_pool2d", "avg_pool3d")},
        **{op: _t_per_element(False, 1) for op in ("_adaptive_avg_pool2d", "_adaptive_avg_pool3d",
                                                  "adaptive_max_pool2d", "mean", "sum", "amax", "amin")},
        "grid_sampler_2d": _t_per_element(True, 8),
        # nearest copies (0 FLOPs); registered so that the counter does not decompose it into index arithmetic
        **{op: _t_per_element(True, 0) for op in ("upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d",
                                                  "_upsample_nearest_exact1d", "_upsample_nearest_exact2d",
                                                  "_upsample_nearest_exact3d")},
        **{op: _t_upsample(*how) for op, how in _UPSAMPLE_OPS.items()},
    }


OTHER_FORMULAS = _other_formulas()
MAC_OPS = frozenset({getattr(k, "__name__", str(k)) for k in flop_registry}
                    | {"_scaled_dot_product_flash_attention_for_cpu"})  # torch's registry counts only MAC ops


def _packets(table: dict[str, Callable[..., int]]) -> dict:
    out: dict = {}
    for name, f in table.items():
        if hasattr(torch.ops.aten, name):
            packet = getattr(torch.ops.aten, name)
            # overloads too: FlopCounterMode decomposes any overload it does not find as a key
            out.update({packet: f, **{getattr(packet, ov): f for ov in packet.overloads()}})
    return out


TORCH_FORMULAS = _packets({"_scaled_dot_product_flash_attention_for_cpu": _t_sdpa, **OTHER_FORMULAS})


@dataclasses.dataclass(frozen=True)
class FlopCount:
    """Result of ``count_flops``; every count is for the whole input batch (see the module's convention)."""

    macs: int  # conv / linear / matmul / attention multiply-accumulates (FlopCounterMode + TORCH_FORMULAS)
    by_operator: dict[str, int]  # MACs per aten op
    other_flops: int  # everything else, in FLOPs (OTHER_FORMULAS)
    other_by_operator: dict[str, int]  # FLOPs per aten op
    path: str  # "real": a forward on the inputs' device; "meta": shapes only, no fvcore cross-check
    macs_fvcore: int | None  # fvcore's MACs with FVCORE_HANDLES (None: not cross-checked)
    uncounted: dict[str, int]  # op -> calls fvcore could not count (allowlisted or not)
    unsupported: tuple[str, ...]  # uncounted ops that are not on ALLOWLIST
    macs_fvcore_stock: int | None  # what fvcore's own MAC handles count (misses SDPA)
    flops_torch_stock: int | None  # MAC FLOPs of FlopCounterMode's own registry (misses CPU flash attention)

    @property
    def flops(self) -> int:
        return MAC_FLOPS * self.macs

    @property
    def flops_torch(self) -> int:
        """The counter's MAC FLOPs (kept for callers of the two-counter API; equals ``flops``)."""
        return self.flops

    @property
    def agree(self) -> bool | None:
        """fvcore's MACs == the counter's, exactly (None when not cross-checked)."""
        return None if self.macs_fvcore is None else self.macs_fvcore == self.macs

    def rows(self) -> list[tuple[str, int, float]]:
        """The per-operator MAC table: (op, MACs, share of total), largest first."""
        total = max(self.macs, 1)
        return [(op, n, n / total) for op, n in sorted(self.by_operator.items(), key=lambda kv: -kv[1])]


@contextlib.contextmanager
def _counting_mode() -> Iterator[None]:
    """Grad on and the MHA fast path off, so attention runs through countable ops."""
    with no_mha_fast_path(), torch.inference_mode(False), torch.enable_grad():
        yield


def _leaf_inputs(inputs: "torch.Tensor | tuple") -> tuple:
    """Fresh grad-requiring copies (inside _counting_mode) so fast paths see a grad input."""
    items = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
    return tuple(t.detach().clone().requires_grad_(t.is_floating_point()) if torch.is_tensor(t) else t
                 for t in items)


def _torch_count(model: nn.Module, inputs: tuple) -> tuple[dict[str, int], dict[str, int], int]:
    """(MACs per op, other FLOPs per op, MAC FLOPs of torch's own registry) of one forward."""
    with FlopCounterMode(display=False, custom_mapping=TORCH_FORMULAS) as counter:
        model(*inputs)
    counts = {getattr(op, "__name__", str(op)): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    macs = {op: n // MAC_FLOPS for op, n in counts.items() if op in MAC_OPS}
    stock = sum(n for op, n in counts.items() if op in MAC_OPS and op != "_scaled_dot_product_flash_attention_for_cpu")
    return macs, {op: n for op, n in counts.items() if op not in MAC_OPS}, stock


class _Flat(nn.Module):
    """Returns every tensor of the wrapped model's output as a tuple, so jit tracing accepts dicts and ModelOutputs."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: Any) -> tuple:
        out = self.model(*args)
        if isinstance(out, Mapping):
            out = dict(out)
        return tuple(t for t in tree_flatten(out)[0] if torch.is_tensor(t))


def _fvcore(model: nn.Module, inputs: tuple) -> tuple[int, int, dict[str, int]]:
    """(MACs with FVCORE_HANDLES, MACs with fvcore's own handles, uncounted op -> calls)."""
    with warnings.catch_warnings():  # fvcore scripts and traces with torch.jit, which torch 2.13 deprecates
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=DeprecationWarning)
        from fvcore.nn import FlopCountAnalysis

        from fvcore.nn import jit_handles as jh

        fa = FlopCountAnalysis(_Flat(model), inputs).clear_op_handles()  # then only the MAC handles, and ours
        fa.set_op_handle(**{"aten::addmm": jh.addmm_flop_jit, "aten::bmm": jh.bmm_flop_jit,
                            "aten::mm": jh.matmul_flop_jit, "aten::_convolution": jh.conv_flop_jit,
                            "aten::einsum": jh.einsum_flop_jit, "aten::matmul": jh.matmul_flop_jit,
                            "aten::linear": jh.linear_flop_jit}, **FVCORE_HANDLES)
        fa.set_op_handle(**{f"aten::{op}": None for op in _FVCORE_OFF})
        fa.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        total = int(fa.total())  # runs the trace; the queries below read its cached statistics
        ours = {op.split("::")[-1] for op in FVCORE_HANDLES}
        stock = total - sum(int(n) for op, n in fa.by_operator().items() if op in ours)
    return total, stock, dict(fa.unsupported_ops())


def _meta_copy(model: nn.Module, inputs: tuple) -> tuple[nn.Module, tuple]:
    meta = copy.deepcopy(model).to("meta")
    args = tuple(torch.empty(t.shape, dtype=t.dtype, device="meta", requires_grad=t.is_floating_point())
                 if torch.is_tensor(t) else t for t in inputs)
    return meta, args


def count_flops(model: nn.Module, inputs: "torch.Tensor | tuple", cross_check: bool = True,
                meta_above_macs: float | None = None) -> FlopCount:
    """Count ``model(*inputs)``: ``macs`` (conv / linear / matmul / attention) and ``other_flops``.

    With ``meta_above_macs``, a meta-device count runs first; above that many MACs it is the result
    (``path="meta"``: same counter and convention, no compute, not cross-checked); a model whose forward
    cannot run on meta (``.item()``, data-dependent shapes) is counted for real. Otherwise the forward runs
    on the inputs' device in the model's current mode, with grad enabled, and fvcore cross-checks the MACs.
    """
    items, macs = (inputs if isinstance(inputs, (tuple, list)) else (inputs,)), None
    if meta_above_macs is not None:
        try:
            with _counting_mode():
                macs, other, stock = _torch_count(*_meta_copy(model, tuple(items)))
        except (RuntimeError, NotImplementedError):
            macs = None
        if macs is not None and sum(macs.values()) > meta_above_macs:
            return FlopCount(sum(macs.values()), macs, sum(other.values()), other, "meta", None, {}, (), None, stock)
    with _counting_mode():
        args = _leaf_inputs(inputs)
        macs, other, stock = _torch_count(model, args)
        fv, fv_stock, uncounted = _fvcore(model, args) if cross_check else (None, None, {})
    return FlopCount(
        macs=sum(macs.values()), by_operator=macs, other_flops=sum(other.values()), other_by_operator=other,
        path="real", macs_fvcore=fv, uncounted=uncounted,
        unsupported=tuple(sorted(op for op in uncounted if op not in ALLOWLIST)),
        macs_fvcore_stock=fv_stock, flops_torch_stock=stock)


def estimate_flops(model: nn.Module, input_shape: Sequence[int], dtype: torch.dtype = torch.float32) -> int:
    """MAC FLOPs (2 per MAC) of a forward pass on the meta device: exact shapes, no compute, no memory.

    The same counter and convention as ``count_flops``; SDPA on meta runs the
    math path, whose two batched matmuls give the same closed form.
    """
    x = torch.empty(*input_shape, dtype=dtype)
    with _counting_mode():
        macs, _, _ = _torch_count(*_meta_copy(model, (x,)))
    return MAC_FLOPS * sum(macs.values())
