"""The relational tasks: labels read back from the pixels, paired held-out samples, distances, meta.

Colours are decoded from the images (nearest palette corner), so the checks read
what a model would see, not only the metadata.
"""
from __future__ import annotations

import pytest
import torch

import fcnprobe.tasks.relation  # noqa: F401  (registers the tasks until the lead adds it to _TASK_MODULES)
from fcnprobe.tasks import TASKS, create_task
from fcnprobe.tasks.context import CUE_SIZE, NOISE_STD, PALETTE
from fcnprobe.tasks.relation import BLUE, GREEN, RED

NAMES = ("left_of", "left_of_image", "aligned_image", "same_different_dense")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _decode(inputs: torch.Tensor) -> torch.Tensor:
    """(B, H, W) palette index at each pixel; -1 for background noise."""
    d = (inputs[:, None] - PALETTE[None, :, :, None, None]).abs().amax(2)  # (B, 8, H, W)
    return torch.where(inputs.abs().amin(1) > 0.5, d.argmin(1), -1)


def _centre_col(mask: torch.Tensor) -> torch.Tensor:
    """(B,) mean column of the True pixels of each (H, W) mask."""
    cols = torch.arange(mask.shape[-1]).view(1, 1, -1).float()
    return (mask * cols).sum((1, 2)) / mask.sum((1, 2))


@pytest.mark.parametrize("name", NAMES)
def test_registered_with_meta(name):
    meta = TASKS.meta(name)
    assert meta["level"] in ("pixel", "image") and meta["kind"] in ("dense", "vector")
    assert 0.5 <= meta["pooled_local_ceiling"] < 1
    task = create_task(name, image_size=16)
    assert task.head == f"{meta['kind']}:2" and task.chance == 0.5


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_seeds_differ(name):
    task = create_task(name, image_size=16)
    a, b, c = task.sample(32, _gen(0)), task.sample(32, _gen(0)), task.sample(32, _gen(1))
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.inputs, c.inputs)


@pytest.mark.parametrize("name", ["left_of", "left_of_image"])
def test_label_is_the_order_seen_in_the_pixels(name):
    task = create_task(name, image_size=20, distractors=2)
    batch = task.sample(256, _gen(2))
    colours = _decode(batch.inputs)
    red, blue = colours == RED, colours == BLUE
    assert (red.sum((1, 2)) == CUE_SIZE**2).all() and (blue.sum((1, 2)) == CUE_SIZE**2).all()  # never hidden
    assert (colours == GREEN).any()  # distractors are drawn
    corner = PALETTE[colours.clamp(min=0)].permute(0, 3, 1, 2)  # (B, 3, H, W)
    painted = (colours >= 0)[:, None]
    assert ((batch.inputs - corner).abs()[painted.expand_as(corner)] <= 3**0.5 * NOISE_STD + 1e-6).all()  # no paint on paint
    label = batch.targets if batch.targets.dim() == 1 else batch.targets[:, 0, 0]
    assert torch.equal(label, (_centre_col(red) < _centre_col(blue)).long())
    assert 0.4 < label.float().mean() < 0.6


@pytest.mark.parametrize("name", NAMES)
def test_heldout_pairs_flip_the_answer_and_balance_every_bin(name):
    task = create_task(name, image_size=16)
    batch = task.heldout(64, _gen(3))
    half = len(batch.targets) // 2
    first, second = batch.targets[:half], batch.targets[half:]
    assert torch.equal(first, 1 - second)  # same image, answer flipped
    assert torch.equal(task.distances(batch)[:half], task.distances(batch)[half:])  # same bins
    if name.startswith("left_of"):  # the pair is one image with its two colours swapped
        a, b = _decode(batch.inputs[:half]), _decode(batch.inputs[half:])
        swapped = torch.where(a == RED, BLUE, torch.where(a == BLUE, RED, a))
        assert torch.equal(swapped, b)


def test_image_distance_is_the_centre_distance_and_pixel_distance_the_farther_object():
    task = create_task("left_of_image", image_size=24, min_distance=5, max_distance=12)
    batch = task.sample(128, _gen(4))
    m = batch.meta
    cheb = torch.maximum((m["y2"] - m["y1"]).abs(), (m["x2"] - m["x1"]).abs())
    assert torch.equal(task.distances(batch), cheb) and cheb.min() >= 5 and cheb.max() <= 12
    assert (m["x2"] > m["x1"]).all()  # a strict left/right order: no ties
    dense = create_task("left_of", image_size=24)
    b = dense.sample(4, _gen(5))
    d = dense.distances(b)  # (B, H, W)
    y1, x1 = int(b.meta["y1"][0]), int(b.meta["x1"][0])
    assert d[0, y1 + 1, x1 + 1] == max(abs(int(b.meta["y2"][0]) - y1), abs(int(b.meta["x2"][0]) - x1)) - 1


def test_same_different_dense_broadcasts_the_image_answer():
    task = create_task("same_different_dense", image_size=16)
    batch = task.sample(32, _gen(6))
    assert batch.targets.shape == (32, 16, 16)
    same = (batch.meta["colour1"] == batch.meta["colour2"]).long()
    assert torch.equal(batch.targets, same.view(-1, 1, 1).expand(-1, 16, 16))


@pytest.mark.parametrize("kw", [{"min_distance": 2}, {"max_distance": 40}, {"distractors": -1}])
def test_bad_parameters_raise_one_line(kw):
    with pytest.raises(ValueError):
        create_task("left_of_image", image_size=16, **kw)


def test_aligned_label_is_the_row_equality_seen_in_the_pixels():
    task = create_task("aligned_image", image_size=16, distractors=2)
    batch = task.sample(256, _gen(7))
    colours = _decode(batch.inputs)
    rows = torch.arange(16).view(1, -1, 1).float()
    top = {c: ((colours == c) * rows).sum((1, 2)) / (colours == c).sum((1, 2)) for c in (RED, BLUE)}
    assert torch.equal(batch.targets, (top[RED] == top[BLUE]).long())
    assert torch.equal(task.distances(batch), (_centre_col(colours == RED) - _centre_col(colours == BLUE)).abs().long())
    different = batch.meta["y1"][batch.targets == 0] - batch.meta["y2"][batch.targets == 0]
    assert (different != 0).all() and different.abs().max() >= 10  # the other row is anywhere, not only near


def test_aligned_pairs_move_only_the_blue_object():
    task = create_task("aligned_image", image_size=16)
    batch = task.heldout(64, _gen(8))
    half = 32
    a, b = _decode(batch.inputs[:half]), _decode(batch.inputs[half:])
    assert torch.equal(a == RED, b == RED) and not torch.equal(a == BLUE, b == BLUE)
    assert torch.equal(batch.targets[:half], 1 - batch.targets[half:])
