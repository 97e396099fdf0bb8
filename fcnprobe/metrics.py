"""Declared metrics: name, unit, direction, human label and whether the value is an array.

Each probe declares its metrics once (``register_probe(..., metrics=...)``); the
report reads labels and directions from the declarations, and
``validate_record`` checks a record against them (lm-evaluation-harness
registers metrics with ``higher_is_better`` the same way). This module never
imports torch: the report and the results layer use it.

Units follow the metric-name suffix convention (``_px``, ``_frac``, ``_s``,
``_ms``, ``_count``, ...), so ``metric`` infers the unit unless one is given.

Example::

    >>> m = metric("acc_frac", "held-out accuracy", "higher")
    >>> m.unit, m.direction, m.label
    ('fraction', 'higher', 'held-out accuracy')
    >>> validate_record_dict({"status": "ok", "metrics": {"acc_frac": 0.9, "oops": 1}}, {m.name: m})
    ["metric 'oops' is not declared"]
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping

DIRECTIONS = ("higher", "lower", "none")
RECORD_EXTRAS = ("traceback",)  # metrics the sweep itself adds to an error record
_UNIT_TOKENS = (("gflops_per_s", "GFLOP/s"), ("samples_per_s", "samples/s"), ("_ms", "ms"), ("_px", "px"),
                ("_frac", "fraction"), ("_count", "count"), ("_mb", "MiB"), ("macs", "MACs"),
                ("flops", "FLOPs"), ("gflop", "GFLOP"), ("_s", "s"))


@dataclasses.dataclass(frozen=True)
class Metric:
    """One declared metric of a probe."""

    name: str  # the key in Record.metrics, units in the name (acc_frac, latency_ms_median)
    label: str  # what the report prints instead of the name
    unit: str = ""  # 'px', 'fraction', 'ms', ...; '' for counts-free text, flags and ids
    direction: str = "none"  # 'higher' or 'lower' is better; 'none' for descriptions
    is_array: bool = False  # a list per record (curves, per-bin values)

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"metric '{self.name}': direction must be one of {DIRECTIONS}, got {self.direction!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Metric":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


def infer_unit(name: str) -> str:
    """The unit a metric name's suffix convention implies ('' when it names none)."""
    for token, unit in _UNIT_TOKENS:
        if token in name and (token != "_s" or name.endswith("_s")):
            return unit
    return ""


def metric(name: str, label: str, direction: str = "none", is_array: bool = False,
           unit: str | None = None) -> Metric:
    """A ``Metric`` with its unit inferred from the name unless given."""
    return Metric(name, label, infer_unit(name) if unit is None else unit, direction, is_array)


def declare(*groups: Iterable[Metric]) -> dict[str, Metric]:
    """Name -> Metric over several groups; a name declared twice is an error."""
    out: dict[str, Metric] = {}
    for group in groups:
        for m in group:
            if m.name in out:
                raise ValueError(f"metric '{m.name}' is declared twice")
            out[m.name] = m
    return out


def with_const(metrics: Iterable[Metric]) -> list[Metric]:
    """Each metric plus its ``*_const`` twin: the score of a model-blind constant guess."""
    out = []
    for m in metrics:
        out += [m, dataclasses.replace(m, name=f"{m.name}_const", label=f"{m.label} (constant guess)")]
    return out


def to_manifest(declared: Mapping[str, Metric]) -> dict[str, dict[str, Any]]:
    """JSON-ready form, for the run manifest (the report reads it back without the probe)."""
    return {name: m.to_dict() for name, m in declared.items()}


def from_manifest(d: Mapping[str, Mapping[str, Any]]) -> dict[str, Metric]:
    return {name: Metric.from_dict(v) for name, v in d.items()}


def _shape_problem(name: str, value: Any, m: Metric) -> str | None:
    if value is None:
        return None
    is_list = isinstance(value, (list, tuple))
    if m.is_array and not is_list:
        return f"metric '{name}' is declared an array but holds a {type(value).__name__}"
    if not m.is_array and is_list:
        return f"metric '{name}' is declared a scalar but holds a list"
    return None


def validate_record_dict(record: Mapping[str, Any], declared: Mapping[str, Metric],
                         variants: Iterable[str] | None = None) -> list[str]:
    """Problems of one record (as a dict) against its probe's declarations; [] when it conforms.

    Error records are only checked for their variant: they hold a traceback, not metrics.
    """
    problems = []
    variant = record.get("variant") or (record.get("params") or {}).get("variant")
    if variants is not None and variant is not None and variant not in set(variants):
        problems.append(f"variant '{variant}' is not declared; declared: {', '.join(sorted(variants))}")
    if record.get("status", "ok") != "ok":
        return problems
    for name, value in (record.get("metrics") or {}).items():
        m = declared.get(name)
        if m is None:
            if name not in RECORD_EXTRAS:
                problems.append(f"metric '{name}' is not declared")
            continue
        problem = _shape_problem(name, value, m)
        if problem:
            problems.append(problem)
    return problems


def validate_record(record: Any, declared: Mapping[str, Metric], variants: Iterable[str] | None = None) -> list[str]:
    """Problems of a ``Record`` against ``declared`` (name -> Metric); [] when it conforms."""
    d = record.to_dict() if hasattr(record, "to_dict") else dict(record)
    return validate_record_dict(d, declared, variants)


def labels(declared: Mapping[str, Metric]) -> dict[str, str]:
    """Name -> label with the unit, e.g. ``'held-out accuracy'`` or ``'TRF side (px)'``."""
    return {n: (f"{m.label} ({m.unit})" if m.unit and m.unit not in ("fraction", "count") else m.label)
            for n, m in declared.items()}
