"""Pooled-local ceilings checked by brute force (enumeration) and by simulation.

* left_of: grouping every placement by its bag of window views gives exactly
  1/2 on an infinite plane, and more with zero padding (the border leak), which
  the fast edge-class formula reproduces exactly.
* same_different: the best threshold rule over a grid of local scores matches
  the closed forms (symmetric 9/14-type and asymmetric 3/4).
* a trained pool + linear readout of random local features on real task samples
  stays at or below the bound.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from fcnprobe.analysis.ceilings import (ALIGNED_PADDED_CEILING, asymmetric_pair_ceiling, bag_ceiling, bordered_bag_ceiling,
                                        same_different_ceiling, view_ceiling)
from fcnprobe.measure.hierarchy import linear_probe_accuracy
from fcnprobe.tasks import TASKS, create_task
import fcnprobe.tasks.relation  # noqa: F401  (registers left_of_image)


@pytest.mark.parametrize("size,radius", [(10, 1), (14, 1), (16, 2)])
def test_left_of_pooled_ceiling_is_one_half_without_borders(size, radius):
    assert bag_ceiling(size, radius, borders=False) == 0.5


@pytest.mark.parametrize("size,radius", [(10, 1), (12, 1), (14, 2), (16, 2)])
def test_padding_leaks_the_order_and_the_fast_formula_is_exact(size, radius):
    exact = bag_ceiling(size, radius, borders=True)
    assert exact > 0.75  # the enumeration can see information when there is some
    assert bordered_bag_ceiling(size, radius) == pytest.approx(exact, abs=1e-12)


def test_bordered_leak_grows_with_the_window_at_the_default_size():
    c = [bordered_bag_ceiling(32, r) for r in (1, 3, 6)]
    assert 0.5 < c[0] < c[1] < c[2] <= 1.0 and c[2] > 0.95  # fcn's TRF 13 (R = 6) reads the order off the edges


def test_pixel_view_ceiling_is_near_one_half_only_without_borders():
    free, padded = view_ceiling(10, 1, borders=False), view_ceiling(10, 1, borders=True)
    assert 0.5 <= free < 0.52 < padded


def _best_threshold_rule(k: int, levels: int, symmetric: bool) -> float:
    """Brute force: best balanced accuracy of u(a) + v(b) > t over integer scores in [0, levels)."""
    scores = np.array(list(itertools.product(range(levels), repeat=k)))  # (S, K)
    same = np.eye(k, dtype=bool)
    best = 0.0
    for u in scores:
        vs = u[None] if symmetric else scores
        sums = u[None, :, None] + vs[:, None, :]  # (V, K, K)
        for t in np.arange(-0.5, 2 * levels - 1):
            acc_same = (sums > t)[:, same].mean(1)
            acc_diff = (sums <= t)[:, ~same].mean(1)
            best = max(best, float((0.5 * (acc_same + acc_diff)).max()))
    return best


@pytest.mark.parametrize("k", [2, 3, 4])
def test_symmetric_pair_ceiling_by_brute_force(k):
    assert _best_threshold_rule(k, levels=3, symmetric=True) == pytest.approx(same_different_ceiling(k))


@pytest.mark.parametrize("k", [2, 3])
def test_asymmetric_pair_ceiling_by_brute_force(k):
    assert _best_threshold_rule(k, levels=k + 1, symmetric=False) == pytest.approx(asymmetric_pair_ceiling(k))


def _pooled_random_features(images: torch.Tensor, seed: int, padding_mode: str) -> np.ndarray:
    """Global average of 64 random ReLU features of 3x3 windows: a pooled-local model."""
    conv = torch.nn.Conv2d(3, 64, 3, padding=1, padding_mode=padding_mode)
    torch.manual_seed(seed)
    torch.nn.init.normal_(conv.weight)
    with torch.no_grad():
        return torch.relu(conv(images)).mean((-2, -1)).double().numpy()


def _pooled_linear_accuracy(task_name: str, padding_mode: str, **kw) -> tuple[float, float]:
    # 5 > reach 4 of a 3x3 window; 9 keeps the wrapped distance 16 - 9 > 4 under circular padding
    task = create_task(task_name, image_size=16, min_distance=5, max_distance=9, **kw)
    train, test = task.sample(3000, torch.Generator().manual_seed(0)), task.heldout(1000, torch.Generator().manual_seed(1))
    xtr = _pooled_random_features(train.inputs, 0, padding_mode)
    xte = _pooled_random_features(test.inputs, 0, padding_mode)
    acc = linear_probe_accuracy(xtr, train.targets, xte, test.targets)
    return acc, (acc * (1 - acc) / len(test.targets)) ** 0.5


def test_trained_pool_and_linear_readout_stays_below_the_same_different_bound():
    acc, se = _pooled_linear_accuracy("same_different", "zeros", classes=4)
    assert acc <= asymmetric_pair_ceiling(4) + 3 * se  # least squares even stays near 1/2: the best
    # threshold rule (accept when both cues are in one colour set) is not monotone in the pooled counts


def test_trained_pool_and_linear_readout_is_at_chance_on_left_of_only_without_borders():
    acc, se = _pooled_linear_accuracy("left_of_image", "circular", distractors=0)
    assert abs(acc - 0.5) <= 3 * se + 0.02  # circular padding: no edge to read position from
    leaked, se = _pooled_linear_accuracy("left_of_image", "zeros", distractors=0)
    assert leaked > 0.5 + 3 * se  # zero padding: the same readout learns the order from the edges


def test_trained_pool_and_linear_readout_on_aligned_stays_below_its_padded_ceiling():
    padded, se = _pooled_linear_accuracy("aligned_image", "zeros", distractors=0)
    assert padded <= ALIGNED_PADDED_CEILING + 3 * se
    free, se = _pooled_linear_accuracy("aligned_image", "circular", distractors=0)
    assert abs(free - 0.5) <= 3 * se + 0.02


def test_every_relation_task_states_both_ceilings_below_one_where_it_can_enter_a_verdict():
    for name in ("left_of", "left_of_image", "aligned_image", "same_different_dense"):
        meta = TASKS.meta(name)
        assert meta["pooled_local_ceiling"] < 1 and 0.5 <= meta["padded_ceiling"] <= 1
    assert TASKS.meta("aligned_image")["padded_ceiling"] == asymmetric_pair_ceiling(14)
