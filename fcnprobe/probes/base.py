"""The probe interface: a probe declares cells and measures one cell at a time.

A probe never prints or plots. ``cells`` returns frozen ``Cell``s of plain
values; ``run_cell`` returns a ``CellOutput`` (metrics with units in their
names, plus optional numpy arrays). The sweep turns outputs, exceptions and NaNs
into ``Record``s. Seeds derive from the cell key, never from order or worker.

Each probe declares its metrics (``fcnprobe.metrics``) and its *variants*: the
kinds of cell that run no registered task (the ERF of white noise, the shape
contract, a forward pass, the sgemm roofline). A variant cell has task
``"none"`` and its variant in ``params["variant"]``, so records say what they
measure without pseudo-tasks. Declarations are plain data: this module and
every probe module import torch only inside the functions that run cells, so
``import fcnprobe.probes`` (and the report reading the declarations) stays torch-free.

Example::

    @register_probe("toy", order=50, help="count to n")
    class Toy(Probe):
        metrics = declare([metric("answer_count", "the answer", "higher")])

        def cells(self, cfg, settings):
            return [Cell.make("toy", m, "none", n=3) for m in self.model_names(cfg, ["fcn"])]

        def run_cell(self, cell, ctx):
            return CellOutput(metrics={"answer_count": cell.p["n"]})
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fcnprobe.config import RunConfig
from fcnprobe.metrics import Metric, to_manifest
from fcnprobe.registry import Registry
from fcnprobe.results import safe_name

PROBES: Registry = Registry("probe")
NO_TASK = "none"  # the task of a variant cell: it runs no registered task


@dataclasses.dataclass(frozen=True)
class Cell:
    """One unit of work: plain values only, so it pickles and hashes stably."""

    probe: str
    model: str
    task: str
    params: tuple[tuple[str, Any], ...] = ()
    seed: int = 0  # replicate index from --seeds
    salt: str = ""  # fingerprint of the probe's settings and version (``Probe.plan``); in the id, not the seed

    @classmethod
    def make(cls, probe: str, model: str, task: str, seed: int = 0, **params: Any) -> "Cell":
        return cls(probe, model, task, tuple(sorted(params.items())), seed)

    @property
    def p(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def key(self) -> str:
        return json.dumps([self.probe, self.model, self.task, self.params, self.seed], default=str)

    @property
    def cell_id(self) -> str:
        # the settings fingerprint is in the id, so runs made with other settings never share ids
        digest = hashlib.sha1((self.key + self.salt).encode()).hexdigest()[:10]
        return safe_name(f"{self.probe}__{self.model}__{self.task}__s{self.seed}__{digest}")

    @property
    def torch_seed(self) -> int:
        """A 31-bit seed derived from the cell key alone."""
        return int.from_bytes(hashlib.sha256(self.key.encode()).digest()[:4], "little") & 0x7FFFFFFF


@dataclasses.dataclass
class CellContext:
    """What a cell may use besides its own values."""

    device: str  # resolved: 'cpu', 'cuda', 'cuda:1'
    preset: str
    settings: Any  # the probe's typed settings for this preset
    run_dir: Path  # the run directory, to read artifacts other probes kept
    cell_dir: Path  # this cell's folder for arrays and artifacts


@dataclasses.dataclass
class CellOutput:
    """What ``run_cell`` returns. Use None, not NaN, for a metric that does not apply."""

    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    arrays: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


class Probe:
    """Base class; subclasses are registered with ``@register_probe(name, order=...)``."""

    name: str = ""
    settings_by_preset: dict[str, Any] = {}  # preset -> a frozen dataclass of settings
    metrics: dict[str, Metric] = {}  # name -> declaration (fcnprobe.metrics.declare)
    variants: tuple[str, ...] = ()  # cell kinds that run no registered task (task 'none')
    version: int = 1  # bump when a change to the probe moves its numbers: cell ids change with it

    def settings(self, preset: str) -> Any:
        return self.settings_by_preset.get(preset)

    def fingerprint(self, settings: Any) -> str:
        """A short hash of everything that changes this probe's results besides a cell's own values."""
        plain = dataclasses.asdict(settings) if dataclasses.is_dataclass(settings) else settings
        text = json.dumps({"version": self.version, "settings": plain}, sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def plan(self, cfg: RunConfig) -> list[Cell]:
        """The cells for ``cfg``, their ids salted with the preset's settings and the probe version."""
        settings = self.settings(cfg.preset)
        if self.settings_by_preset and cfg.preset not in self.settings_by_preset:  # e.g. erf at lrgrid: no cells
            return []
        salt = self.fingerprint(settings)
        return [dataclasses.replace(c, salt=salt) for c in self.cells(cfg, settings)]

    def cells(self, cfg: RunConfig, settings: Any) -> list[Cell]:
        raise NotImplementedError

    def run_cell(self, cell: Cell, ctx: CellContext) -> CellOutput:
        raise NotImplementedError

    @staticmethod
    def model_names(cfg: RunConfig, default: list[str]) -> list[str]:
        """The probe's default models, or those matching ``--models`` globs, then ``--model`` user models.

        With user models and no ``--models``, only the user models run; name zoo
        models with ``--models`` to run them beside yours.
        """
        from fcnprobe.models import MODELS

        user = list(getattr(cfg, "user_models", ()))
        zoo = MODELS.select(list(cfg.models)) if cfg.models else ([] if user else list(default))
        return zoo + [m for m in user if m not in zoo]

    @staticmethod
    def wants_variant(cfg: RunConfig, variant: str) -> bool:
        """True unless ``--tasks`` globs are given and none matches the variant's name."""
        import fnmatch

        return not cfg.tasks or any(fnmatch.fnmatchcase(variant, pat) for pat in cfg.tasks)

    def variant_cell(self, model: str, variant: str, seed: int = 0, **params: Any) -> Cell:
        """A cell of a declared variant: task 'none', the variant in its params."""
        if variant not in self.variants:
            raise ValueError(f"probe '{self.name}' declares no variant '{variant}'; its variants: {self.variants}")
        return Cell.make(self.name, model, NO_TASK, seed, variant=variant, **params)

    @staticmethod
    def task_names(cfg: RunConfig, default: list[str]) -> list[str]:
        """The probe's default tasks, filtered by ``--tasks`` globs when given."""
        import fnmatch

        if not cfg.tasks:
            return list(default)
        return [t for t in default if any(fnmatch.fnmatchcase(t, pat) for pat in cfg.tasks)]


