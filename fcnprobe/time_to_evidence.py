"""Time to evidence: how much less training time a preset needs with the speed-ups in
force than with plain cell-by-cell training at the full budget, measured in one
session on a stratified sample of the preset's own training cells.

The two arms of every sampled cell, run back to back in the same worker process
(one torch thread), their order alternating from cell to cell so that a drift in
the machine's load falls on both alike:

* **as configured** -- the engine options in force (``fcnprobe.train.ENGINE``:
  channels-last, fused AdamW, attention's explicit path) and the preset's early-stop rule;
* **plain** -- ``train.PLAIN`` (NCHW, the for-each-parameter AdamW, the math SDPA
  attention kernel, no compile) and every step of the budget (``early_stop`` off).

Cells: every cell of the preset's training probes (``TRAINING_PROBES``) that trains
(task not ``none``), grouped into strata by (probe, model); ``per_stratum`` cells are
drawn from each stratum with a seeded generator. The estimate of each arm's total
for the whole preset is the stratified sum, sum over strata of N_s x the mean
time of the sampled cells; the speed-up is plain total / configured total, with a
95% interval from ``scipy.stats.bootstrap`` resampling cells within each stratum
(one sample per stratum). The time counted is the record's ``train_time_s``
(optimiser steps and validation, not the held-out evaluation); cell wall time is
stored beside it. Each pair also stores both arms' held-out score, so that what
early stopping cost in accuracy is measured, not assumed.

    $ python -m fcnprobe.time_to_evidence --preset standard --per-stratum 2 --out reports/speed/standard.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

TRAINING_PROBES = ("context", "difficulty", "shape")
ARMS = ("configured", "plain")
SCORES = ("acc_frac", "box_iou_mean", "findings_acc_frac", "final_loss")  # the first a record has is its score
BOOT_RESAMPLES = 2000


@dataclasses.dataclass(frozen=True)
class SpeedConfig:
    """What to sample and how to run it."""

    preset: str = "standard"
    per_stratum: int = 2  # cells drawn per (probe, model)
    seed: int = 0  # the sampling generator's seed
    workers: int = 2  # processes, one torch thread each
    probes: tuple[str, ...] = TRAINING_PROBES


def training_cells(cfg: SpeedConfig) -> list[Any]:
    """Every cell of the preset's training probes that trains."""
    from fcnprobe.config import RunConfig
    from fcnprobe.probes import PROBES  # importing the package registers every probe

    run = RunConfig(preset=cfg.preset)
    return [c for name in cfg.probes for c in PROBES.get(name).plan(run) if c.task != "none"]


def stratum(cell: Any) -> str:
    return f"{cell.probe}/{cell.model}"


def sample_cells(cells: Sequence[Any], per_stratum: int, seed: int) -> tuple[list[Any], dict[str, int]]:
    """``per_stratum`` cells drawn without replacement from each stratum, and each stratum's size."""
    groups: dict[str, list[Any]] = defaultdict(list)
    for c in cells:
        groups[stratum(c)].append(c)
    rng = np.random.default_rng(seed)
    chosen = []
    for key in sorted(groups):
        idx = rng.choice(len(groups[key]), size=min(per_stratum, len(groups[key])), replace=False)
        chosen += [groups[key][i] for i in sorted(idx)]
    return chosen, {k: len(v) for k, v in sorted(groups.items())}


def _settings(cell: Any, preset: str, arm: str) -> Any:
    """The probe's settings; the plain arm turns early stopping off where the probe has it."""
    from fcnprobe.probes import PROBES

    st = PROBES.get(cell.probe).settings(preset)
    if arm == "plain" and getattr(st, "early_stop", False):
        st = dataclasses.replace(st, early_stop=False)
    return st


def run_arm(cell: Any, preset: str, arm: str) -> dict[str, Any]:
    """Run one arm of one cell in this process; the record's timing, steps and score."""
    from fcnprobe.probes import PROBES, CellContext
    from fcnprobe.sweep import execute_cell
    from fcnprobe.train import ENGINE, PLAIN, use_engine

    module = type(PROBES.get(cell.probe)).__module__
    with tempfile.TemporaryDirectory() as tmp, use_engine(PLAIN if arm == "plain" else ENGINE):
        ctx = CellContext("cpu", preset, _settings(cell, preset, arm), Path(tmp), Path(tmp) / "cell")
        rec, _ = execute_cell(cell, module, ctx)
    m = rec.get("metrics", {})
    score = next((k for k in SCORES if isinstance(m.get(k), (int, float))), None)
    return {"status": rec["status"], "error": rec.get("error"), "train_time_s": m.get("train_time_s"),
            "wall_time_s": rec["wall_time_s"], "stopped_at_step": m.get("stopped_at_step"),
            "stop_reason": m.get("stop_reason"), "score_name": score, "score": m.get(score) if score else None}


