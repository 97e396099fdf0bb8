"""A small name -> object registry used as a decorator for models, tasks and probes.

Pattern borrowed from timm's ``register_model`` and lm-evaluation-harness's
registries: a duplicate name is an error, and an unknown name gets a
"did you mean ...?" hint plus the full list of available names.

Example::

    MODELS = Registry("model")

    @MODELS.register("fcn", heads=("dense",))
    def fcn(**kw): ...

    MODELS.get("fnc")  # UnknownNameError: unknown model 'fnc'; did you mean 'fcn'? available: fcn
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
import pkgutil
from typing import Any, Callable, Generic, Iterable, Iterator, TypeVar

from fcnprobe.errors import UsageError

T = TypeVar("T")


class UnknownNameError(UsageError, KeyError):
    """Raised for a name that is not registered; the message lists near matches."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


class DuplicateNameError(ValueError):
    """Raised when a name is registered twice."""


class Registry(Generic[T]):
    """Maps names to registered objects, with free-form metadata per entry."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str | None = None, **meta: Any) -> Callable[[T], T]:
        """Decorator: register ``obj`` under ``name`` (default: its ``__name__``)."""

        def deco(obj: T) -> T:
            key = name or getattr(obj, "name", None) or obj.__name__  # type: ignore[attr-defined]
            self.add(key, obj, **meta)
            return obj

        return deco

    def add(self, name: str, obj: T, **meta: Any) -> None:
        """Register ``obj`` under ``name``; a duplicate raises DuplicateNameError."""
        if name in self._items:
            raise DuplicateNameError(f"{self.kind} '{name}' is already registered")
        self._items[name] = obj
        self._meta[name] = dict(meta)

    def remove(self, name: str) -> None:
        """Unregister ``name`` (used by tests that register throwaway entries)."""
        self._items.pop(name, None)
        self._meta.pop(name, None)

    def get(self, name: str) -> T:
        """Return the object registered as ``name`` or raise UnknownNameError."""
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def meta(self, name: str) -> dict[str, Any]:
        """Metadata given at registration time."""
        self.get(name)
        return dict(self._meta[name])

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names matching the glob ``pattern``."""
        return sorted(n for n in self._items if fnmatch.fnmatchcase(n, pattern))

    def select(self, patterns: list[str] | tuple[str, ...] | None) -> list[str]:
        """Names matching any of the glob ``patterns``; a pattern matching nothing is an error."""
        if not patterns:
            return self.names()
        out: list[str] = []
        for pat in patterns:
            hits = self.names(pat)
            if not hits:
                raise UnknownNameError(self.unknown_message(pat))
            out += [h for h in hits if h not in out]
        return out

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self._items), n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown {self.kind} '{name}'{hint} available: {', '.join(self.names()) or '(none)'}"

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


def import_submodules(package: str, path: Iterable[str]) -> list[str]:
    """Import every module of ``package`` (its ``__path__``) so their decorators register them.

    Used by the packages that hold registries (models, tasks, probes, report
    sections): adding a family, task, probe or section is adding a file.
    """
    names = sorted(m.name for m in pkgutil.iter_modules(list(path)) if not m.name.startswith("_"))
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names
