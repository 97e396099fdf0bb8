"""Task semantics the context probe and the verdicts read from ``TASKS.meta``: level, ceilings, controls."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from fcnprobe.analysis.ceilings import asymmetric_pair_ceiling
from fcnprobe.models import create_model, theoretical_receptive_field
from fcnprobe.probes.context import SETTINGS
from fcnprobe.tasks import TASKS, create_task

CONTEXT_TASKS = ("global_cue", "shift", "same_different", "aligned_image", "left_of_image", "left_of",
                 "same_different_dense")


@pytest.mark.parametrize("name", CONTEXT_TASKS)
def test_context_tasks_declare_level_and_ceilings(name):
    meta = TASKS.meta(name)
    assert meta["level"] in ("pixel", "image")
    assert {"pooled_local_ceiling", "padded_ceiling"} <= set(meta)
    assert meta["level"] == ("image" if create_task(name, image_size=16).kind == "vector" else "pixel")


def test_verdict_tasks_are_exactly_those_with_a_ceiling_below_one():
    verdict = {n for n in CONTEXT_TASKS if (TASKS.meta(n)["padded_ceiling"] or 1) < 1 and not TASKS.meta(n).get("control")}
    assert verdict == {"aligned_image", "same_different", "same_different_dense"}


def test_same_different_padded_ceiling_by_brute_force():
    """Best balanced accuracy of 'same iff u(a) + v(b) > t' over small integer scores, K = 3: 3/4."""
    k, best = 3, 0.0
    same = np.eye(k, dtype=bool)
    for u in itertools.product(range(3), repeat=k):
        for v in itertools.product(range(3), repeat=k):
            s = np.add.outer(u, v)
            for t in np.arange(-0.5, 5, 1.0):
                pred = s > t
                best = max(best, 0.5 * pred[same].mean() + 0.5 * (~pred[~same]).mean())
    assert best == pytest.approx(asymmetric_pair_ceiling(k)) == pytest.approx(0.75)
    assert TASKS.meta("same_different")["padded_ceiling"] == asymmetric_pair_ceiling(8)


def test_same_different_dense_pixel_beyond_reach_is_right_at_most_once_per_pair():
    """Where the pixel sees only the shared first cue (or none), both images of a pair look the same to it.

    (A pixel that sees only the second cue sees two colours across the pair; there the ceiling 1/2 holds in
    expectation, since the other colour is a fair coin, not per pair.)"""
    from fcnprobe.tasks.context import CUE_SIZE, chebyshev_to_box

    torch.manual_seed(0)
    task = create_task("same_different_dense", image_size=24)
    model = create_model("fcn", head=task.head, width=8, depth=2).eval()
    batch = task.heldout(64, torch.Generator().manual_seed(0))
    with torch.no_grad():
        correct = (model(batch.inputs).argmax(1) == batch.targets).int()  # (B, H, W)
    reach = task.reach(theoretical_receptive_field(model, 24))
    m = batch.meta
    second = chebyshev_to_box(m["y2"], m["x2"], CUE_SIZE, 24, 24)[:32]
    far = (task.distances(batch)[:32] > reach) & (second > (theoretical_receptive_field(model, 24) - 1) // 2)
    assert far.any() and ((correct[:32] + correct[32:])[far] <= 1).all()


@pytest.mark.parametrize("preset", ["smoke", "quick", "standard", "full"])
def test_shift_has_the_resolution_control_in_every_preset(preset):
    assert 0 in SETTINGS[preset].shift_distances


def test_shift_d0_copies_the_pixel_itself():
    task = create_task("shift", image_size=8, distance=0)
    batch = task.sample(4, torch.Generator().manual_seed(0))
    assert (batch.targets >= 0).all()  # nothing masked at d = 0
