"""Synthetic difficulty-probe records that a real run could produce, for the analysis and verdict tests.

Each design's validation (and held-out) score follows ``const + g * m(lr) * (1 - exp(-t / tau))``
in the metric's good direction: ``tau`` sets how fast it learns (steps to 90% of the
gain g is ``tau * ln 10``, in closed form), ``m(lr)`` how the gain falls off the
grid's best rate. Seeds jitter ``tau`` by ``tau_jitter`` (a fraction).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd

from fcnprobe.analysis.difficulty import OUTPUTS
from fcnprobe.report.data import RunData
from fcnprobe.results import Record

CONSTS = {"findings_acc_frac": 0.55, "count_mae": 1.3, "size_mae": 0.8, "box_iou_mean": 0.1}
LRS = (1e-3, 3e-3, 1e-2)


@dataclasses.dataclass(frozen=True)
class Design:
    model: str
    head: str
    tau: float | dict[str, float]  # steps; per output name when a dict
    gain_frac: float = 0.8  # fraction of the headroom learned at the best rate
    lr_mult: tuple[float, ...] = (1.0, 1.0, 1.0)  # gain multiplier per rate in LRS
    tau_jitter: float = 0.05
    deepsup: bool = False


def _curve(out, const: float, gain: float, tau: float, steps: np.ndarray) -> np.ndarray:
    sign = 1 if out.higher else -1
    return const + sign * gain * (1 - np.exp(-steps / tau))


def records(task: str, designs: list[Design], seeds: int = 3, budget: int = 400, every: int = 20) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    steps = np.arange(every, budget + 1, every)
    rows = []
    for d in designs:
        for seed in range(seeds):
            jitter = 1 + d.tau_jitter * rng.standard_normal()
            for lr, mult in zip(LRS, d.lr_mult):
                row = {"probe": "difficulty", "status": "ok", "model": d.model, "task": task, "seed": seed,
                       "param_head": d.head, "param_deepsup": d.deepsup, "param_lr": lr, "lr": lr,
                       "eval_steps": steps.tolist(),
                       "cell_id": f"{task}-{d.model}-{d.head}{'-ds' if d.deepsup else ''}-{seed}-{lr}",
                       "loss_steps": steps.tolist(), "loss_curve": np.exp(-steps / (100 * jitter)).tolist()}
                for out in OUTPUTS[task]:
                    const = CONSTS[out.metric]
                    room = abs(out.best - const)
                    tau = (d.tau[out.name] if isinstance(d.tau, dict) else d.tau) * jitter
                    gain = d.gain_frac * mult * room
                    curve = _curve(out, const, gain, tau, steps)
                    final = float(curve[-1])
                    beats = gain * (1 - math.exp(-budget / tau)) > 0.1 * room
                    row.update({f"{out.metric}_curve": curve.tolist(), out.metric: final,
                                f"{out.metric}_const": const, f"{out.metric}_val_const": const,
                                f"{out.metric}_beats": beats})
                rows.append(row)
    return pd.DataFrame(rows)


def run_of(df: pd.DataFrame) -> RunData:
    """A RunData over synthetic records; fcn is an FCN, cnn_fc and attention are not."""
    cats = {"fcn": {"category": "fcn"}, "cnn_fc": {"category": None}, "attention": {"category": None}}
    return RunData(Path("."), {"models": cats}, [], df)


def as_records(df: pd.DataFrame, provenance: dict) -> list[Record]:
    """The rows of ``records`` as store records (``param_*`` columns -> params, the rest -> metrics)."""
    out = []
    for row in df.to_dict("records"):
        params = {k[len("param_"):]: row.pop(k) for k in list(row) if k.startswith("param_")}
        ids = [row.pop(k) for k in ("probe", "model", "task", "seed", "cell_id", "status")]
        out.append(Record(*ids[:3], params, int(ids[3]), ids[4], metrics=row, provenance=provenance))
    return out
