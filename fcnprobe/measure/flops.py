"""FLOP counting that gets attention right: fvcore with added handles, cross-checked
against ``torch.utils.flop_counter.FlopCounterMode``.

Convention (fvcore's, stated as its docstring does): **one multiply-accumulate
(MAC) = 2 FLOPs**. fvcore calls a MAC one "flop"; ``FlopCounterMode`` counts 2
FLOPs per MAC. ``FlopCount.macs`` is fvcore's number, ``FlopCount.flops`` is
twice it, and ``FlopCount.flops_torch`` is FlopCounterMode's, which must equal
``flops`` (``FlopCount.agree``). Biases, activations, softmax and elementwise
arithmetic are not MACs; norms and resampling use fvcore's per-element
estimates (norm: 5 per element with an affine, 4 without; eval batch norm: 2/1;
resampling: one MAC per interpolation tap per output element).

What the stock counters miss (torch 2.13, fvcore 0.1.5), and the fixes here:

* fvcore counts ``aten::scaled_dot_product_attention`` as 0 and has no handles
  for bicubic, nearest-exact, linear/trilinear or antialiased resampling:
  ``FVCORE_HANDLES`` adds them. SDPA is B*h*L*S*(E+Ev) MACs (the two matmuls;
  a causal mask is ignored, as FlopCounterMode's ``sdpa_flop`` does).
* ``nn.MultiheadAttention``/``TransformerEncoderLayer`` in eval mode under
  ``no_grad`` take a fused fast path that no counter sees. Counting runs with
  grad enabled, a grad-requiring input and ``torch.backends.mha`` fast path off.
* FlopCounterMode does not know ``aten::_scaled_dot_product_flash_attention_for_cpu``
  nor norms and resampling: ``TORCH_FORMULAS`` maps them (SDPA to ``sdpa_flop_count``).

Ops that fvcore leaves uncounted must be on ``ALLOWLIST`` (with the reason) or
they are reported in ``FlopCount.unsupported``; the tests fail on any such op
in a registered model.

References: fvcore ``FlopCountAnalysis`` (flop_count.py, jit_handles.py);
torch ``torch/utils/flop_counter.py``.

Example::

    >>> c = count_flops(create_model("attention"), torch.randn(1, 3, 32, 32))
    >>> c.agree, c.unsupported
    (True, ())
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import warnings
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn as nn

MAC_FLOPS = 2  # FLOPs per multiply-accumulate

ALLOWLIST: dict[str, str] = {  # uncounted fvcore ops that are not MACs, and why
    **{f"aten::{op}": "elementwise arithmetic (residual sums, scaling): no multiply-accumulate; "
                      "FlopCounterMode does not count it either"
       for op in ("add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "neg", "sqrt", "rsqrt")},
    **{f"aten::{op}": "reduction or pooling (sums or comparisons), not a MAC; FlopCounterMode skips it"
       for op in ("mean", "sum", "amax", "amin", "max_pool2d", "max_pool1d", "avg_pool2d")},
    **{f"aten::{op}": "activation or softmax: not a MAC (SDPA's closed form counts its two matmuls only)"
       for op in ("sigmoid", "tanh", "gelu", "silu", "softmax", "log_softmax", "relu6", "leaky_relu", "hardtanh")},
    **{f"aten::{op}": "tensor creation or reshaping, no arithmetic"
       for op in ("linspace", "meshgrid", "unflatten", "expand_as", "repeat", "clone", "pad", "pixel_shuffle")},
}
FAST_PATH_OPS = ("aten::_native_multi_head_attention", "aten::_transformer_encoder_layer_fwd")  # never allowed

# interpolation taps per output element per spatial axis; nearest copies one value (fvcore counts 1)
_TAPS = {"nearest": 1, "nearest_exact": 1, "linear": 2, "bilinear": 2, "trilinear": 2, "bicubic": 4}
_UPSAMPLE_OPS = {  # aten op -> (mode, antialiased)
    "upsample_nearest1d": ("nearest", False), "upsample_nearest3d": ("nearest", False),
    "_upsample_nearest_exact1d": ("nearest_exact", False), "_upsample_nearest_exact2d": ("nearest_exact", False),
    "_upsample_nearest_exact3d": ("nearest_exact", False), "upsample_linear1d": ("linear", False),
    "upsample_trilinear3d": ("trilinear", False), "upsample_bicubic2d": ("bicubic", False),
    "_upsample_bilinear2d_aa": ("bilinear", True), "_upsample_bicubic2d_aa": ("bicubic", True),
}
_SDPA_OPS = ("scaled_dot_product_attention", "_scaled_dot_product_flash_attention_for_cpu",
             "_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
             "_scaled_dot_product_cudnn_attention")


def sdpa_macs(q: Sequence[int], k: Sequence[int], v: Sequence[int]) -> int:
    """B*h*L*S*(E+Ev): Q K^T plus A V, for q (..., L, E), k (..., S, E), v (..., S, Ev)."""
    batch = math.prod(q[:-2])  # query heads count, so grouped-query attention is right too
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def upsample_macs(mode: str, antialias: bool, in_shape: Sequence[int], out_shape: Sequence[int]) -> int:
    """Taps per output element times output elements; antialiasing widens the kernel by the downscale."""
    spatial = range(2, len(out_shape))
    taps = 1
    for d in spatial:
        scale = max(in_shape[d] / out_shape[d], 1.0) if antialias else 1.0
        taps *= math.ceil(_TAPS[mode] * scale)
    return taps * math.prod(out_shape)


# ---- fvcore handles: (inputs, outputs) are torch._C.Value lists from the jit trace
def _fv_sdpa(inputs: list, outputs: list) -> int:
    from fvcore.nn.jit_handles import get_shape

    return sdpa_macs(*(get_shape(v) for v in inputs[:3]))


def _fv_upsample(mode: str, antialias: bool) -> Callable[[list, list], int]:
    def handle(inputs: list, outputs: list) -> int:
        from fvcore.nn.jit_handles import get_shape

        return upsample_macs(mode, antialias, get_shape(inputs[0]), get_shape(outputs[0]))

    return handle


FVCORE_HANDLES = {**{f"aten::{op}": _fv_sdpa for op in _SDPA_OPS},
                  **{f"aten::{op}": _fv_upsample(*how) for op, how in _UPSAMPLE_OPS.items()}}


# ---- FlopCounterMode formulas: args arrive as shapes (shape_wrapper); return FLOPs
def _t_sdpa(q, k, v, *args, out_shape=None, **kwargs) -> int:
    return MAC_FLOPS * sdpa_macs(q, k, v)


def _t_upsample(mode: str, antialias: bool) -> Callable[..., int]:
    def formula(x, *args, out_shape=None, **kwargs) -> int:
        return MAC_FLOPS * upsample_macs(mode, antialias, x, out_shape)

    return formula


def _t_norm(weight_at: int, training_at: int | None, training: bool = False) -> Callable[..., int]:
    """fvcore's norm convention: 5 (affine) / 4 per element in training, 2 / 1 for eval batch norm.

    ``weight_at`` / ``training_at`` are 1-based positions after the input (None: fixed ``training``).
    """
    def formula(x, *args, out_shape=None, **kwargs) -> int:
        train = bool(args[training_at - 1]) if training_at is not None else training
        affine = len(args) >= weight_at and args[weight_at - 1] is not None
        per = (5 if affine else 4) if train else (2 if affine else 1)
        return MAC_FLOPS * per * math.prod(x)

    return formula


def _t_per_element(of_output: bool, per: int) -> Callable[..., int]:
    def formula(x, *args, out_shape=None, **kwargs) -> int:
        return MAC_FLOPS * per * math.prod(out_shape if of_output else x)

    return formula


def _torch_formulas() -> dict:
    aten = torch.ops.aten
    table: dict[str, Any] = {
        "_scaled_dot_product_flash_attention_for_cpu": _t_sdpa,
        "native_batch_norm": _t_norm(1, 5), "_native_batch_norm_legit": _t_norm(1, 5),
        "_native_batch_norm_legit_no_training": _t_norm(1, None, False), "cudnn_batch_norm": _t_norm(1, 5),
        "miopen_batch_norm": _t_norm(1, 5), "_batch_norm_with_update": _t_norm(1, None, True),
        "_batch_norm_no_update": _t_norm(1, None, False),
        "native_layer_norm": _t_norm(2, None, True), "native_group_norm": _t_norm(1, None, True),
        "upsample_nearest2d": _t_upsample("nearest", False), "upsample_bilinear2d": _t_upsample("bilinear", False),
        "_adaptive_avg_pool2d": _t_per_element(False, 1), "grid_sampler_2d": _t_per_element(True, 4),
        **{op: _t_upsample(*how) for op, how in _UPSAMPLE_OPS.items()},
    }
    out: dict = {}
    for name, f in table.items():
        if hasattr(aten, name):
            packet = getattr(aten, name)
            # overloads too: FlopCounterMode decomposes any overload it does not find as a key
            out.update({packet: f, **{getattr(packet, ov): f for ov in packet.overloads()}})
    return out


TORCH_FORMULAS = _torch_formulas()


@dataclasses.dataclass(frozen=True)
class FlopCount:
    """Result of ``count_flops``; every count is for the whole input batch."""

    macs: int  # fvcore with FVCORE_HANDLES (1 per multiply-accumulate)
    by_operator: dict[str, int]  # MACs per operator (fvcore's names)
    uncounted: dict[str, int]  # op -> calls fvcore could not count (allowlisted or not)
    unsupported: tuple[str, ...]  # uncounted ops that are not on ALLOWLIST
    macs_fvcore_stock: int  # what fvcore's own handles count on the same trace
    flops_torch: int | None  # FlopCounterMode with TORCH_FORMULAS, 2 per MAC; None without cross-check
    flops_torch_stock: int | None  # FlopCounterMode's own registry only

    @property
    def flops(self) -> int:
        return MAC_FLOPS * self.macs

    @property
    def agree(self) -> bool | None:
        """FlopCounterMode == 2 x fvcore, exactly (None when not cross-checked)."""
        return None if self.flops_torch is None else self.flops_torch == self.flops

    def rows(self) -> list[tuple[str, int, float]]:
        """The per-operator table: (op, MACs, share of total), largest first."""
        total = max(self.macs, 1)
        return [(op, n, n / total) for op, n in sorted(self.by_operator.items(), key=lambda kv: -kv[1])]


@contextlib.contextmanager
def _counting_mode() -> Iterator[None]:
    """Grad on and the MHA fast path off, so attention runs through countable ops."""
    prev = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(prev)


def _leaf_inputs(inputs: "torch.Tensor | tuple") -> tuple:
    """Fresh grad-requiring copies (inside _counting_mode) so fast paths see a grad input."""
    items = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
    return tuple(t.detach().clone().requires_grad_(t.is_floating_point()) if torch.is_tensor(t) else t
                 for t in items)


def _fvcore(model: nn.Module, inputs: tuple) -> tuple[Any, dict[str, int]]:
    with warnings.catch_warnings():  # fvcore scripts and traces with torch.jit, which torch 2.13 deprecates
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=DeprecationWarning)
        from fvcore.nn import FlopCountAnalysis

        fa = FlopCountAnalysis(model, inputs).set_op_handle(**FVCORE_HANDLES)
        fa.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        fa.total()  # runs the trace; the queries below read its cached statistics
    return fa, dict(fa.unsupported_ops())


def _flop_counter(model: nn.Module, inputs: tuple) -> tuple[int, int]:
    """(total FLOPs with TORCH_FORMULAS, the part FlopCounterMode's own registry counts)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False, custom_mapping=TORCH_FORMULAS) as counter:
        model(*inputs)
    counts = counter.get_flop_counts().get("Global", {})
    ours = sum(n for op, n in counts.items() if op in TORCH_FORMULAS)  # counts are keyed by packet
    return counter.get_total_flops(), counter.get_total_flops() - ours


def count_flops(model: nn.Module, inputs: "torch.Tensor | tuple", cross_check: bool = True) -> FlopCount:
    """Count MACs of ``model(*inputs)`` with fvcore + FVCORE_HANDLES, cross-checked by FlopCounterMode.

    Runs the forward pass twice (trace and cross-check) on the inputs' device, in
    the model's current train/eval mode, with grad enabled whatever the caller's mode.
    """
    with _counting_mode():
        args = _leaf_inputs(inputs)
        fa, uncounted = _fvcore(model, args)
        by_op = {op: int(n) for op, n in fa.by_operator().items()}
        ours = {op.split("::")[-1] for op in FVCORE_HANDLES}
        torch_total, torch_stock = _flop_counter(model, args) if cross_check else (None, None)
    macs = int(fa.total())
    return FlopCount(
        macs=macs, by_operator=by_op, uncounted=uncounted,
        unsupported=tuple(sorted(op for op in uncounted if op not in ALLOWLIST)),
        macs_fvcore_stock=macs - sum(n for op, n in by_op.items() if op in ours),
        flops_torch=torch_total, flops_torch_stock=torch_stock)


def estimate_flops(model: nn.Module, input_shape: Sequence[int], dtype: torch.dtype = torch.float32) -> int:
    """FlopCounterMode FLOPs of a forward pass on the meta device: exact shapes, no compute, no memory.

    Used to plan (and, past a compute cap, to stand in for) a real count. SDPA on
    meta runs the math path, whose two batched matmuls give the same closed form.
    """
    meta = copy.deepcopy(model).to("meta")
    with _counting_mode():
        x = torch.empty(*input_shape, device="meta", dtype=dtype, requires_grad=True)
        total, _ = _flop_counter(meta, (x,))
    return int(total)
