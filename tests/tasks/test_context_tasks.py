"""The context tasks: determinism, balance, stated distances, chance levels, paired held-out data.

Colours are decoded back from the images (nearest palette colour: the noise is
bounded by sqrt(3) * NOISE_STD < 1, half the gap between colours), so the
checks read what a model would see, not only the metadata.
"""
from __future__ import annotations

import pytest
import torch

from fcnprobe.tasks import create_task, list_tasks
from fcnprobe.tasks.context import CUE_SIZE, IGNORE_INDEX, NOISE_STD, PALETTE

CONTEXT_TASKS = {"global_cue": {}, "shift": {"distance": 5}, "same_different": {}}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _decode(inputs: torch.Tensor) -> torch.Tensor:
    """(B, H, W) index of the nearest palette colour at each pixel."""
    d = (inputs[:, None] - PALETTE[None, :, :, None, None]).abs().amax(2)  # (B, 8, H, W)
    return d.argmin(1)


def _is_colour(inputs: torch.Tensor) -> torch.Tensor:
    """(B, H, W) True where a pixel is a palette colour rather than background noise (|noise| < 0.5)."""
    return inputs.abs().amin(1) > 0.5


def test_registered():
    assert set(CONTEXT_TASKS) <= set(list_tasks())


@pytest.mark.parametrize("name", CONTEXT_TASKS)
def test_same_seed_same_batch_and_seeds_differ(name):
    task = create_task(name, image_size=16, **CONTEXT_TASKS[name])
    a, b, c = task.sample(64, _gen(0)), task.sample(64, _gen(0)), task.sample(64, _gen(1))
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert all(torch.equal(a.meta[k], b.meta[k]) for k in a.meta)
    assert not torch.equal(a.inputs, c.inputs)


@pytest.mark.parametrize("name", CONTEXT_TASKS)
def test_shapes_and_head(name):
    task = create_task(name, image_size=16, **CONTEXT_TASKS[name])
    batch = task.sample(8, _gen(0))
    assert batch.inputs.shape == (8, 3, 16, 16) and batch.inputs.dtype == torch.float32
    assert task.distances(batch).shape == batch.targets.shape
    assert task.head == ("vector:2" if name == "same_different" else f"dense:{task.num_outputs}")


def test_noise_has_the_stated_std():
    noise = create_task("shift", image_size=32, distance=0).sample(256, _gen(0)).inputs
    residual = noise - PALETTE[_decode(noise)].permute(0, 3, 1, 2)
    assert residual.std().item() == pytest.approx(NOISE_STD, rel=0.02)
    assert residual.abs().max().item() <= NOISE_STD * 3**0.5


def test_global_cue_labels_balanced_and_chance():
    task = create_task("global_cue", image_size=16)
    batch = task.sample(8000, _gen(0))
    label = batch.targets[:, 0, 0]
    assert (batch.targets == label.view(-1, 1, 1)).all()  # one label per image
    assert (label > 0).float().mean().item() == pytest.approx(0.5, abs=0.03)
    counts = torch.bincount(label[label > 0] - 1, minlength=task.classes).float()
    assert (counts / counts.sum() - 1 / task.classes).abs().max().item() < 0.03
    best_constant = torch.bincount(label).max().item() / len(label)
    assert task.chance == 0.5 and best_constant == pytest.approx(task.chance, abs=0.03)


def test_global_cue_target_is_where_and_what_meta_says():
    task = create_task("global_cue", image_size=16)
    batch = task.sample(200, _gen(3))
    colour = _decode(batch.inputs)
    dist = task.distances(batch)
    for i in range(200):
        box = dist[i] == 0
        assert box.sum() == CUE_SIZE**2
        m = batch.meta
        if m["present"][i]:
            assert (colour[i][box] == m["cls"][i]).all() and _is_colour(batch.inputs[i:i + 1])[0][box].all()
            assert batch.targets[i, 0, 0] == m["cls"][i] + 1
        else:
            assert batch.targets[i, 0, 0] == 0
        # no pixel outside the target has a class colour: distractors use the other colours
        outside = _is_colour(batch.inputs[i:i + 1])[0] & ~(box & m["present"][i])
        assert (colour[i][outside] >= task.classes).all()


