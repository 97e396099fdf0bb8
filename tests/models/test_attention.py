"""The attention family's relative-position bias: its initial bump, its layout as
``nn.MultiheadAttention``'s mask, and the eval fast path agreeing with the slow path."""
import math

import pytest
import torch

import fcnprobe
from fcnprobe.measure.hierarchy import attention_weights
from fcnprobe.models.attention import LOCAL_BIAS, LOCAL_BIAS_RADIUS, LOCAL_BIAS_SIGMA, RelativeBias, attention_mask


def test_bias_starts_as_a_local_gaussian_bump_of_the_offset():
    rel = RelativeBias(heads=2, radius=3)
    bias = rel(4, 4).detach()  # (2, 16, 16)
    ys, xs = torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij")
    ys, xs = ys.flatten().float(), xs.flatten().float()
    d2 = (ys[None] - ys[:, None]) ** 2 + (xs[None] - xs[:, None]) ** 2
    want = LOCAL_BIAS * torch.exp(-d2 / (2 * LOCAL_BIAS_SIGMA**2))
    assert torch.allclose(bias, want.expand(2, -1, -1))
    assert float(bias[0, 5, 5]) == pytest.approx(LOCAL_BIAS)


def test_bias_depends_only_on_the_offset_and_clips_beyond_the_table():
    rel = RelativeBias(heads=1, radius=2)
    with torch.no_grad():
        rel.table.copy_(torch.arange(25.0).view(1, 5, 5))
    bias = rel(3, 3)[0].detach()
    assert bias[0, 4] == bias[4, 8] == rel.table[0, 3, 3]  # one step down and right, from two queries
    big = rel(5, 5)[0].detach()  # a larger grid: offsets past +-2 use the table's edge
    assert big[0, 24] == rel.table[0, 4, 4] and big[24, 0] == rel.table[0, 0, 0]


@pytest.mark.parametrize("heads", [1, 2])
def test_mask_is_batch_major_per_head_as_multihead_attention_reads_it(heads):
    torch.manual_seed(0)
    b, t, d = 3, 9, 8
    rel = RelativeBias(heads, radius=2)
    with torch.no_grad():
        rel.table.normal_()
    bias = rel(3, 3).detach()
    mha = torch.nn.MultiheadAttention(d, heads, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight[: 2 * d].zero_()  # q = k = 0: the logits are the bias alone
        mha.in_proj_bias.zero_()
    x = torch.randn(b, t, d)
    _, w = mha(x, x, x, attn_mask=attention_mask(bias, b), need_weights=True, average_attn_weights=False)
    assert torch.allclose(w, torch.softmax(bias, -1).expand(b, -1, -1, -1), atol=1e-6)


def test_hierarchy_recomputes_the_weights_with_the_mask():
    torch.manual_seed(1)
    layer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, norm_first=True)
    x = torch.randn(2, 9, 8)
    bias = RelativeBias(2, 2)(3, 3).detach()
    mask = attention_mask(bias, 2)
    h = layer.norm1(x)
    _, want = layer.self_attn(h, h, h, attn_mask=mask, need_weights=True, average_attn_weights=False)
    assert torch.allclose(attention_weights(layer, x, mask), want, atol=1e-6)
    assert not torch.allclose(attention_weights(layer, x), want, atol=1e-3)  # the mask matters


@pytest.mark.parametrize("name", ["attention", "attention_fullres"])
def test_eval_fast_path_matches_the_slow_path(name):
    torch.manual_seed(2)
    net = fcnprobe.create_model(name, head="dense:4", width=16, image_size=16).eval()
    x = torch.randn(4, 3, 16, 16)
    prev = torch.backends.mha.get_fastpath_enabled()
    try:
        with torch.inference_mode():
            torch.backends.mha.set_fastpath_enabled(True)
            fast = net(x)
            torch.backends.mha.set_fastpath_enabled(False)
            slow = net(x)
    finally:
        torch.backends.mha.set_fastpath_enabled(prev)
    assert torch.allclose(fast, slow, atol=1e-5), (fast - slow).abs().max()


def test_bias_parameters_are_counted_in_parity():
    net = fcnprobe.create_model("attention", head="dense:4", width=16, image_size=32)
    heads = net.trunk.encoder.layers[0].self_attn.num_heads
    assert net.trunk.rel_bias.table.numel() == heads * (2 * LOCAL_BIAS_RADIUS + 1) ** 2
    assert math.isfinite(float(net.trunk.rel_bias.table.sum()))


def _trained_step(layer_cls, x, mask):
    """One training forward and backward of a two-layer encoder built from ``layer_cls``: output and grads."""
    torch.manual_seed(3)
    layer = layer_cls(8, 2, 16, dropout=0.0, batch_first=True, norm_first=True)
    enc = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).double().train()
    mask = mask.clone().requires_grad_()
    out = enc(x, mask=mask)
    out.square().sum().backward()
    return out.detach(), mask.grad, [p.grad for p in enc.parameters()]


def test_training_path_matches_the_sdpa_layer_and_gives_the_bias_its_gradient():
    from fcnprobe.models.attention import EncoderLayer

    torch.manual_seed(4)
    x = torch.randn(3, 9, 8, dtype=torch.float64)
    mask = attention_mask(RelativeBias(2, 2)(3, 3).detach().double(), 3)
    out, dmask, grads = _trained_step(EncoderLayer, x, mask)
    want, want_dmask, want_grads = _trained_step(torch.nn.TransformerEncoderLayer, x, mask)
    assert torch.allclose(out, want, atol=1e-12)
    assert dmask.abs().max() > 0 and torch.allclose(dmask, want_dmask, atol=1e-12)
    assert all(torch.allclose(g, w, atol=1e-12) for g, w in zip(grads, want_grads))


def test_training_takes_the_explicit_path_and_evaluation_the_sdpa_kernel(monkeypatch):
    from torch.nn import functional as F

    calls = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or sdpa(*a, **k))
    net = fcnprobe.create_model("attention", head="dense:4", width=16, image_size=16)
    x = torch.randn(2, 3, 16, 16)
    net.train()(x).sum().backward()
    assert calls == []  # no "safe softmax" pass over the map in training
    with torch.no_grad():
        net.eval()(x)
    assert len(calls) == len(net.trunk.encoder.layers)


def test_the_engine_chooses_the_training_path(monkeypatch):
    from torch.nn import functional as F

    from fcnprobe.tasks import create_task
    from fcnprobe.train import ENGINE, PLAIN, Run, TrainBudget

    calls = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or sdpa(*a, **k))
    task = create_task("global_cue", image_size=16)
    for options, want in ((ENGINE, 0), (PLAIN, 1)):
        net = fcnprobe.create_model("attention", head=task.head, width=16, image_size=16)
        calls.clear()
        Run(net, task.sample, lambda y, b: F.cross_entropy(y, b.targets),
            TrainBudget(2, 4), 1e-3, "cpu", 0, options).advance()
        assert all(layer.explicit_weights == options.explicit_attention for layer in net.trunk.encoder.layers)
        assert len(calls) == want * len(net.trunk.encoder.layers)
