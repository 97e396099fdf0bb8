"""The ERF probe against closed forms, through the model registry, and end to end."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

import fcnprobe
from fcnprobe.analysis.erf import axis_std, support_box, trinomial_map, trinomial_variance
from fcnprobe.config import RunConfig
from fcnprobe.models import list_models
from fcnprobe.measure.erf import UnitModule, effective_receptive_field, gradient_maps
from fcnprobe.measure.erf import centre_unit as _centre_unit
from fcnprobe.measure.receptive import theoretical_receptive_field
from fcnprobe.measure.trf_graph import graph_receptive_field
from fcnprobe.measure.trf_numeric import numeric_receptive_field
from fcnprobe.probes.erf import QUICK, SMOKE, _untrained_head
from fcnprobe.results import Record, RunStore, load_run
from fcnprobe.sweep import run_sweep


def _stack(n: int, dilation: int = 1, stride: int = 1, channels: int = 1) -> nn.Sequential:
    """n linear 3x3 convs, no bias, float64, all-ones weights ('same' padding)."""
    net = nn.Sequential(*[nn.Conv2d(channels, channels, 3, stride=stride, padding=dilation,
                                    dilation=dilation, bias=False) for _ in range(n)]).double()
    for conv in net:
        nn.init.ones_(conv.weight)
    return net


def _x(n: int, size: int, channels: int = 1) -> torch.Tensor:
    return torch.randn(n, channels, size, size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.mark.parametrize("n", [1, 4, 12, 41])  # 9**41 overflows float32; the stack runs in float64
def test_all_ones_stack_variance_2n_over_3_and_support_2n_plus_1(n):
    res = effective_receptive_field(_stack(n), _x(2, 2 * n + 3))
    sy, sx = axis_std(res.erf_abs, res.centre)
    assert sy**2 == pytest.approx(2 * n / 3, rel=1e-6) and sx**2 == pytest.approx(2 * n / 3, rel=1e-6)
    y0, y1, x0, x1 = support_box(res.erf_abs)
    assert (y1 - y0 + 1, x1 - x0 + 1) == (2 * n + 1, 2 * n + 1)
    assert res.metrics["trf_px"] == res.metrics["trf_numeric_px"] == 2 * n + 1
    crop = res.erf_abs[y0:y1 + 1, x0:x1 + 1]
    np.testing.assert_allclose(crop / crop.sum(), trinomial_map(n) / trinomial_map(n).sum(), rtol=1e-9)


@pytest.mark.parametrize("n,d", [(3, 2), (4, 3)])
def test_dilated_stack_variance_2nd2_over_3_zero_off_grid(n, d):
    size = 2 * n * d + 3
    res = effective_receptive_field(_stack(n, dilation=d), _x(2, size))
    assert axis_std(res.erf_abs, res.centre)[0] ** 2 == pytest.approx(2 * n * d * d / 3, rel=1e-6)
    c = int(res.centre[0])
    off = (np.arange(size)[:, None] - c) % d != 0
    off = off | off.T  # a row or a column off the d-grid
    assert (res.erf_abs[off] == 0).all() and (res.erf_abs[~off] > 0).sum() == (2 * n + 1) ** 2
    assert res.metrics["trf_px"] == res.metrics["trf_numeric_px"] == 2 * n * d + 1


def test_three_stride2_convs_variance_14_trf_15():
    res = effective_receptive_field(_stack(3, stride=2), _x(2, 32))
    assert res.centre == (16.0, 16.0)  # unit (2, 2) of the 4x4 output sits at input pixel 8 * 2
    assert axis_std(res.erf_abs, res.centre)[1] ** 2 == pytest.approx(14.0, rel=1e-6)
    assert trinomial_variance(3, strides=[2, 2, 2]) == 14.0
    assert res.metrics["trf_px"] == res.metrics["trf_numeric_px"] == 15


def test_random_zero_mean_weights_mean_g2_is_trinomial():
    """E[g^2] over weight draws counts the paths to each pixel: the 2-D trinomial (Luo et al. 2016).

    ``draws`` independent single-channel chains run side by side as one grouped
    conv stack, so input channel m carries exactly the gradient of chain m.
    """
    n, draws, size = 3, 3000, 9
    torch.manual_seed(0)
    net = nn.Sequential(*[nn.Conv2d(draws, draws, 3, padding=1, groups=draws, bias=False)
                          for _ in range(n)])  # float32: torch's float64 grouped conv is ~60x slower
    for conv in net:
        nn.init.normal_(conv.weight)  # zero mean, i.i.d.
    x = _x(1, size, channels=draws).float().requires_grad_(True)
    unit, _ = _centre_unit(net, x)  # (1, draws)
    (g,) = torch.autograd.grad(unit.sum(), x)
    maps = g[0].double().pow(2).numpy()  # (draws, H, W): one g^2 map per weight draw
    np.testing.assert_allclose(gradient_maps(net, x.detach())[1], maps.sum(0), rtol=1e-6)  # signs square away
    mean, se = maps.mean(0), maps.std(0, ddof=1) / np.sqrt(draws)
    t = np.pad(trinomial_map(n), 1)
    inside = t > 0
    scale = (mean[inside] * t[inside]).sum() / (t[inside] ** 2).sum()
    z = (mean[inside] - scale * t[inside]) / se[inside]
    assert np.abs(z).max() < 4.5, f"max |z| = {np.abs(z).max():.2f}"
    assert (mean[~inside] == 0).all()
    t2 = t[inside] ** 2  # the same test rejects a wrong shape, e.g. the squared trinomial
    z2 = (mean[inside] - t2 * (mean[inside] * t2).sum() / (t2**2).sum()) / se[inside]
    assert np.abs(z2).max() > 10


def _size_for(name: str) -> int:
    """Build size that holds the whole TRF with a margin (global and fixed-size families: 32)."""
    size, model = 32, fcnprobe.create_model(name, head=_untrained_head(name))
    for _ in range(4):  # a fixed point: some encoder-decoders' centre field grows with the input
        trf = theoretical_receptive_field(model, size)
        if trf is None or trf + 16 <= size:
            break
        size = trf + 16
    return size


@pytest.mark.parametrize("name", list_models())
def test_trf_equals_numerical_support_for_every_family(name):
    size = _size_for(name)  # the input side; the model is built at its default size (depth-by-size families)
    torch.manual_seed(0)
    model = fcnprobe.create_model(name, head=_untrained_head(name), image_size=32 if name != "cnn_fc" else size)
    trf = theoretical_receptive_field(model, size)
    num = numeric_receptive_field(UnitModule(model), size)
    if trf is None:  # global: the support is the whole image
        assert num.clipped and num.side_px == size
    else:
        assert (num.side_px, num.clipped) == (trf, False)
    res = effective_receptive_field(model, torch.randn(2, 3, size, size))
    assert res.metrics["trf_check"] == "agree" and res.metrics["warnings"] == []
    assert ((res.erf_abs > 0) <= (res.support > 0)).all()  # the real ERF never leaves the TRF


_PRESET_CASES = [(n, s) for n in list_models() if not n.startswith("seed_")
                 for s in sorted({SMOKE.image_size, QUICK.image_size, 64} |
                                 ({QUICK.depth_image_size} if n in QUICK.depth_models else set()))]


@pytest.mark.parametrize("name,size", _PRESET_CASES)
def test_graph_trf_equals_analytic_for_every_zoo_model(name, size):
    """The probe's unit (dense output, else the trunk's last map) through the graph walk = ``receptive_field()``."""
    model = fcnprobe.create_model(name, head=_untrained_head(name), image_size=size)
    field = graph_receptive_field(UnitModule(model), size).field
    analytic = model.receptive_field(size)
    assert field.kind == ("global" if analytic is None else "finite"), field.reason
    assert field.side_px == analytic


def test_disagreement_is_a_recorded_warning(monkeypatch):
    """A numeric support that differs from the graph box is never silent."""
    import fcnprobe.measure.erf as erf_mod

    real = erf_mod.numeric_receptive_field
    monkeypatch.setattr(erf_mod, "numeric_receptive_field", lambda m, s: real(nn.Sequential(nn.Conv2d(1, 1, 1)), s))
    res = effective_receptive_field(_stack(2), _x(2, 16))
    assert res.metrics["trf_check"] == "disagree" and "disagree" in res.metrics["warnings"][0]
    assert res.metrics["trf_px"] == 5


def test_non_spatial_output_needs_a_layer_and_mode_is_restored():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).train()
    with pytest.raises(ValueError, match="layer"):
        effective_receptive_field(net, torch.randn(2, 3, 16, 16))
    res = effective_receptive_field(net, torch.randn(2, 3, 16, 16), layer="2")
    assert res.metrics["trf_px"] == 5 and res.metrics["trf_check"] == "agree" and net.training
    dict_net = _DictNet()
    assert effective_receptive_field(dict_net, torch.randn(2, 3, 16, 16), output="out").metrics["trf_px"] == 3


class _DictNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x):
        return {"aux": x.mean((2, 3)), "out": self.conv(x)}


def test_parameter_free_module():
    res = effective_receptive_field(nn.AvgPool2d(5, stride=1, padding=2), torch.randn(2, 3, 16, 16))
    assert res.metrics["trf_px"] == 5 and res.metrics["trf_check"] == "agree"


def _randomise_bn(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)


@pytest.mark.parametrize("name", ["fcn", "attention", "nonlocal"])
def test_batched_maps_equal_one_image_per_backward(name):
    torch.manual_seed(0)
    model = fcnprobe.create_model(name)
    _randomise_bn(model)
    x = torch.randn(6, 3, 32, 32)
    a_abs, a_sq, _ = gradient_maps(model, x, batch_size=6)
    b_abs, b_sq, _ = gradient_maps(model, x, batch_size=1)
    np.testing.assert_allclose(a_abs, b_abs, rtol=1e-5, atol=1e-7 * b_abs.max())
    np.testing.assert_allclose(a_sq, b_sq, rtol=1e-5, atol=1e-7 * b_sq.max())


def test_feature_unit_for_vector_heads():
    torch.manual_seed(0)
    m = fcnprobe.create_model("attention", head="vector:3")  # the 8x8 token map: unit (4, 4)
    res = effective_receptive_field(m, torch.randn(2, 3, 32, 32))
    assert res.centre == (17.5, 17.5) and res.metrics["trf_px"] is None
    assert res.metrics["erf_trf_ratio"] is None and res.metrics["trf_numeric_px"] == 32


def test_plan_covers_every_family_and_the_depth_sweep():
    from fcnprobe.probes import PROBES

    cells = PROBES.get("erf").cells(RunConfig(preset="quick"), PROBES.get("erf").settings("quick"))
    fam = {c.model for c in cells if c.p["sweep"] == "family" and not c.p["trained"]}
    assert fam == set(list_models())
    deep = {(c.model, c.p["depth"]) for c in cells if c.p["sweep"] == "depth"}
    assert deep == {(m, d) for m in ("fcn", "dilated") for d in (2, 4, 8, 16, 32)}
    assert all({"trained", "init", "depth", "sweep", "image_size"} <= set(c.p) for c in cells)
    assert len({c.cell_id for c in cells}) == len(cells)


def test_standard_plans_an_erf_per_trained_context_cell():
    from fcnprobe.probes import PROBES
    from fcnprobe.probes.context import SETTINGS as CONTEXT

    erf = PROBES.get("erf")
    std = erf.cells(RunConfig(preset="standard"), erf.settings("standard"))
    trained = {(c.model, c.task, c.seed) for c in std if c.p["trained"]}
    s = erf.settings("standard")
    want = {(m, t, seed) for m in CONTEXT["standard"].models for t in (s.train_task, *s.trained_tasks)
            for seed in s.trained_seeds}
    assert trained == want and len({c.cell_id for c in std}) == len(std)
    assert set(s.trained_tasks) <= set(CONTEXT["standard"].tasks)
    quick = erf.cells(RunConfig(preset="quick"), erf.settings("quick"))
    assert {(c.task, c.seed) for c in quick if c.p["trained"]} == {("global_cue", 0)}
    one = erf.cells(RunConfig(preset="standard", seeds=(5,)), s)  # --seeds wins
    assert {c.seed for c in one if c.p["trained"]} == {5}


def _fake_context_run(root) -> None:
    """A run holding one context record with fcn weights (width 8, depth 3) for global_cue."""
    store = RunStore(root)
    model = fcnprobe.create_model("fcn", head="dense:5", width=8, depth=3)
    rec = Record("context", "fcn", "global_cue", {"head": "dense:5", "image_size": 32, "width": 8, "depth": 3},
                 0, "context__fcn__global_cue__fake", metrics={"weights_file": "cells/ctx/weights.pt"})
    (store.root / "cells" / "ctx").mkdir(parents=True)
    torch.save(model.state_dict(), store.root / "cells" / "ctx" / "weights.pt")
    store.write_record(rec)


@pytest.mark.slow
def test_smoke_run_end_to_end_and_context_weights_reused(tmp_path):
    cfg = RunConfig(out=str(tmp_path / "a"), preset="smoke", workers=1, device="cpu", models=("fcn", "attention"))
    summary = run_sweep(["erf"], cfg, progress=False)
    assert summary.failed == 0 and summary.ok == 5  # 2 untrained, 1 trained, 2 depths
    df = load_run(cfg.out)
    for col in ("erf_std_px", "erf_std_x_px", "erf_std_y_px", "trf_px", "trf_numeric_px", "erf_trf_ratio",
                "hca_side_px_t99", "hca_log_area_frac_t20", "gauss_sigma_px", "gauss_resid_frac", "n_inputs"):
        assert col in df.columns, col
    trained = df[df.param_trained == True].iloc[0]  # noqa: E712
    assert trained.weights_source == "brief" and trained.weights_task == "global_cue"
    rec = next(r for r in RunStore(cfg.out).read_records() if r.model == "attention")
    assert RunStore(cfg.out).load_array(rec, "erf_sq").shape == (32, 32)

    _fake_context_run(tmp_path / "b")
    cfg_b = RunConfig(out=str(tmp_path / "b"), preset="smoke", workers=1, device="cpu", models=("fcn",),
                      tasks=("global_cue",))
    assert run_sweep(["erf"], cfg_b, progress=False).ok == 1
    row = load_run(cfg_b.out).query("probe == 'erf'").iloc[0]
    assert (row.weights_source, row.model_width, row.model_depth, row.trf_px) == ("context", 8, 3, 7)


def test_same_cell_same_numbers(tmp_path):
    from fcnprobe.probes import PROBES
    from fcnprobe.sweep import _context, execute_cell

    cfg = RunConfig(out=str(tmp_path), preset="smoke", workers=1, device="cpu", models=("fcn",), tasks=("noise",))
    cell = PROBES.get("erf").cells(cfg, PROBES.get("erf").settings("smoke"))[0]
    ctx = _context(cell, cfg, "cpu", RunStore(cfg.out))
    a, b = (execute_cell(cell, "fcnprobe.probes.erf", ctx)[0] for _ in range(2))
    assert a["status"] == "ok" and a["metrics"] == b["metrics"]
