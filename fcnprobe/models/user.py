"""User models: ``module.path:factory`` names resolved to factories, and built like zoo models.

A user factory takes the same arguments as the zoo's families and returns an
``nn.Module``::

    def my_net(head: str, in_channels: int = 3, image_size: int = 32,
               width: int | None = None, depth: int | None = None) -> nn.Module: ...

``head`` is a string: ``dense:C``, ``vector:N`` or ``box``, optionally with
``@adapter`` (``fcnprobe.models.parse_head``). ``image_size``, ``width`` and
``depth`` may be left out of the signature (they are then not passed);
``in_channels`` other than 3 must be accepted. A factory that cannot make a
head should raise; the probes record that. ``create_model("pkg.mod:fn", ...)``
calls ``build_user_model`` here; ``fcnprobe.user`` enters user models in the
registry during a sweep and runs the probes on one (``fcnprobe.api.probe``).

Example::

    >>> model, args = build_user_model("tests.user_model_fixture:tiny_fcn", "dense:3")
"""
from __future__ import annotations

import difflib
import importlib
import inspect
from typing import TYPE_CHECKING, Any, Callable

from fcnprobe.errors import UsageError
from fcnprobe.utils import one_line

if TYPE_CHECKING:
    import torch.nn as nn

FACTORY_SIGNATURE = "head, in_channels, image_size (optionally width, depth)"
_LOCAL: dict[str, Callable[..., Any]] = {}  # callables given to probe() that no import path reaches
_OPTIONAL = ("image_size", "width", "depth")  # not passed to a factory that does not take them


def is_user_model(name: str) -> bool:
    """``module.path:factory`` names are user models; registry names never hold a colon."""
    return ":" in name


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
        raise UsageError(f"cannot import '{module}' for model '{path}' ({one_line(exc)}); "
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


HEAD_CONTRACT = ("training probes need a factory taking head='dense:C' (a (B, C, H, W) map), "
                 "'vector:N' ((B, N)) or 'box' ((B, 4))")
NO_TRAINING_PROBES = ("erf", "shape (contract)", "cost", "realarch")  # run plain builders, which take no head


def is_plain_builder(path: str) -> bool:
    """True when the factory takes no ``head`` (and no ``**kwargs``): e.g. ``torchvision.models:resnet18``."""
    sig = _parameters(resolve_factory(path))
    return sig is not None and "head" not in sig[0] and not sig[1]


def factory_problem(path: str) -> str | None:
    """Why the cells of this factory that need a head will fail before it is even called (None if fine)."""
    if is_plain_builder(path):
        return (f"model factory '{path}' does not accept 'head': {HEAD_CONTRACT}; "
                f"as a plain builder it runs in {', '.join(NO_TRAINING_PROBES)}")
    return None


def build_plain(path: str, in_channels: int = 3, image_size: int = 32) -> "nn.Module":
    """Call a plain builder with the optional arguments it names (``image_size``, ``in_channels``), no head."""
    import torch.nn as nn

    factory = resolve_factory(path)
    names = (_parameters(factory) or (set(), False))[0]
    args = {k: v for k, v in (("image_size", image_size), ("in_channels", in_channels)) if k in names}
    model = factory(**args)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model factory '{path}' returned a {type(model).__name__}, not an nn.Module")
    return model


def head_mismatch(path: str, model: "nn.Module", head: str, size: int = 32, in_channels: int = 3) -> str | None:
    """Why ``model`` does not honour ``head`` (a factory that swallowed it into **kwargs), else None."""
    import torch

    from fcnprobe.measure.outputs import preserved_mode, select_output
    from fcnprobe.models.heads import parse_head

    want = list(parse_head(head).output_shape(1, size, size))
    with preserved_mode(model), torch.no_grad():
        got = list(select_output(model.eval()(torch.zeros(1, in_channels, size, size))).shape)
    if got == want:
        return None
    return (f"model factory '{path}' was asked for head={head!r} ({want} at {size} px) but its model returns "
            f"{got}: it ignores 'head' (swallowed by **kwargs?); {HEAD_CONTRACT}")


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


def build_user_model(path: str, head: Any, in_channels: int = 3, image_size: int = 32,
                     width: int | None = None, depth: int | None = None,
                     **kwargs: Any) -> tuple["nn.Module", dict[str, Any]]:
    """(the user's model, the arguments really passed); ``create_model`` attaches its ``info``."""
    import torch.nn as nn

    from fcnprobe.models.heads import parse_head

    factory = resolve_factory(path)
    spec = parse_head(head)
    values = dict(head=str(spec), in_channels=in_channels, image_size=image_size,
                  width=width, depth=depth, **kwargs)
    args = factory_args(path, factory, values)
    model = factory(**args)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model factory '{path}' returned a {type(model).__name__}, not an nn.Module")
    return model, args
