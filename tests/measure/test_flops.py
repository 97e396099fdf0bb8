"""fcnprobe.flops against closed forms, and FlopCounterMode vs fvcore-with-handles on every model.

Closed forms (MACs; 1 MAC = 2 FLOPs):
conv B*Cin*Cout*k^2*Hout*Wout/groups; linear B*in*out; SDPA B*h*L*S*(E+Ev).
other_flops: resampling 2 x taps per output element (nearest 0); layer norm 5 per element.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from fcnprobe.analysis.shape import conv_out_size
from fcnprobe.measure.flops import ALLOWLIST, FAST_PATH_OPS, count_flops, estimate_flops
from fcnprobe.models import MODELS, create_model, list_models


def _check(module: nn.Module, x, expected_macs: int):
    c = count_flops(module, x)
    assert c.macs == expected_macs == c.macs_fvcore
    assert c.flops == 2 * expected_macs and c.agree and c.path == "real"
    assert c.unsupported == ()
    return c


@pytest.mark.parametrize("b,cin,cout,k,stride,pad,dil,groups,h", [
    (1, 3, 8, 3, 1, 1, 1, 1, 16), (2, 8, 16, 3, 2, 1, 1, 1, 17), (3, 8, 8, 5, 1, 4, 2, 1, 12),
    (2, 8, 16, 3, 1, 1, 1, 4, 10), (1, 6, 6, 3, 1, 1, 1, 6, 9), (2, 4, 5, 1, 1, 0, 1, 1, 7)])
def test_conv_closed_form(b, cin, cout, k, stride, pad, dil, groups, h):
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, dilation=dil, groups=groups)
    hout = conv_out_size(h, k, stride, pad, dil)
    wout = conv_out_size(h + 3, k, stride, pad, dil)
    _check(conv, torch.randn(b, cin, h, h + 3), b * cin * cout * k * k * hout * wout // groups)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_closed_form(bias):
    _check(nn.Linear(12, 7, bias=bias), torch.randn(5, 3, 12), 5 * 3 * 12 * 7)


class SDPA(nn.Module):
    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v)


@pytest.mark.parametrize("b,h,l,s,e,ev", [(2, 4, 16, 16, 8, 8), (1, 3, 10, 24, 8, 4), (3, 1, 7, 5, 16, 32)])
def test_sdpa_closed_form(b, h, l, s, e, ev):
    q, k, v = torch.randn(b, h, l, e), torch.randn(b, h, s, e), torch.randn(b, h, s, ev)
    c = _check(SDPA(), (q, k, v), b * h * l * s * (e + ev))
    assert c.macs_fvcore_stock == 0  # everything here comes from the added handle


def _attention_block_macs(b: int, length: int, d: int, heads: int, ff: int) -> tuple[int, int]:
    """(matmul MACs, layer-norm FLOPs) of one pre-norm TransformerEncoderLayer."""
    linear = b * length * (3 * d * d + d * d + 2 * d * ff)  # in-proj, out-proj, FFN
    attn = b * heads * length * length * (2 * d // heads)  # SDPA: E = Ev = d / heads
    return linear + attn, 2 * 5 * b * length * d  # two affine LayerNorms, 5 per element


@pytest.mark.parametrize("mode", ["eval_no_grad", "eval_inference_mode", "eval_grad", "train"])
def test_attention_block_closed_form_in_every_mode(mode):
    b, length, d, heads, ff = 2, 20, 32, 4, 64
    layer = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, batch_first=True, norm_first=True)
    layer.train(mode == "train")
    ctx = {"eval_no_grad": torch.no_grad, "eval_inference_mode": torch.inference_mode}.get(mode, torch.enable_grad)
    fast_path_before = torch.backends.mha.get_fastpath_enabled()
    with ctx():
        c = count_flops(layer, torch.randn(b, length, d))
        grad_after = torch.is_grad_enabled()
    matmul, norms = _attention_block_macs(b, length, d, heads, ff)
    assert c.other_by_operator["native_layer_norm"] == norms
    assert c.macs == matmul and c.agree and c.unsupported == ()
    assert not set(FAST_PATH_OPS) & set(c.uncounted)
    assert torch.backends.mha.get_fastpath_enabled() == fast_path_before  # restored
    assert grad_after == (mode in ("eval_grad", "train"))  # the caller's mode is back


@pytest.mark.parametrize("train", [True, False])
def test_biased_encoder_layer_closed_form_in_both_paths(train):
    """attention's EncoderLayer: baddbmm in training (fvcore needs FVCORE_HANDLES), SDPA in evaluation."""
    from fcnprobe.models.attention import EncoderLayer

    b, length, d, heads, ff = 2, 20, 32, 4, 64
    layer = EncoderLayer(d, heads, ff, dropout=0.0, batch_first=True, norm_first=True).train(train)
    mask = torch.randn(b * heads, length, length)
    c = count_flops(layer, (torch.randn(b, length, d), mask))
    assert ("baddbmm" in c.by_operator) == train
    assert c.macs == _attention_block_macs(b, length, d, heads, ff)[0] and c.agree and c.unsupported == ()


