"""Synthetic run directories for report tests: records written through the real store."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fcnprobe.results import Record, RunStore, safe_name

BINS_LO = [0, 4, 8, 12, 16, 24]
BINS_HI = [3, 7, 11, 15, 23, 31]
PROV = {"fcnprobe_version": "0.1.0", "git_sha": "abc", "device": "cpu", "device_name": "Test CPU",
        "torch": "2.13.0", "timestamp": "2026-01-01T00:00:00+00:00"}


def _rec(probe, model, task, metrics, i, status="ok", error=None, **params):
    return Record(probe, model, task, params, 0, safe_name(f"{probe}-{model}-{task}-{i}"), status=status, error=error,
                  metrics=metrics, provenance=PROV)


def cue(model, accs, trf, chance=0.5, i=0):
    radius = None if trf is None else (trf - 1) // 2
    return _rec("context", model, "global_cue",
                {"acc_by_dist_frac": accs, "dist_bin_lo_px": BINS_LO, "dist_bin_hi_px": BINS_HI,
                 "chance_frac": chance, "trf_px": trf, "trf_radius_px": radius, "acc_frac": float(np.mean(accs)),
                 "failure_dist_px": None}, i, head="dense:5", image_size=32)


def make_run(root: Path, records: list[Record], arrays: dict | None = None) -> Path:
    store = RunStore(root)
    from fcnprobe.models import model_catalog  # what the sweep stores: the report groups models by category

    store.write_manifest({"config": {"preset": "smoke"}, "provenance": PROV, "settings": {}, "models": model_catalog()})
    for rec in records:
        store.write_record(rec, (arrays or {}).get(rec.cell_id))
    return root


FCN_FAILS = [1.0, 0.98, 0.6, 0.52, 0.5, 0.5]
ALL_GOOD = [0.99, 0.98, 0.97, 0.97, 0.96, 0.96]


def contract(model, head, h, out_shape, ok=True, matches=True, error_type=None, i=0):
    return _rec("shape", model, "none",
                {"forward_ok": ok, "out_shape": out_shape, "target_shape": None,
                 "follows_input": (out_shape is not None and len(out_shape) == 4 and out_shape[-1] == h) if ok else None,
                 "matches_target": matches, "error_type": error_type,
                 "error_message": None}, i, head=head, height=h, width=h, variant="contract")


def error_record(model, message):
    return _rec("context", model, "global_cue", {}, 99, status="error", error=message)
