"""The context probe: distance binning, the exact TRF locality check, a tiny training run,
and a smoke-preset sweep producing records with the metric names the report reads."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from fcnprobe.analysis.context import (bin_accuracy, dense_bins, failure_distance, pooled_pair_ceiling,
                                       split_at_reach, uniform_bins)
from fcnprobe.config import RunConfig
from fcnprobe.models import MODELS, create_model, list_models, theoretical_receptive_field
from fcnprobe.probes.context import SETTINGS
from fcnprobe.results import RunStore
from fcnprobe.sweep import run_sweep
from fcnprobe.tasks import create_task

METRICS = ("acc_frac", "chance_frac", "acc_by_dist_frac", "dist_bin_lo_px", "dist_bin_hi_px", "trf_px",
           "trf_radius_px", "failure_dist_px", "params_count", "train_time_s", "final_loss", "loss_curve",
           "loss_steps", "weights_file", "reach_px", "count_by_dist")


# -- analysis helpers -----------------------------------------------------------------
@pytest.mark.parametrize("max_dist,step,fine", [(31, 2, 12), (63, 2, 12), (15, 1, 6), (5, 2, 12)])
def test_dense_bins_tile_the_range(max_dist, step, fine):
    lo, hi = dense_bins(max_dist, step, fine)
    assert lo[0] == 0 and hi[-1] == max_dist
    assert all(h >= l for l, h in zip(lo, hi)) and all(lo[i + 1] == hi[i] + 1 for i in range(len(lo) - 1))
    assert min(fine, max_dist) in hi  # the fine grid ends on a bin edge


def test_uniform_bins():
    assert uniform_bins(3, 13, 4) == ([3, 7, 11], [6, 10, 13])


def test_bin_accuracy_by_hand():
    correct = np.array([1, 0, 1, 1, 0, 1])
    dist = np.array([0, 0, 1, 2, 5, 9])
    valid = np.array([1, 1, 1, 1, 1, 0])
    acc, counts = bin_accuracy(correct, dist, [0, 1, 3, 9], [0, 2, 8, 9], valid)
    assert acc == [0.5, 1.0, 0.0, None] and counts == [2, 2, 1, 0]


def test_failure_distance_is_the_first_bin_below_the_midpoint():
    lo = [0, 1, 3, 5, 7]
    assert failure_distance([1.0, 0.9, None, 0.6, 0.2], lo, chance=0.25) == 5  # midpoint 0.625
    assert failure_distance([1.0, 0.9, 0.8], lo[:3], chance=0.5) is None
    assert failure_distance([0.74, 1.0], [3, 7], chance=0.5) == 3


@pytest.mark.parametrize("k", [2, 3, 4])
def test_pooled_pair_ceiling_matches_brute_force(k):
    """Every score u: colours -> {0..3} and threshold; 'same' iff u(a) + u(b) > t, pairs balanced."""
    import itertools

    same = np.eye(k, dtype=bool)
    best = 0.0
    for u in itertools.product(range(4), repeat=k):
        s = np.add.outer(u, u)
        for t in np.arange(-0.5, 7, 1.0):
            for pred in (s > t, s < t):
                acc = 0.5 * pred[same].mean() + 0.5 * (~pred[~same]).mean()
                best = max(best, acc)
    assert pooled_pair_ceiling(k) == pytest.approx(best)
    assert pooled_pair_ceiling(2) == 0.75 and pooled_pair_ceiling(8) == pytest.approx(9 / 14)


def test_split_at_reach():
    correct, dist = np.array([1, 1, 0, 0]), np.array([0, 6, 7, 20])
    assert split_at_reach(correct, dist, 6) == (1.0, 0.0)
    assert split_at_reach(correct, dist, None) == (0.5, None)


# -- exact locality: no training needed ------------------------------------------------
def _centred_local_models() -> list[str]:
    """Registered dense models with a finite TRF centred on the pixel: stride-1 convs only.

    A strided encoder-decoder's field has the TRF's size but sits off-centre
    (fcn_encdec at depth 6: rows -16..+12 around an even pixel), so a symmetric
    radius does not describe it; it is left out here.
    """
    out = []
    for name in (m for m in list_models() if "dense" in MODELS.meta(m)["native"]):
        model = create_model(name, head="dense:2")
        strides = {c.stride for c in model.modules() if isinstance(c, torch.nn.Conv2d)}
        if theoretical_receptive_field(model, 32) and strides == {(1, 1)}:
            out.append(name)
    return out


@pytest.mark.parametrize("name", _centred_local_models())
@pytest.mark.parametrize("depth", [2, 6])
def test_changes_beyond_the_trf_radius_never_reach_a_pixel(name, depth):
    torch.manual_seed(0)
    model = create_model(name, head="dense:3", width=4, depth=depth).eval()
    trf = theoretical_receptive_field(model, 32)
    r = (trf - 1) // 2
    yy, xx = torch.meshgrid(torch.arange(40), torch.arange(40), indexing="ij")
    x = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        base = model(x)
        for py, px in [(20, 20), (2, 37)]:
            cheb = torch.maximum((yy - py).abs(), (xx - px).abs())
            far = x + torch.randn_like(x) * (cheb > r)  # every pixel beyond r changes
            assert torch.equal(model(far)[0, :, py, px], base[0, :, py, px])
        ring = x + 10 * (cheb == r)  # only the pixels exactly at r: the field really is that big
        assert not torch.equal(model(ring)[0, :, py, px], base[0, :, py, px])


def test_beyond_reach_a_paired_global_cue_pixel_is_right_at_most_once():
    """Exact chance ceiling: both images of a pair look the same to a pixel beyond reach."""
    torch.manual_seed(0)
    task = create_task("global_cue", image_size=24)
    model = create_model("fcn", head=task.head, width=8, depth=3).eval()
    batch = task.heldout(64, torch.Generator().manual_seed(0))
    with torch.no_grad():
        correct = (model(batch.inputs).argmax(1) == batch.targets).int()  # (B, H, W)
    far = task.distances(batch)[:32] > task.reach(theoretical_receptive_field(model, 24))
    assert far.any() and ((correct[:32] + correct[32:])[far] <= 1).all()


# -- training and the sweep ------------------------------------------------------------
def test_tiny_training_run_learns_a_local_task():
    from fcnprobe.probes.context import _loss
    from fcnprobe.train import TrainBudget, predict, train

    task = create_task("shift", image_size=8, distance=0)  # the label is the pixel's own colour
    torch.manual_seed(0)
    model = create_model("fcn", head=task.head, image_size=8, width=8, depth=2)
    train(model, task.sample, _loss, TrainBudget(60, 16), lr=1e-2, device="cpu", seed=0)
    batch = task.sample(64, torch.Generator().manual_seed(1))
    acc = (predict(model, batch.inputs).argmax(1) == batch.targets).float().mean().item()
    assert acc > 0.95


def test_quick_preset_plans_shift_on_both_sides_of_the_fcn_radius():
    from fcnprobe.probes import PROBES

    quick = SETTINGS["quick"]
    cells = PROBES.get("context").cells(RunConfig(preset="quick", device="cpu"), quick)
    r = (theoretical_receptive_field(create_model("fcn", width=quick.width, depth=quick.depth), 32) - 1) // 2
    dists = {c.p["distance"] for c in cells if c.task == "shift"}
    assert min(dists) <= r < max(dists)
    assert {c.model for c in cells} == set(quick.models) and {c.task for c in cells} == set(quick.tasks)
    assert all({"head", "image_size", "width", "depth"} <= set(c.p) for c in cells)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ctx") / "run"
    cfg = RunConfig(out=str(out), device="cpu", preset="smoke", workers=1)
    summary = run_sweep(["context"], cfg, progress=False)
    return summary, RunStore(out)


def test_smoke_sweep_gives_ok_records_with_the_report_metrics(smoke_run):
    summary, store = smoke_run
    records = store.read_records()
    assert summary.failed == 0 and len(records) == len(summary.cells) > 0
    for rec in records:
        assert rec.ok and set(METRICS) <= set(rec.metrics), rec.error
        m = rec.metrics
        assert len(m["acc_by_dist_frac"]) == len(m["dist_bin_lo_px"]) == len(m["dist_bin_hi_px"])
        assert 0 <= m["acc_frac"] <= 1 and m["chance_frac"] == create_task(rec.task, **_task_kw(rec)).chance
        if rec.task == "shift":
            assert m["dist_bin_lo_px"] == m["dist_bin_hi_px"] == [rec.params["distance"]]


def _task_kw(rec) -> dict:
    kw = {"image_size": rec.params["image_size"]}
    return kw | ({"distance": rec.params["distance"]} if "distance" in rec.params else {})


def test_kept_weights_rebuild_the_trained_model(smoke_run):
    _, store = smoke_run
    rec = next(r for r in store.read_records() if r.model == "fcn" and r.task == "global_cue")
    p = rec.params
    model = create_model(rec.model, head=p["head"], image_size=p["image_size"], width=p["width"], depth=p["depth"])
    model.load_state_dict(torch.load(store.root / rec.metrics["weights_file"], weights_only=True))
    assert theoretical_receptive_field(model, p["image_size"]) == rec.metrics["trf_px"]


def test_same_cell_same_numbers(tmp_path):
    runs = []
    for name in "ab":
        cfg = RunConfig(out=str(tmp_path / name), device="cpu", preset="smoke", workers=1,
                        models=("fcn",), tasks=("shift",))
        run_sweep(["context"], cfg, progress=False)
        runs.append(RunStore(cfg.out).read_records()[0].metrics)
    assert runs[0]["acc_by_dist_frac"] == runs[1]["acc_by_dist_frac"]
    assert runs[0]["loss_curve"] == runs[1]["loss_curve"]


def test_settings_are_frozen_and_complete():
    for preset in ("smoke", "quick", "full"):
        s = SETTINGS[preset]
        with pytest.raises(dataclasses.FrozenInstanceError):
            s.steps = 1  # type: ignore[misc]
        assert s.steps > 0 and s.batch_size > 0 and s.eval_samples >= 2


# -- issue 15 additions ----------------------------------------------------------------
def test_standard_runs_three_seeds_and_a_covering_fcn():
    from fcnprobe.probes import PROBES

    std = SETTINGS["standard"]
    cells = PROBES.get("context").cells(RunConfig(preset="standard", device="cpu"), std)
    assert {c.seed for c in cells} == {0, 1, 2}
    user = PROBES.get("context").cells(RunConfig(preset="standard", device="cpu", seeds=(4,)), std)
    assert {c.seed for c in user} == {4}  # --seeds wins
    for preset in ("quick", "standard"):
        s = SETTINGS[preset]
        covering = [m for m in s.models if MODELS.meta(m)["category"] == "fcn" and
                    theoretical_receptive_field(create_model(m, width=s.width, depth=s.depth, image_size=32), 32)
                    >= 2 * 32]
        assert covering, preset
        assert {"same_different", "aligned_image"} <= set(s.tasks)


def test_records_carry_units_lr_source_and_convergence(smoke_run):
    _, store = smoke_run
    for rec in store.read_records():
        m = rec.metrics
        assert m["lr_source"] and m["stop_reason"] and "still_falling" in m
        assert m["task_level"] in ("pixel", "image") and isinstance(m["covers_task"], bool)
        units = np.load(store.root / rec.arrays["unit_acc_by_dist"])
        assert units.shape == (m["units_count"], len(m["dist_bin_lo_px"]))
        if rec.task in ("same_different", "aligned_image", "global_cue"):
            assert m["unit_kind"] == "pair" and m["units_count"] == SETTINGS["smoke"].eval_samples // 2


def test_standard_trains_the_real_layouts_at_64_px_and_quick_does_not():
    from fcnprobe.probes import PROBES
    from fcnprobe.probes.context import REAL_LAYOUTS, REAL_TASKS

    probe = PROBES.get("context")
    cells = probe.cells(RunConfig(preset="standard", device="cpu"), SETTINGS["standard"])
    real = [c for c in cells if c.model in REAL_LAYOUTS]
    assert {(c.model, c.task, c.seed) for c in real} == {(m, t, s) for m in REAL_LAYOUTS for t in REAL_TASKS
                                                       for s in (0, 1, 2)}
    assert {c.p["image_size"] for c in real} == {64} and {c.p["image_size"] for c in cells if c not in real} == {32}
    assert {"same_different_dense"} < set(REAL_TASKS)  # a pixel-level task beside the image-level ones
    quick = probe.cells(RunConfig(preset="quick", device="cpu"), SETTINGS["quick"])
    assert not {c.model for c in quick} & set(REAL_LAYOUTS)
    only = probe.cells(RunConfig(preset="standard", device="cpu", models=("segformer*",)), SETTINGS["standard"])
    assert {c.model for c in only} == {"segformer_b0_seg"} and {c.task for c in only} == set(REAL_TASKS)
