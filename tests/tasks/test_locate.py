"""The locate task (CoordConv's Not-so-Clevr): 3,136 positions, disjoint and complete splits,
the quadrant rule, rendering and targets."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fcnprobe.analysis.shape import box_centre_px
from fcnprobe.errors import UsageError
from fcnprobe.models.adapters import decode_box
from fcnprobe.tasks import create_task


def _set(pos: torch.Tensor) -> set[tuple[int, int]]:
    return {tuple(p) for p in pos.tolist()}


@pytest.mark.parametrize("split", ["uniform", "quadrant"])
def test_splits_are_disjoint_and_complete(split):
    task = create_task("locate", split=split)
    every = _set(task.all_positions())
    train, test = _set(task.positions("train")), _set(task.positions("test"))
    assert len(every) == 3136 == 56 * 56
    assert every == {(x, y) for x in range(4, 60) for y in range(4, 60)}
    assert not train & test and train | test == every


def test_uniform_split_holds_out_a_seeded_quarter():
    a, b = create_task("locate"), create_task("locate")
    assert len(a.positions("test")) == 784 and len(a.positions("train")) == 2352
    assert torch.equal(a.positions("test"), b.positions("test"))
    other = create_task("locate", split_seed=1)
    assert not torch.equal(a.positions("test"), other.positions("test"))


def test_quadrant_split_holds_out_x_and_y_above_32():
    test = _set(create_task("locate", split="quadrant").positions("test"))
    assert test == {(x, y) for x in range(33, 60) for y in range(33, 60)}
    assert len(test) == 729


def test_render_gives_one_9x9_square_and_its_box():
    task = create_task("locate")
    centres = torch.tensor([[4, 4], [59, 59], [20, 33]])
    b = task.render(centres)
    assert b.inputs.shape == (3, 1, 64, 64) and b.targets.shape == (3, 4)
    assert b.inputs.sum((1, 2, 3)).tolist() == [81.0] * 3
    assert b.inputs[2, 0, 33, 20] == 1 and b.inputs[2, 0, 33, 25] == 0  # (row y, column x)
    torch.testing.assert_close(decode_box(b.inputs[:, 0] - 0.5), b.targets)  # box = the mask's extent
    np.testing.assert_allclose(box_centre_px(b.targets.numpy(), 64), centres.numpy())


@pytest.mark.parametrize("split", ["uniform", "quadrant"])
def test_sample_draws_train_positions_only_and_is_seeded(split):
    task = create_task("locate", split=split)
    b1 = task.sample(500, torch.Generator().manual_seed(3))
    b2 = task.sample(500, torch.Generator().manual_seed(3))
    assert torch.equal(b1.inputs, b2.inputs)
    assert _set(b1.meta["center"]) <= _set(task.positions("train"))
    held = task.sample(200, torch.Generator().manual_seed(3), part="test")
    assert _set(held.meta["center"]) <= _set(task.positions("test"))


def test_bad_split_is_a_usage_error():
    with pytest.raises(UsageError, match="uniform"):
        create_task("locate", split="diagonal")
