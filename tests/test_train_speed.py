"""The throughput helpers: the training-MAC convention against the conv closed form,
and the interleaved timer against sleeps of known length."""
from __future__ import annotations

import time

import pytest

from fcnprobe.train_speed import TRAIN_MAC_FACTOR, TrainShape, interleaved, make_step, ratio, train_macs_per_sample

TINY = TrainShape(image_size=8, width=8, batch_size=2, task="global_cue", depth=2)


def test_train_macs_are_three_forwards_per_sample():
    s, w, k = TINY.image_size, TINY.width, 5  # global_cue has 5 classes
    conv = s * s * (3 * w * 9 + w * w * 9 + w * k)  # 3x3 3->w, 3x3 w->w, 1x1 head, per sample
    # MACs count conv/linear/matmul/attention only (fcnprobe.measure.flops): batch norm is in other_flops
    assert train_macs_per_sample("fcn", TINY) == TRAIN_MAC_FACTOR * conv


def test_interleaved_timer_recovers_known_ratio():
    st = interleaved({"fast": lambda: time.sleep(0.002), "slow": lambda: time.sleep(0.006)},
                     reps=3, block_s=0.02, samples={"fast": 1, "slow": 1})
    assert ratio(st, "fast", "slow") == pytest.approx(3.0, rel=0.35)
    assert st["fast"]["reps"] == 3 and st["fast"]["s_per_call_iqr"] >= 0


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_group_step_runs(strategy):
    make_step("fcn", TINY, group=2, strategy=strategy)()
