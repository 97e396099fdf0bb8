"""Run the reduced learning-rate grid that produced the committed table (see README.md here).

The ``lrgrid`` preset's real grid (5 families x 5 tasks x 6 rates x 800 steps) was
estimated at ~2 h of one-core time on the 2-core box (~75-80 GFLOP/s sgemm), so this
script runs the same probe with fewer steps and the three context tasks only, one
single-threaded process per task (``workers=1``: the settings override lives in this
process; two threads per process on a box at load ~10 ran >5x slower), as it was run::

    M=fcn,cnn_fc,dilated,fcn_gap,attention
    for T in global_cue shift same_different; do
        PYTHONPATH=. OMP_NUM_THREADS=1 python reports/lr/reduced/run_reduced.py runs/lr_$T $M $T &
    done

then ``python reports/lr/publish.py NOTE runs/lr_*``. The records say what ran (steps, tasks), and the
table's ``reduced_because`` lists every way it falls short of the preset.
"""
import dataclasses
import sys

from fcnprobe.config import RunConfig
from fcnprobe.probes import lrgrid
from fcnprobe.sweep import run_sweep

STEPS = 150  # of the preset's 800: what fit ~25 min on the 2-core box shared with other sessions (load ~10)
VAL_SAMPLES = 256  # of the preset's 512

if __name__ == "__main__":
    out, models, tasks = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
    lrgrid.SETTINGS["lrgrid"] = dataclasses.replace(lrgrid.SETTINGS["lrgrid"], steps=STEPS,
                                                    val_samples=VAL_SAMPLES, tasks=lrgrid.CONTEXT_TASKS)
    cfg = RunConfig(out=out, preset="lrgrid", workers=1, threads=1, models=tuple(models),
                    tasks=() if tasks == "all" else tuple(tasks.split(",")))
    run_sweep(["lrgrid"], cfg, progress=False)
