"""``fcnprobe.probe``: run the probes on one user model and get its records as a DataFrame.

Example::

    >>> import fcnprobe
    >>> df = fcnprobe.probe("mypkg.nets:my_net", probes=["erf", "shape"], out="runs/mine")
    >>> df[["probe", "task", "status", "error"]]
"""
from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any, Callable, Iterable

from fcnprobe.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd


def probe(model: "str | Callable[..., Any]", probes: Iterable[str] | None = None, out: str = "runs/user",
          preset: str = "smoke", **cfg: Any) -> "pd.DataFrame":
    """Run probes (default: all, in order) on one user model; returns its records as a DataFrame.

    ``cfg`` overrides ``RunConfig`` fields (``workers=1`` by default here, so a
    factory defined in a notebook works; ``models=["fcn"]`` adds zoo baselines).

    >>> df = probe("mypkg.nets:my_net", probes=["shape"], out="runs/mine", preset="quick")
    """
    from fcnprobe.config import RunConfig
    from fcnprobe.probes import probes_in_order
    from fcnprobe.results import load_run
    from fcnprobe.sweep import run_sweep
    from fcnprobe.user import model_path

    path = model_path(model)
    cfg = {"workers": 1, **cfg}
    _check_options(path, cfg, set(RunConfig.__dataclass_fields__) - {"out", "preset", "user_models"})
    names = list(probes) if probes is not None else probes_in_order()
    config = RunConfig(out=str(out), preset=preset, user_models=(path,), **_tuples(cfg))
    run_sweep(names, config, progress=False)
    df = load_run(out)
    return df[df.probe.isin(names)].reset_index(drop=True)


def _check_options(path: str, cfg: dict[str, Any], fields: set[str]) -> None:
    """Unknown option -> did-you-mean; a process-local factory cannot go to worker processes."""
    for key in cfg:
        if key not in fields:
            close = difflib.get_close_matches(key, sorted(fields), n=2)
            raise UsageError(f"unknown option '{key}'" + (f"; did you mean {' or '.join(close)}?" if close else ""))
    from fcnprobe.models.user import _LOCAL

    if path in _LOCAL and (cfg["workers"] != 1 or cfg.get("executor", "local") != "local"):
        raise UsageError(f"model '{path}' cannot be imported by worker processes; "
                         "use workers=1 or define the factory in an importable module")


def _tuples(cfg: dict[str, Any]) -> dict[str, Any]:
    """Lists to tuples, so the frozen config hashes (``models=["fcn"]`` reads naturally)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