def register_probe(name: str, order: int = 100, help: str | None = None, **meta: Any) -> Callable[[type], type]:
    """Class decorator: register an instance of the probe; ``order`` sets its place in ``all``.

    ``help`` is the CLI's one-line description (default: the class docstring's first line).
    """

    def deco(cls: type) -> type:
        cls.name = name
        text = help or ((cls.__doc__ or "").strip().splitlines() or [f"run the {name} probe"])[0]
        PROBES.add(name, cls(), order=order, help=text, **meta)
        return cls

    return deco


def declared_metrics(name: str) -> dict[str, Metric]:
    """The metrics probe ``name`` declares (empty for a probe that declares none)."""
    return dict(getattr(PROBES.get(name), "metrics", {}) or {})


def declarations(names: list[str]) -> dict[str, Any]:
    """What the report needs of these probes without importing them: metrics, variants, help, order.

    The sweep writes this into the run manifest (key ``declared``).
    """
    out = {}
    for n in names:
        probe = PROBES.get(n)
        out[n] = {"metrics": to_manifest(declared_metrics(n)), "variants": list(getattr(probe, "variants", ())),
                  "help": PROBES.meta(n).get("help", ""), "order": PROBES.meta(n).get("order", 100)}
    return out


def probes_in_order() -> list[str]:
    """Registered probe names sorted by their ``order`` (producers before consumers)."""
    return sorted(PROBES.names(), key=lambda n: (PROBES.meta(n)["order"], n))


def manifest_declarations(names: list[str], old: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest entries the report reads instead of importing probes and models:
    ``declared`` (per probe, merged with an older manifest's) and ``models`` (the model catalogue)."""
    from fcnprobe.models import model_catalog

    declared = {**(old or {}).get("declared", {}), **declarations([n for n in names if n in PROBES])}
    return {"declared": declared, "models": model_catalog()}
