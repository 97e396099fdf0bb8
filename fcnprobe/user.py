"""Your own models in the probes: registry entries for ``module.path:factory`` names.

How a factory is written and resolved is in ``fcnprobe.models.user``; running
the probes on one is ``fcnprobe.probe`` (``fcnprobe.api``). During a sweep a
user model is also entered in the model registry (family ``user``; ``native``
heads from the factory's optional ``native_heads`` attribute, else all three),
so probes that read ``MODELS.meta`` treat it like a zoo family; it is removed
again when the sweep ends.

Example::

    >>> with registered(["mypkg.nets:my_net"]):
    ...     MODELS.meta("mypkg.nets:my_net")["family"]
    'user'
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterable, Iterator

from fcnprobe.errors import UsageError
from fcnprobe.utils import one_line
from fcnprobe.models.user import (_LOCAL, FACTORY_SIGNATURE, build_plain, factory_args, factory_problem,
                                  head_mismatch, is_plain_builder, is_user_model, resolve_factory)

__all__ = ["FACTORY_SIGNATURE", "build_probe_model", "ensure_registered", "factory_args", "factory_problem",
           "is_plain_builder", "is_user_model", "model_path", "registered", "resolve_factory"]


_BUILT: dict[str, str | None] = {}  # path -> why it cannot build (None: it builds), per process


def check_buildable(path: str) -> None:
    """Raise (the factory's own error, or TypeError) unless ``path`` builds a module with a native head.

    Called before every cell of a user model, so a factory that cannot build makes each of its
    cells an error record, whatever the probe would otherwise make of the failure. A plain
    builder (no ``head``) is built without one; a factory that takes ``head`` (or ``**kwargs``)
    must return that head's output shape, else it is refused (``head_mismatch``).
    """
    from fcnprobe.models import create_model
    from fcnprobe.models.heads import HEAD_KINDS

    if path not in _BUILT:
        native = tuple(getattr(resolve_factory(path), "native_heads", HEAD_KINDS))
        head = native[0] if native[0] == "box" else f"{native[0]}:2"
        try:
            if is_plain_builder(path):
                build_plain(path)
                _BUILT[path] = None
            else:
                _BUILT[path] = head_mismatch(path, create_model(path, head=head), head)
        except TypeError as exc:  # factory_args' own message already names the model
            _BUILT[path] = str(exc)
        except Exception as exc:
            _BUILT[path] = f"model '{path}' does not build ({one_line(exc)})"
    if _BUILT[path]:
        raise TypeError(_BUILT[path])


def build_probe_model(name: str, head: str, image_size: int = 32, in_channels: int = 3,
                      depth: int | None = None) -> tuple["Any", str | None]:
    """(model, the head it was built with) for probes that need no training.

    Zoo models and head-taking factories get ``head``; a plain builder is built
    without one (head None), so the probe measures the builder's own output.
    """
    from fcnprobe.models import create_model

    if is_user_model(name) and is_plain_builder(name):
        return build_plain(name, in_channels, image_size), None
    kw = {} if depth is None else {"depth": depth}
    return create_model(name, head=head, image_size=image_size, in_channels=in_channels, **kw), head


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
