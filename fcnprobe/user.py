"""Your own models in the probes: ``module.path:factory`` names and ``fcnprobe.probe``.

A user factory takes the same arguments as the zoo's families and returns an
``nn.Module``::

    def my_net(head: str, in_channels: int = 3, image_size: int = 32,
               width: int | None = None, depth: int | None = None) -> nn.Module: ...

``head`` is a string: ``dense:C`` (output ``(B, C, H, W)``), ``vector:N``
(``(B, N)``) or ``box`` (``(B, 4)``), optionally with ``@adapter``;
``fcnprobe.models.parse_head(head)`` parses it. A factory that cannot make a
head should raise; the probes record that. ``image_size``, ``width`` and
``depth`` may be left out of the signature (they are then not passed, and the
model's ``info`` says None); ``in_channels`` other than 3 must be accepted. A
factory without ``head`` gives an error record per cell.
``create_model("pkg.mod:fn", head=...)`` builds one; in a cell, anything raised
becomes an error record (``fcnprobe.sweep``).

During a sweep a user model is also entered in the model registry (family
``user``; ``native`` heads from the factory's optional ``native_heads``
attribute, else all three), so probes that read ``MODELS.meta`` treat it like a
zoo family; it is removed again when the sweep ends.

Example::

    >>> import fcnprobe
    >>> df = fcnprobe.probe("mypkg.nets:my_net", probes=["erf", "shape"], out="runs/mine")
    >>> df[["probe", "task", "status", "error"]]
"""
from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from fcnprobe.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd
    import torch.nn as nn

FACTORY_SIGNATURE = "head, in_channels, image_size (optionally width, depth)"
_LOCAL: dict[str, Callable[..., Any]] = {}  # callables given to probe() that no import path reaches
_OPTIONAL = ("image_size", "width", "depth")  # not passed to a factory that does not take them