def run_pair(cell: Any, preset: str, plain_first: bool) -> dict[str, Any]:
    """Both arms of ``cell``, back to back, in the given order."""
    import torch

    torch.set_num_threads(1)
    order = ("plain", "configured") if plain_first else ("configured", "plain")
    out = {arm: run_arm(cell, preset, arm) for arm in order}
    return {"cell_id": cell.cell_id, "stratum": stratum(cell), "probe": cell.probe, "model": cell.model,
            "task": cell.task, "seed": cell.seed, "params": dict(cell.params), "order": list(order),
            **{arm: out[arm] for arm in ARMS}}


def measure(cfg: SpeedConfig, cells: Sequence[Any], on_pair: Callable[[list], None] | None = None) -> list[dict]:
    """Run every sampled cell's pair on ``cfg.workers`` processes (spawned, one thread each), in the
    order they finish; ``on_pair`` sees the list after each one (to save it as it grows)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    jobs = [(c, cfg.preset, i % 2 == 0) for i, c in enumerate(cells)]
    pairs: list[dict] = []

    def done(pair: dict) -> None:
        pairs.append(pair)
        if on_pair is not None:
            on_pair(pairs)

    if cfg.workers <= 1:
        for job in jobs:
            done(run_pair(*job))
        return pairs
    with ProcessPoolExecutor(cfg.workers, mp_context=get_context("spawn")) as pool:
        for fut in as_completed([pool.submit(run_pair, *job) for job in jobs]):
            done(fut.result())
    return pairs


# -- the estimate (no torch) -----------------------------------------------------------------------------------

def stratified_totals(pairs: Sequence[dict], sizes: dict[str, int]) -> dict[str, float]:
    """Each arm's estimated total for the preset: sum over strata of N_s x the sampled mean."""
    by: dict[str, list[dict]] = defaultdict(list)
    for p in pairs:
        by[p["stratum"]].append(p)
    return {arm: float(sum(sizes[s] * np.mean([p[arm]["train_time_s"] for p in ps]) for s, ps in by.items()))
            for arm in ARMS}


def usable(pairs: Sequence[dict]) -> list[dict]:
    """Pairs whose two arms both ran and timed their training."""
    return [p for p in pairs if all(p[a]["status"] == "ok" and p[a]["train_time_s"] is not None for a in ARMS)]


def speedup_interval(pairs: Sequence[dict], sizes: dict[str, int], seed: int = 0) -> dict[str, Any]:
    """Plain total / configured total and its 95% stratified-bootstrap interval (percentile)."""
    from scipy import stats

    pairs = usable(pairs)
    keys = sorted({p["stratum"] for p in pairs})
    data = tuple(np.array([i for i, p in enumerate(pairs) if p["stratum"] == k], dtype=float) for k in keys)

    def ratio(*idx: np.ndarray) -> float:
        chosen = [pairs[int(i)] for ix in idx for i in ix]
        t = stratified_totals(chosen, sizes)
        return t["plain"] / t["configured"]

    point = ratio(*data)
    if all(len(d) < 2 for d in data):
        return {"speedup": point, "lo": None, "hi": None}
    res = stats.bootstrap(data, ratio, n_resamples=BOOT_RESAMPLES, vectorized=False, paired=False,
                          method="percentile", random_state=np.random.default_rng(seed))
    return {"speedup": point, "lo": float(res.confidence_interval.low), "hi": float(res.confidence_interval.high)}


def summarise(pairs: Sequence[dict], sizes: dict[str, int]) -> dict[str, Any]:
    """The estimate for the whole preset (over the strata measured so far), per probe, and the steps
    and scores of the two arms; no estimate while no cell has been timed in both arms."""
    ok = usable(pairs)
    if not ok:
        return {"pairs": len(pairs), "usable_pairs": 0, "cells_in_preset": int(sum(sizes.values())),
                "estimated_total_s": None, "speedup": None, "lo": None, "hi": None, "per_probe": {}}
    totals = stratified_totals(ok, sizes)
    per_probe = {}
    for probe in sorted({p["probe"] for p in ok}):
        sub = [p for p in ok if p["probe"] == probe]
        per_probe[probe] = {**stratified_totals(sub, sizes), **speedup_interval(sub, sizes)}
    steps = {arm: int(sum(p[arm]["stopped_at_step"] or 0 for p in ok)) for arm in ARMS}
    return {"pairs": len(pairs), "usable_pairs": len(ok), "cells_in_preset": int(sum(sizes.values())),
            "strata_measured": len({p["stratum"] for p in ok}), "strata": len(sizes),
            "estimated_total_s": totals, **speedup_interval(ok, sizes), "per_probe": per_probe,
            "sampled_steps": steps, "score_change": score_change(ok)}


def score_change(pairs: Sequence[dict]) -> dict[str, Any]:
    """Configured minus plain held-out accuracy over the sampled cells that score accuracy, with a t interval."""
    from fcnprobe.analysis.stats import t_interval

    diffs = [p["configured"]["score"] - p["plain"]["score"] for p in pairs
             if p["plain"]["score_name"] == "acc_frac" and p["configured"]["score"] is not None]
    if not diffs:
        return {"n": 0}
    ci = t_interval(diffs)
    bound = lambda v: float(v) if np.isfinite(v) else None  # noqa: E731  (one cell: no interval)
    return {"metric": "acc_frac", "n": len(diffs), "mean": float(np.mean(diffs)), "lo": bound(ci.lo),
            "hi": bound(ci.hi)}


