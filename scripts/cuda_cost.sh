#!/usr/bin/env bash
# The cost probe's CUDA sweep (issue 6), as one prepared run of at most 8 minutes.
#
# Runs `fcnprobe.run cost --device cuda --preset full` (sides 32..2048, batch 1 and
# 32, counting/timing caps x100) into reports/cuda-<device>/ and writes
# summary.md there (the 64x64 table, MAC/time slopes, attention-vs-fcn crossover,
# roofline). The sweep is resumable: if the time budget cuts it, finished cells
# are kept and running this script again continues where it stopped.
#
# Usage (repo root, a CUDA build of torch, fcnprobe installed):
#   scripts/cuda_cost.sh                      # budget 450 s for the sweep
#   CUDA_COST_BUDGET_S=300 scripts/cuda_cost.sh --overwrite
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python

slug=$("$PY" -c '
import re, sys, torch
if not torch.cuda.is_available():
    sys.exit("cuda_cost.sh: torch %s sees no CUDA device" % torch.__version__)
print(re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(0).lower()).strip("-"))')
out="reports/cuda-${slug}"
budget=${CUDA_COST_BUDGET_S:-450}
models=(fcn fcn_encdec dilated cnn_fc fcn_gap attention nonlocal coordconv seed_simple_fcn)

echo "cost sweep on ${slug} -> ${out} (budget ${budget}s)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
status=0
# SIGINT lets the sweep stop cleanly (exit 130, finished records kept)
timeout --signal=INT --kill-after=30 "$budget" "$PY" -m fcnprobe.run cost --device cuda --preset full \
    --workers 1 --no-progress --out "$out" --models "${models[@]}" "$@" || status=$?
echo "sweep exit status: ${status} (0 ok, 1 some cells failed, 124/130 cut by the budget)"

"$PY" - "$out" <<'PYEOF'
import sys
from pathlib import Path
import pandas as pd
from fcnprobe.results import load_run
from fcnprobe.analysis.cost import cost_table, crossover_size, roofline_ceiling, scaling_slopes

out = Path(sys.argv[1])
df = load_run(out)
fwd = df[df.task == "forward"]
lines = [f"# cost probe on CUDA: {fwd.device_name.dropna().iloc[0] if len(fwd) else '?'}", "",
         f"records: {len(df)} ({(df.status != 'ok').sum()} errors); "
         f"tf32 cudnn={fwd.get('tf32_cudnn', pd.Series([None])).dropna().unique().tolist()} "
         f"matmul={fwd.get('tf32_matmul', pd.Series([None])).dropna().unique().tolist()}", "",
         "## 64x64 (batch 1; samples/s at the best batch)", "", "```",
         cost_table(df, 64).to_string(float_format=lambda v: f"{v:.4g}"), "```", "",
         "## log-log slope vs pixels", ""]
for metric in ("macs", "latency_ms_median", "peak_mem_mb"):
    lines.append(f"- {metric}: " + ", ".join(f"{k} {v:.3f}" for k, v in scaling_slopes(df, metric).items() if v))
for metric in ("macs", "latency_ms_median"):
    lines.append(f"- attention overtakes fcn ({metric}): {crossover_size(df, 'attention', 'fcn', metric)}")
agree = fwd.get("flops_agree", pd.Series(dtype=object)).dropna()
lines += ["", f"fvcore x2 == FlopCounterMode in {int((agree == True).sum())} of {len(agree)} counted cells"]  # noqa: E712
lines += ["", f"sgemm ceiling: {roofline_ceiling(df)} GFLOP/s; roofline_frac median "
          f"{fwd.roofline_frac.median() if 'roofline_frac' in fwd else None}"]
not_ok = fwd[fwd.forward_ok == False]  # noqa: E712
lines += ["", "## forwards that did not run", ""] + \
         [f"- {r.model} @{int(r.param_size)} b{int(r.param_batch)}: {r.error_message}" for r in not_ok.itertuples()]
(out / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PYEOF
exit "$status"