def is_user_model(name: str) -> bool:
    """``module.path:factory`` names are user models; registry names never hold a colon."""
    return ":" in name


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def resolve_factory(path: str) -> Callable[..., Any]:
    """The callable that ``module.path:factory`` names; UsageError (one line) if there is none."""
    if path in _LOCAL:
        return _LOCAL[path]
    module, _, attr = path.partition(":")
    if not module or not attr:
        raise UsageError(f"bad model '{path}': use module.path:factory")
    try:
        obj: Any = importlib.import_module(module)
    except Exception as exc:  # ImportError, or the module itself failing on import
        raise UsageError(f"cannot import '{module}' for model '{path}' ({_one_line(exc)}); "
                         f"is it on PYTHONPATH?") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            close = difflib.get_close_matches(part, names, n=2)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise UsageError(f"'{module}' has no '{attr}' for model '{path}'{hint}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UsageError(f"model '{path}' is a {type(obj).__name__}, not a factory")
    return obj


def _parameters(factory: Callable[..., Any]) -> tuple[set[str], bool] | None:
    """(named parameters, takes **kwargs), or None when Python cannot say."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    return {p.name for p in params}, any(p.kind is p.VAR_KEYWORD for p in params)


def factory_problem(path: str) -> str | None:
    """Why the cells of this factory will fail before it is even called (None if fine)."""
    sig = _parameters(resolve_factory(path))
    if sig is not None and "head" not in sig[0] and not sig[1]:
        return (f"model factory '{path}' does not accept 'head'; a factory takes "
                f"{FACTORY_SIGNATURE} and returns an nn.Module")
    return None


def factory_args(path: str, factory: Callable[..., Any], values: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``values`` the factory takes; TypeError if it cannot take one that matters."""
    problem = factory_problem(path)
    if problem:
        raise TypeError(problem)
    sig = _parameters(factory)
    if sig is None:
        return values
    names, var_kw = sig
    args = {}
    for key, value in values.items():
        if var_kw or key in names:
            args[key] = value
        elif key not in _OPTIONAL and not (key == "in_channels" and value == 3):
            raise TypeError(f"model factory '{path}' does not accept {key}={value!r}; "
                            f"it takes {', '.join(sorted(names)) or 'nothing'}")
    return args


def create_user_model(path: str, head: Any, in_channels: int = 3, image_size: int = 32,
                      width: int | None = None, depth: int | None = None, **kwargs: Any) -> "nn.Module":
    """Build a user model (``create_model`` calls this for ``module.path:factory`` names)."""
    import torch.nn as nn

    from fcnprobe.models.base import ModelInfo
    from fcnprobe.models.heads import parse_head

    factory = resolve_factory(path)
    spec = parse_head(head)
    values = dict(head=str(spec), in_channels=in_channels, image_size=image_size,
                  width=width, depth=depth, **kwargs)
    args = factory_args(path, factory, values)
    model = factory(**args)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model factory '{path}' returned a {type(model).__name__}, not an nn.Module")
    if getattr(model, "info", None) is None:  # what was really passed: None where the factory took nothing
        model.info = ModelInfo(path, str(spec), in_channels, image_size, args.get("width"), args.get("depth"), True)
    return model


_BUILT: dict[str, str | None] = {}  # path -> why it cannot build (None: it builds), per process


def check_buildable(path: str) -> None:
    """Raise (the factory's own error, or TypeError) unless ``path`` builds a module with a native head.

    Called before every cell of a user model, so a factory that cannot build makes each of its
    cells an error record, whatever the probe would otherwise make of the failure.
    """
    from fcnprobe.models.heads import HEAD_KINDS

    if path not in _BUILT:
        native = tuple(getattr(resolve_factory(path), "native_heads", HEAD_KINDS))
        head = native[0] if native[0] == "box" else f"{native[0]}:2"
        try:
            create_user_model(path, head=head)
            _BUILT[path] = None
        except TypeError as exc:  # factory_args' own message already names the model
            _BUILT[path] = str(exc)
        except Exception as exc:
            _BUILT[path] = f"model '{path}' does not build ({_one_line(exc)})"
    if _BUILT[path]:
        raise TypeError(_BUILT[path])


def ensure_registered(path: str) -> bool:
    """Enter a user model in ``MODELS`` (family 'user') so ``MODELS.meta`` answers; True if added now."""
    from fcnprobe.models import MODELS
    from fcnprobe.models.heads import HEAD_KINDS

    if path in MODELS:
        return False
    factory = resolve_factory(path)
    native = tuple(getattr(factory, "native_heads", HEAD_KINDS))
    MODELS.add(path, factory, native=native, family="user", user=True, adapters=False)
    return True


@contextlib.contextmanager
def registered(paths: Iterable[str]) -> Iterator[None]:
    """User models in ``MODELS`` for the duration of a sweep; those added here are removed after."""
    from fcnprobe.models import MODELS

    added = [p for p in paths if ensure_registered(p)]
    try:
        yield
    finally:
        for p in added:
            MODELS.remove(p)


def model_path(model: "str | Callable[..., Any]") -> str:
    """An import path for a factory; a callable no import path reaches is kept in this process."""
    if isinstance(model, str):
        resolve_factory(model)
        return model
    path = f"{getattr(model, '__module__', '__main__')}:{getattr(model, '__qualname__', 'factory')}"
    try:
        if resolve_factory(path) is model:
            return path
    except UsageError:
        pass
    while path in _LOCAL and _LOCAL[path] is not model:  # two lambdas share a qualname
        path += "_"
    _LOCAL[path] = model
    return path


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
    if path in _LOCAL and (cfg["workers"] != 1 or cfg.get("executor", "local") != "local"):
        raise UsageError(f"model '{path}' cannot be imported by worker processes; "
                         "use workers=1 or define the factory in an importable module")


def _tuples(cfg: dict[str, Any]) -> dict[str, Any]:
    """Lists to tuples, so the frozen config hashes (``models=["fcn"]`` reads naturally)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
