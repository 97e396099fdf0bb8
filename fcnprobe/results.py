"""Typed result records and the run directory that stores them.

Layout of a run directory ``OUT/``::

    manifest.json              resolved config, probe settings, provenance
    cells/<cell_id>.json       one Record per cell, written atomically
    cells/<cell_id>/<name>.npy arrays of that cell (maps); never pickled
    cells/<cell_id>/...        other artifacts a probe keeps (e.g. weights.pt)
    records.csv                derived table, one row per record (and .parquet
                               when pyarrow is installed)

Like mteb's results, a failure is a record too (``status="error"``), and every
record has a ``schema_version`` from day one. This module never imports torch,
so the report can read runs without it.

Example::

    >>> df = load_run("runs/latest")         # one row per record
    >>> df[df.probe == "context"][["model", "task", "acc_frac"]]
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

SCHEMA_VERSION = 2  # 2: pseudo-tasks and the pseudo-model became variants (migrate_v1)
MANIFEST = "manifest.json"
CELLS = "cells"
TABLE = "records.csv"


class CorruptRecordWarning(UserWarning):
    """A cell file could not be read; the cell is treated as not done."""


class ManifestRebuiltWarning(UserWarning):
    """manifest.json was unreadable and has been rebuilt from the cell records."""


# metric-name endings that promise a number (or a list of numbers, or None)
NUMERIC_SUFFIXES = ("_frac", "_s", "_ms", "_px", "_count", "_bytes", "_flops", "_macs", "_gflops", "_gmacs")
Validator = Callable[["Record"], "str | None"]  # a record -> why it is invalid, or None


@dataclasses.dataclass
class Record:
    """The outcome of one probe cell. Metric names carry their units (``_s``, ``_frac``, ``_px``)."""

    probe: str
    model: str
    task: str
    params: dict[str, Any]
    seed: int
    cell_id: str
    status: str = "ok"  # 'ok' | 'error'
    error: str | None = None  # 'ExceptionType: message' when status == 'error'
    error_type: str | None = None  # 'Timeout', 'NonFiniteMetric' or the exception class name; None when ok
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    arrays: dict[str, str] = dataclasses.field(default_factory=dict)  # name -> path relative to OUT
    wall_time_s: float = 0.0
    provenance: dict[str, Any] = dataclasses.field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    variant: str | None = None  # the cell kind of a probe that runs no task (task 'none'); from params

    def __post_init__(self) -> None:
        if self.variant is None and isinstance(self.params, dict):  # a damaged record is caught by record_problem
            self.variant = self.params.get("variant")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Record":
        if not isinstance(d, dict):
            raise ValueError(f"expected a JSON object, got {type(d).__name__}")
        while d.get("schema_version") in MIGRATIONS:  # lift an old record one version at a time
            d = MIGRATIONS[d["schema_version"]](d)
        if d.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"schema_version {d.get('schema_version')!r}, expected {SCHEMA_VERSION}")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = {"probe", "model", "task", "params", "seed", "cell_id"} - d.keys()
        if missing:
            raise ValueError(f"missing fields {sorted(missing)}")
        return cls(**{k: v for k, v in d.items() if k in names})


V1_PSEUDO_TASKS = ("noise", "contract", "forward", "roofline")  # v1 task names that named no task


def migrate_v1(d: dict[str, Any]) -> dict[str, Any]:
    """A v1 record as v2: a pseudo-task becomes the variant (task 'none'), model 'sgemm' becomes 'none'."""
    d = {**d, "schema_version": 2}
    if d.get("task") in V1_PSEUDO_TASKS and isinstance(d.get("params"), dict):
        d["params"] = dict(d["params"])
        d["variant"] = d["params"]["variant"] = d["task"]
        d["task"] = "none"
    if d.get("model") == "sgemm":
        d["model"] = "none"
    return d


MIGRATIONS = {1: migrate_v1}  # schema_version -> the function that lifts it one version


def _is_number(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def record_problem(rec: Record) -> str | None:
    """Why a parsed record cannot be shown (None when it is structurally sound)."""
    for name, typ in (("probe", str), ("model", str), ("task", str), ("cell_id", str), ("params", dict),
                      ("metrics", dict), ("arrays", dict), ("provenance", dict)):
        if not isinstance(getattr(rec, name), typ):
            return f"'{name}' is {type(getattr(rec, name)).__name__}, expected {typ.__name__}"
    if not isinstance(rec.seed, int) or isinstance(rec.seed, bool) or not _is_number(rec.wall_time_s):
        return "'seed' or 'wall_time_s' is not a number"
    if rec.status not in ("ok", "error"):
        return f"status {rec.status!r}, expected 'ok' or 'error'"
    if rec.ok and not rec.metrics:
        return "status ok but no metrics"
    for name, v in rec.metrics.items():
        vals = v if isinstance(v, list) else [v]
        if name.endswith(NUMERIC_SUFFIXES) and not all(_is_number(x) for x in vals):
            return f"metric '{name}' holds {type(v).__name__} {str(v)[:40]!r}, expected a number"
    return None


def safe_name(text: str) -> str:
    """A file-name-safe version of ``text``."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", text).strip("-") or "x"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (tuple, set)):
        return list(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def _clean(obj: Any) -> Any:
    """Replace non-finite floats by None: JSON has no NaN, and NaN is caught upstream."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same directory and ``os.replace``: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dumps(obj: Any) -> str:
    return json.dumps(_clean(json.loads(json.dumps(obj, default=_json_default))), indent=1, sort_keys=True)


class RunStore:
    """Reads and writes one run directory."""

    def __init__(self, out: str | os.PathLike) -> None:
        self.root = Path(out)

    # -- manifest --------------------------------------------------------
    def write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write_text(self.root / MANIFEST, dumps({"schema_version": SCHEMA_VERSION, **manifest}))

    def read_manifest(self) -> dict[str, Any]:
        """The manifest; a damaged one is rebuilt from the cell records, with a warning, and rewritten."""
        path = self.root / MANIFEST
        if not path.exists():
            return {}
        try:
            manifest = json.loads(path.read_text())
            if isinstance(manifest, dict):
                return manifest
            reason = f"a JSON {type(manifest).__name__}, not an object"
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        rebuilt = self.rebuild_manifest()
        warnings.warn(f"{path} is damaged ({reason}); rebuilt from the cell records "
                      f"(probes: {', '.join(rebuilt['probes']) or 'none'})",
                      ManifestRebuiltWarning, stacklevel=2)
        with contextlib.suppress(OSError):  # a read-only run can still be reported
            self.write_manifest(rebuilt)
        return rebuilt

    def rebuild_manifest(self) -> dict[str, Any]:
        """What the cell records can tell: probes, device and provenance (not the preset or settings)."""
        records = self.scan()[0]
        prov = records[-1].provenance if records else {}
        return {"probes": sorted({r.probe for r in records}), "device": prov.get("device"),
                "provenance": prov, "rebuilt_from_records": True, "settings": {}, "config": {}}

    # -- cells -----------------------------------------------------------
    def cell_dir(self, cell_id: str) -> Path:
        """Folder for a cell's arrays and artifacts (created on demand)."""
        d = self.root / CELLS / cell_id
        d.mkdir(parents=True, exist_ok=True)
        return d

    def write_record(self, record: Record, arrays: dict[str, np.ndarray] | None = None) -> None:
        """Store arrays as .npy, then the record JSON atomically (the JSON marks the cell done)."""
        for name, arr in (arrays or {}).items():
            path = self.cell_dir(record.cell_id) / f"{safe_name(name)}.npy"
            np.save(path, np.asarray(arr), allow_pickle=False)
            record.arrays[name] = str(path.relative_to(self.root))
        atomic_write_text(self.root / CELLS / f"{record.cell_id}.json", dumps(record.to_dict()))

    def load_array(self, record: Record, name: str) -> np.ndarray:
        return np.load(self.root / record.arrays[name], allow_pickle=False)

    def scan(self, validate: Validator | None = None) -> tuple[list[Record], list[tuple[str, str]]]:
        """(valid records, problems): a problem is (file, reason) for a cell file that cannot be shown.

        ``validate`` adds a check of a parsed record, e.g. against the probe's declared metrics.
        """
        records, problems = [], []
        for path in sorted((self.root / CELLS).glob("*.json")):
            try:
                rec = Record.from_dict(json.loads(path.read_text()))
                why = record_problem(rec) or (validate(rec) if validate else None)
            except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:  # JSONDecodeError: ValueError
                why = (str(exc).splitlines() or [type(exc).__name__])[0]
            if why:
                problems.append((str(path), why))
            else:
                records.append(rec)
        return records, problems

    def read_records(self) -> list[Record]:
        """Every valid record; an unreadable or invalid file is skipped with a CorruptRecordWarning."""
        records, problems = self.scan()
        for path, why in problems:
            warnings.warn(f"skipping corrupt cell file {path}: {why}", CorruptRecordWarning, stacklevel=2)
        return records

    def remove_records(self, probes: set[str] | None = None) -> int:
        """Delete the cell files (and folders) of ``probes`` (all when None); returns how many."""
        removed = 0
        for rec in self.scan()[0]:
            if probes is None or rec.probe in probes:
                (self.root / CELLS / f"{rec.cell_id}.json").unlink(missing_ok=True)
                shutil.rmtree(self.root / CELLS / rec.cell_id, ignore_errors=True)
                removed += 1
        return removed

    def done_ids(self, rerun_failed: bool = False) -> set[str]:
        """Cell ids with a readable record (only the 'ok' ones when ``rerun_failed``)."""
        return {r.cell_id for r in self.read_records() if r.ok or not rerun_failed}

    def write_table(self) -> Path:
        """Write records.csv (and records.parquet when pyarrow is importable)."""
        df = records_to_frame(self.read_records())
        flat = df.map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v)
        path = self.root / TABLE
        atomic_write_text(path, flat.to_csv(index=False))
        try:
            flat.astype({c: str for c in flat.columns if flat[c].dtype == object}).to_parquet(
                self.root / "records.parquet", index=False)
        except ImportError:
            pass
        return path