def test_multihead_attention_eval_no_grad():
    b, length, src, d, heads = 2, 9, 13, 16, 2
    mha = nn.MultiheadAttention(d, heads, batch_first=True).eval()
    q, kv = torch.randn(b, length, d), torch.randn(b, src, d)
    mha.requires_grad_(False)  # frozen weights: only the grad-requiring input keeps the fast path off
    with torch.no_grad():
        c = count_flops(mha, (q, kv, kv))
    expected = b * length * d * d + 2 * b * src * d * d + b * length * d * d + b * length * src * 2 * d
    assert c.macs == expected and c.agree


@pytest.mark.parametrize("mode,antialias,shape,out,taps", [
    ("nearest", False, (1, 2, 8, 8), (16, 16), 0), ("nearest-exact", False, (1, 2, 8, 8), (16, 16), 0),
    ("bilinear", False, (2, 3, 8, 8), (12, 20), 4), ("bicubic", False, (1, 2, 8, 8), (16, 16), 16),
    ("bilinear", True, (1, 2, 16, 16), (8, 8), 16), ("bicubic", True, (1, 2, 16, 16), (8, 4), 8 * 16),
    ("bilinear", True, (1, 2, 8, 8), (16, 16), 4), ("linear", False, (1, 2, 8), (24,), 2),
    ("trilinear", False, (1, 2, 4, 4, 4), (8, 8, 8), 8)])
def test_resampling_closed_form(mode, antialias, shape, out, taps):
    class Resize(nn.Module):
        def forward(self, x):
            return F.interpolate(x, size=out, mode=mode, antialias=antialias) if antialias else \
                F.interpolate(x, size=out, mode=mode)

    c = _check(Resize(), torch.randn(*shape), 0)  # resampling is not a MAC
    assert c.other_flops == 2 * taps * shape[0] * shape[1] * math.prod(out)


def test_uncounted_op_outside_the_allowlist_is_reported():
    class Cumsum(nn.Module):
        def forward(self, x):
            return torch.cumsum(x, dim=-1)

    c = count_flops(Cumsum(), torch.randn(2, 5))
    assert "aten::cumsum" in c.unsupported and "aten::cumsum" not in ALLOWLIST


def test_allowlist_gives_a_reason_for_each_op():
    assert all(op.startswith("aten::") and len(reason) > 20 for op, reason in ALLOWLIST.items())
    assert not set(FAST_PATH_OPS) & set(ALLOWLIST)


def _extra_heads(name: str) -> list[str]:
    """Besides the costed head: every other native head, and the adapters for spatial-only families."""
    native = MODELS.meta(name)["native"]
    heads = ["box" if k == "box" else f"{k}:3" for k in native if k != "dense"]
    if MODELS.meta(name).get("adapters", True) and "vector" not in native:
        heads += ["vector:3@gap", "box@gmp"]
    return heads


def _assert_complete(model: nn.Module, x: torch.Tensor, what: str):
    c = count_flops(model, x)
    assert c.unsupported == (), f"{what}: uncounted {c.unsupported}"
    assert c.agree, f"{what}: torch {c.macs} vs fvcore {c.macs_fvcore} MACs"
    assert c.macs == sum(c.by_operator.values()) > 0
    return c


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_counts_fully_and_counters_agree(name):
    native = MODELS.meta(name)["native"]
    head = "dense:4" if "dense" in native else ("box" if native[0] == "box" else f"{native[0]}:3")
    model = create_model(name, head=head).eval()
    for size in (32,) if MODELS.meta(name).get("fixed_size") else (32, 48):  # 48: resized positions, odd skips
        x = torch.randn(1, 3, size, size)
        c = _assert_complete(model, x, f"{name} {head} @{size}")
        assert estimate_flops(model, x.shape) == c.flops  # the meta-device estimate is exact too
    for extra in _extra_heads(name):
        _assert_complete(create_model(name, head=extra).eval(), torch.randn(1, 3, 32, 32), f"{name} {extra}")


@pytest.mark.parametrize("name", ["attention", "fcn_encdec", "nonlocal", "coordconv"])
def test_counts_are_linear_in_batch_but_for_per_forward_work(name):
    model = create_model(name).eval()
    one, three = (count_flops(model, torch.randn(b, 3, 40, 40), cross_check=False) for b in (1, 3))
    assert three.macs == 3 * one.macs
    # attention resizes its axial position embeddings, (1, D, 32/p, 1) and (1, D, 1, 32/p), to 40/p
    # tokens once per forward: bilinear, 4 taps per output element, 2 FLOPs per tap
    per_forward = 2 * 4 * model.trunk.pos_h.shape[1] * 2 * (40 // model.trunk.patch) if name == "attention" else 0
    assert three.other_by_operator.get("upsample_bilinear2d", 0) == \
        3 * one.other_by_operator.get("upsample_bilinear2d", 0) - 2 * per_forward


def test_meta_path_same_convention():
    model = create_model("attention").eval()
    x = torch.randn(1, 3, 32, 32)
    real, meta = count_flops(model, x), count_flops(model, x, meta_above_macs=0)
    assert meta.path == "meta" and real.path == "real" and meta.agree is None
    assert meta.macs == real.macs and meta.by_operator.keys() <= real.by_operator.keys() | {"bmm"}
    assert count_flops(model, x, meta_above_macs=10 * real.macs).path == "real"