def test_global_cue_distance_is_chebyshev_to_the_nearest_target_pixel():
    task = create_task("global_cue", image_size=12)
    batch = task.sample(20, _gen(5))
    dist = task.distances(batch)
    yy, xx = torch.meshgrid(torch.arange(12), torch.arange(12), indexing="ij")
    for i in range(20):
        y0, x0 = batch.meta["y0"][i].item(), batch.meta["x0"][i].item()
        pts = [(y0 + a, x0 + b) for a in range(CUE_SIZE) for b in range(CUE_SIZE)]
        brute = torch.stack([torch.maximum((yy - y).abs(), (xx - x).abs()) for y, x in pts]).amin(0)
        assert torch.equal(dist[i], brute)


def test_global_cue_heldout_pairs_differ_only_in_the_target():
    task = create_task("global_cue", image_size=16)
    batch = task.heldout(64, _gen(0))
    first, second = batch.inputs[:32], batch.inputs[32:]
    assert batch.meta["present"][:32].all() and not batch.meta["present"][32:].any()
    changed = (first != second).any(1)  # (32, H, W)
    assert torch.equal(changed, task.distances(batch)[:32] == 0)


def test_shift_label_is_the_colour_d_pixels_right_and_borders_masked():
    for d in (0, 3, 7):
        task = create_task("shift", image_size=12, distance=d)
        batch = task.sample(16, _gen(d))
        colour = _decode(batch.inputs)
        assert (batch.targets[:, :, 12 - d:] == IGNORE_INDEX).all()
        assert torch.equal(batch.targets[:, :, :12 - d], colour[:, :, d:])
        assert (task.distances(batch) == d).all()


def test_shift_classes_balanced_and_chance():
    task = create_task("shift", image_size=16, distance=2, classes=4)
    t = task.sample(500, _gen(0)).targets
    freq = torch.bincount(t[t != IGNORE_INDEX], minlength=4).float()
    assert task.chance == 0.25
    assert (freq / freq.sum() - 0.25).abs().max().item() < 0.01


def test_same_different_cues_labels_and_distances():
    task = create_task("same_different", image_size=16)
    batch = task.sample(4000, _gen(0))
    m, colour = batch.meta, _decode(batch.inputs)
    assert batch.targets.float().mean().item() == pytest.approx(0.5, abs=0.03)
    assert task.chance == 0.5 and task.pooled_ceiling == pytest.approx(9 / 14)
    centre = torch.maximum((m["y2"] - m["y1"]).abs(), (m["x2"] - m["x1"]).abs())
    assert torch.equal(centre, m["distance"]) and torch.equal(task.distances(batch), m["distance"])
    assert set(m["distance"].tolist()) == set(range(task.min_distance, task.max_distance + 1))
    for k in ("y1", "x1", "y2", "x2"):
        assert m[k].min() >= 0 and m[k].max() <= 16 - CUE_SIZE
    i = torch.arange(4000)
    assert torch.equal(colour[i, m["y1"] + 1, m["x1"] + 1], m["colour1"])  # cue centres
    assert torch.equal(colour[i, m["y2"] + 1, m["x2"] + 1], m["colour2"])
    assert torch.equal(batch.targets, (m["colour1"] == m["colour2"]).long())
    assert torch.equal(_is_colour(batch.inputs).sum((1, 2)), torch.full((4000,), 2 * CUE_SIZE**2))


def test_same_different_heldout_is_exactly_balanced_pairs():
    task = create_task("same_different", image_size=16)
    batch = task.heldout(100, _gen(1))
    assert batch.targets.tolist() == [1] * 50 + [0] * 50
    for k in ("distance", "y1", "x1", "y2", "x2", "colour1"):
        assert torch.equal(batch.meta[k][:50], batch.meta[k][50:])


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        create_task("shift", image_size=8, distance=8)
    with pytest.raises(ValueError):
        create_task("same_different", image_size=16, min_distance=2)
    with pytest.raises(ValueError):
        create_task("global_cue", image_size=16, classes=8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", CONTEXT_TASKS)
def test_generates_on_the_generators_device(name):
    task = create_task(name, image_size=16, **CONTEXT_TASKS[name])
    batch = task.heldout(8, torch.Generator(device="cuda").manual_seed(0))
    assert batch.inputs.is_cuda and batch.targets.is_cuda and all(v.is_cuda for v in batch.meta.values())
