"""Train one ``standard`` context cell on shift with a changed budget, rate, stop rule or
attention head count, and print its held-out accuracy: the experiment behind the
shift reading of attention at d = 3 (issue 13's resolution control). It showed the
plateau (attention without a relative-position bias left chance only after ~1,600
steps); ``models/attention.py`` says how the bias removed it.

    python scripts/shift_budget.py --model attention --distance 3 --steps 3000 --lr 3e-3 --no-early-stop
    python scripts/shift_budget.py --model attention --distance 3 --steps 3000 --lr 3e-3 --heads 4 --no-early-stop

One thread, seed 0 unless ``--seed``; deterministic on CPU. Prints one JSON line:
accuracy, steps taken, why training ended, training time, and the loss curve thinned
to ~15 points.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="attention")
    p.add_argument("--distance", type=float, default=3.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="maximum steps (default: the preset's)")
    p.add_argument("--lr", type=float, default=None, help="peak rate (default: fcnprobe.lr.learning_rate)")
    p.add_argument("--heads", type=int, default=None, help="attention heads (default: attention_heads(width))")
    p.add_argument("--no-early-stop", action="store_true", help="train every step")
    return p.parse_args(argv)


def _patch(args: argparse.Namespace) -> None:
    import fcnprobe.lr as lr
    import fcnprobe.models.attention as attention

    if args.heads is not None:
        attention.attention_heads = lambda width: args.heads
    if args.lr is not None:
        lr.learning_rate = lambda *a, **k: (args.lr, f"scripts/shift_budget.py --lr {args.lr:g}")


def main(argv: list[str]) -> int:
    import torch

    from fcnprobe.config import RunConfig
    from fcnprobe.probes import PROBES, CellContext
    from fcnprobe.sweep import execute_cell

    args = _args(argv)
    torch.set_num_threads(1)
    _patch(args)
    probe = PROBES.get("context")
    st = probe.settings("standard")
    st = dataclasses.replace(st, early_stop=st.early_stop and not args.no_early_stop)
    if args.steps:
        st = dataclasses.replace(st, steps_by_task=(("shift", args.steps),))
    plan = probe.plan(RunConfig(preset="standard", models=(args.model,), tasks=("shift",)))
    cells = [c for c in plan if c.p.get("distance") == args.distance and c.seed == args.seed]
    if not cells:
        print(f"error: no standard shift cell for {args.model} at d={args.distance:g}, seed {args.seed}",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        rec, _ = execute_cell(cells[0], type(probe).__module__, CellContext("cpu", "standard", st, Path(tmp),
                                                                             Path(tmp) / "cell"))
    m, curve = rec.get("metrics", {}), rec.get("metrics", {}).get("loss_curve") or []
    print(json.dumps({"model": args.model, "distance": args.distance, "seed": args.seed, "heads": args.heads,
                      "lr": m.get("lr"), "status": rec["status"], "error": rec.get("error"),
                      "acc": m.get("acc_frac"), "steps": m.get("stopped_at_step"), "stop": m.get("stop_reason"),
                      "train_s": m.get("train_time_s"),
                      "loss_curve": [round(v, 3) for v in curve[::max(1, len(curve) // 15)]]}))
    return 0 if rec["status"] == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
