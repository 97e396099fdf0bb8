"""The multi_output task: targets agree with what is drawn (findings, count, size, box)."""
from __future__ import annotations

import torch

from fcnprobe.models.adapters import decode_box
from fcnprobe.tasks import create_task
from fcnprobe.tasks.multi_output import LAYOUT, PALETTE


def _batch(n=64, seed=0):
    task = create_task("multi_output")
    return task, task.sample(n, torch.Generator().manual_seed(seed))


def test_shapes_ranges_and_determinism():
    task, b = _batch()
    assert b.inputs.shape == (64, 4, 32, 32) and b.targets.shape == (64, task.num_outputs) == (64, 10)
    assert torch.equal(b.inputs, _batch()[1].inputs)
    assert b.meta["count"].min() >= 1 and b.meta["count"].max() <= task.max_count
    assert b.meta["mean_side"].min() >= 2 and b.meta["mean_side"].max() <= task.max_side


def test_findings_are_the_colours_present():
    _, b = _batch()
    rgb = b.inputs[:, :3].permute(0, 2, 3, 1)  # (B, H, W, 3)
    for k, colour in enumerate(PALETTE):
        present = (rgb == torch.tensor(colour)).all(-1).flatten(1).any(1)
        assert torch.equal(present.float(), b.targets[:, LAYOUT["findings"]][:, k])


def test_count_and_mean_size_bound_the_coloured_area():
    task, b = _batch(256)
    area = (b.inputs[:, :3].amax(1) > 0).flatten(1).sum(1).float()  # squares never overlap
    count, side = b.meta["count"], b.meta["mean_side"]
    assert torch.all(area >= count * side**2 - 1e-3)  # sum of squares >= n * mean^2
    assert torch.all(area <= count * task.max_side**2)
    torch.testing.assert_close(b.targets[:, LAYOUT["params"]],
                               torch.stack([count / task.max_count, side / task.max_side], 1))


def test_box_is_the_structure_channel_extent():
    _, b = _batch()
    torch.testing.assert_close(decode_box(b.inputs[:, 3] - 0.5), b.targets[:, LAYOUT["box"]])


def test_chance_is_the_best_constant_per_label_accuracy():
    task = create_task("multi_output", image_size=32)
    batch = task.sample(20000, torch.Generator().manual_seed(3))
    present = batch.targets[:, LAYOUT["findings"]].float().mean()  # P(a kind is present)
    empirical = max(present.item(), 1 - present.item())
    assert abs(task.chance - empirical) < 0.01
