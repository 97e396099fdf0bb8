"""Checks before a sweep touches a run directory: filters that select cells, a usable
``--out``, and settings that match the ones the directory was made with.

* A ``--tasks`` or ``--models`` glob that selects no cell of the probes being run
  is a ``UsageError`` with did-you-mean (lm-eval's unknown-task message).
* ``--out`` must be a directory this process can write.
* A run directory remembers its preset, each probe's settings and each probe's
  ``version`` in ``manifest.json``. A sweep with another preset, other settings
  or another version is refused with one line naming the difference, unless
  ``overwrite``: then the old records of what differs are removed first, so the
  report never shows two settings under one title. ``--seeds``, ``--models`` and
  ``--model`` only add or select cells, so they never count as a difference.
"""
from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import os
from pathlib import Path
from typing import Any

from fcnprobe.config import RunConfig
from fcnprobe.errors import UsageError
from fcnprobe.probes.base import PROBES, Cell
from fcnprobe.results import RunStore


def check_filters(probe_names: list[str], cfg: RunConfig, cells: list[Cell]) -> None:
    """UsageError when a --tasks glob (or the whole selection) matches no cell of these probes."""
    if cfg.tasks:
        every = {c.task for name in probe_names
                 for c in PROBES.get(name).plan(dataclasses.replace(cfg, tasks=()))}
        every |= {v for name in probe_names for v in PROBES.get(name).variants}  # --tasks also names variants
        for pat in cfg.tasks:
            if not any(fnmatch.fnmatchcase(t, pat) for t in every):
                close = difflib.get_close_matches(pat, sorted(every), n=2, cutoff=0.5)
                hint = f"; did you mean {' or '.join(close)}?" if close else ""
                raise UsageError(f"--tasks '{pat}' matches no task of {', '.join(probe_names)}{hint} "
                                 f"available: {', '.join(sorted(every))}")
    if not cells:
        what = " ".join(f"{flag} {' '.join(v)}" for flag, v in (("--models", cfg.models), ("--tasks", cfg.tasks)) if v)
        raise UsageError(f"no cells to run for {', '.join(probe_names)}" + (f" with {what}" if what else ""))


def check_out(out: str | os.PathLike) -> Path:
    """The run directory, created; UsageError naming the path when it cannot be one."""
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise UsageError(f"--out {root} is an existing file, not a directory")
    try:
        (root / "cells").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create run directory {root}: {exc.strerror or exc}") from None
    if not os.access(root, os.W_OK):
        raise UsageError(f"cannot write to run directory {root}: permission denied or read-only")
    return root


def settings_dict(settings: Any) -> Any:
    return dataclasses.asdict(settings) if dataclasses.is_dataclass(settings) else settings


def _first_difference(old: Any, new: Any) -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return f"{key} {old.get(key)!r} -> {new.get(key)!r}"
    return f"{old!r} -> {new!r}"


def differences(manifest: dict[str, Any], cfg: RunConfig, probe_names: list[str]) -> tuple[list[str], set[str]]:
    """(one line per difference, the probes it concerns); all probes in the directory if the preset differs."""
    old_preset = manifest.get("config", {}).get("preset")
    if old_preset and old_preset != cfg.preset:
        return [f"it was made with --preset {old_preset}, not {cfg.preset}"], set(manifest.get("probes", []))
    lines, probes = [], set()
    for name in probe_names:
        probe = PROBES.get(name)
        old_s = manifest.get("settings", {}).get(name)
        new_s = settings_dict(probe.settings(cfg.preset))
        if name in manifest.get("settings", {}) and _jsonish(old_s) != _jsonish(new_s):
            lines.append(f"{name} settings differ: {_first_difference(_jsonish(old_s), _jsonish(new_s))}")
            probes.add(name)
        old_v = manifest.get("versions", {}).get(name)
        if old_v is not None and old_v != probe.version:
            lines.append(f"{name} probe version {old_v} -> {probe.version}")
            probes.add(name)
    return lines, probes


def _jsonish(obj: Any) -> Any:
    """Tuples as lists, as they come back from manifest.json."""
    import json

    return json.loads(json.dumps(obj, default=str))


def check_compatible(store: RunStore, cfg: RunConfig, probe_names: list[str]) -> tuple[list[str], set[str]]:
    """Refuse a directory made with other settings, or (``overwrite``) clear what differs.

    Returns (notes for the user, the probes whose old records were removed).
    """
    lines, probes = differences(store.read_manifest(), cfg, probe_names)
    if not lines:
        return [], set()
    if not cfg.overwrite:
        raise UsageError(f"{store.root} holds another run: {lines[0]}; use another --out, "
                         "or --overwrite to replace it")
    removed = store.remove_records(probes)
    return [f"--overwrite: removed {removed} records made with other settings ({lines[0]})"], probes