# -- the command -------------------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    """The command: sample, measure, and keep the document up to date after every pair."""
    from fcnprobe.errors import UsageError

    a = _parser().parse_args(argv)
    try:
        if a.per_stratum < 1 or a.workers < 1:
            raise UsageError("--per-stratum and --workers must be >= 1")
        cfg = SpeedConfig(a.preset, a.per_stratum, a.seed, a.workers)
        cells, sizes = sample_cells(training_cells(cfg), cfg.per_stratum, cfg.seed)
    except UsageError as exc:
        print(f"fcnprobe: error: {exc}", file=sys.stderr)
        return 2
    command = "python -m fcnprobe.time_to_evidence " + " ".join(sys.argv[1:] if argv is None else argv)
    head = {"config": dataclasses.asdict(cfg), "command": command, "strata": sizes, "provenance": _provenance()}
    start, out, measured = time.time(), Path(a.out), []

    def save(pairs: list, complete: bool | None = None) -> None:
        """The pairs so far after each one (no summary: its bootstrap would take CPU from the timed workers),
        and the summary once at the end or on Ctrl-C."""
        measured[:] = pairs
        summary = None if complete is None else summarise(pairs, sizes)
        _save(out, {**head, "complete": bool(complete), "wall_s": time.time() - start, "summary": summary,
                    "cells": pairs})

    try:
        try:
            save(measure(cfg, cells, on_pair=save), complete=True)
        except KeyboardInterrupt:
            save(list(measured), complete=False)
            print(f"fcnprobe: interrupted; {out} keeps the pairs measured so far", file=sys.stderr)
            return 130
    except OSError as exc:
        print(f"fcnprobe: error: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(summary_text(json.loads(out.read_text())))
    return 0


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m fcnprobe.time_to_evidence", description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="standard")
    ap.add_argument("--per-stratum", type=int, default=2, help="cells drawn per (probe, model)")
    ap.add_argument("--seed", type=int, default=0, help="the sampling generator's seed")
    ap.add_argument("--workers", type=int, default=2, help="processes, one torch thread each")
    ap.add_argument("--out", required=True, help="the JSON file to write (rewritten after every pair)")
    return ap


def _save(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` atomically: an interrupted write never leaves a truncated file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=str))
    os.replace(tmp, path)


def summary_text(doc: dict[str, Any]) -> str:
    """A Markdown table of the estimate: the preset's total per arm, the speed-up with its interval, per probe."""
    s, rate = doc["summary"], doc["provenance"].get("sgemm_gflops_1thread")
    if s["estimated_total_s"] is None:
        return f"no cell was timed in both arms ({s['pairs']} tried); see the error of each arm in 'cells'"
    rows = [("all training probes", s["estimated_total_s"], s)] + [(k, v, v) for k, v in s["per_probe"].items()]
    out = [f"{s['usable_pairs']} of {s['pairs']} sampled cells (of {s['cells_in_preset']}) timed in both arms"
           f"{'' if doc.get('complete', True) else ' (interrupted: a partial sample)'}; "
           f"{doc['wall_s'] / 60:.0f} min wall, one-thread sgemm {rate:.0f} GFLOP/s.", "",
           "| training | plain, est. total (s) | as configured (s) | speed-up [95% interval] |", "|---|---|---|---|"]
    for name, totals, est in rows:
        out.append(f"| {name} | {totals['plain']:,.0f} | {totals['configured']:,.0f} | {_interval(est)} |")
    sc = s["score_change"]
    if sc.get("n"):
        out += ["", f"Held-out accuracy, as configured minus plain, over {sc['n']} sampled cells: "
                f"{sc['mean']:+.3f} [{_num(sc['lo'])}, {_num(sc['hi'])}]."]
    return "\n".join(out)


def _interval(est: dict[str, Any]) -> str:
    if est.get("lo") is None:
        return f"{est['speedup']:.2f}× (no interval: one cell per stratum)"
    return f"{est['speedup']:.2f}× [{est['lo']:.2f}, {est['hi']:.2f}]"


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.3f}"


def _provenance() -> dict[str, Any]:
    """Git commit, torch, and the machine's one-thread sgemm rate (the cost probe's roofline matmul)."""
    import torch

    from fcnprobe import provenance
    from fcnprobe.measure.timing import TimingConfig, gemm_gflops
    from fcnprobe.train import ENGINE, PLAIN

    torch.set_num_threads(1)
    return {**provenance.collect("cpu"), "sgemm_gflops_1thread": gemm_gflops(512, TimingConfig()),
            "engine": dataclasses.asdict(ENGINE), "plain": dataclasses.asdict(PLAIN)}


if __name__ == "__main__":
    raise SystemExit(main())