PROVENANCE_COLUMNS = ("device", "device_name", "torch", "git_sha", "timestamp")


def records_to_frame(records: list[Record]) -> pd.DataFrame:
    """One row per record: ids, status, ``param_*`` columns, metrics as columns, some provenance."""
    rows = []
    for r in records:
        row = {"cell_id": r.cell_id, "probe": r.probe, "model": r.model, "task": r.task,
               "seed": r.seed, "status": r.status, "error": r.error,
               "error_type": r.error_type, "wall_time_s": r.wall_time_s}
        row.update({f"param_{k}": v for k, v in r.params.items()})
        row.update({k: r.provenance.get(k) for k in PROVENANCE_COLUMNS})
        row.update({f"array_{k}": v for k, v in r.arrays.items()})
        row.update(r.metrics)
        rows.append(row)
    return pd.DataFrame(rows)


def load_run(out: str | os.PathLike) -> pd.DataFrame:
    """Load a run directory as a DataFrame, one row per record, metrics as columns."""
    root = Path(out)
    if not (root / CELLS).is_dir() and not (root / MANIFEST).exists():
        raise FileNotFoundError(f"{root} is not an fcnprobe run directory (no {MANIFEST} or {CELLS}/)")
    return records_to_frame(RunStore(root).read_records())


def run_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """One line per way two run manifests differ that makes their numbers hard to compare."""
    out = []
    checks = (("preset", ("config", "preset")), ("device", ("provenance", "device_name")),
              ("code version", ("provenance", "git_sha")), ("fcnprobe version", ("provenance", "fcnprobe_version")))
    for label, (section, key) in checks:
        va, vb = (m.get(section, {}).get(key) for m in (a, b))
        if va != vb:
            out.append(f"the runs differ in {label}: {va} vs {vb}")
    return out
