"""Small helpers that several layers share, so each is written once.

Torch-free at import (the report imports ``failure_threshold``); ``check_finite``
and ``param_count`` only touch the tensors they are given.

* ``one_line``: an exception as ``'Type: first line'`` (records, CLI messages).
* ``default_head``: the head a family is measured with when a probe does not train it.
* ``param_count``: trainable and frozen parameters of a module.
* ``failure_threshold``: the accuracy below which a distance bin "fails" (analysis and report).
* ``IGNORE_INDEX``: the target value cross-entropy skips (torch's default, -100).
* ``check_finite``: NaN / inf -> ``CellError`` naming the stage, so a bad model is an error record.
* ``lazy_exports``: a package's ``__getattr__`` / ``__dir__`` that import each public name on first use.
* ``no_mha_fast_path``: a block in which ``nn.TransformerEncoderLayer`` runs its plain (slow) path.
"""
from __future__ import annotations

import contextlib
import importlib
import math
from typing import Any, Callable, Iterable, Iterator

from fcnprobe.errors import CellError

IGNORE_INDEX = -100  # dense targets outside the scored pixels; torch's cross_entropy default
FAILURE_MIDPOINT = 0.5  # a bin fails below chance + FAILURE_MIDPOINT * (1 - chance)
MAX_MESSAGE = 500  # characters of an exception kept in a metric or record


def error_label(exc: BaseException) -> str:
    """A record's ``error_type``: an exception's own label (``Timeout``) or its class name."""
    return str(getattr(exc, "error_type", type(exc).__name__))


def one_line(exc: BaseException, limit: int = MAX_MESSAGE) -> str:
    """``'ValueError: first line of the message'``, cut to ``limit`` characters."""
    label = error_label(exc)  # CellTimeout says 'Timeout'
    text = str(exc).strip().splitlines()
    return (f"{label}: {text[0]}" if text else label)[:limit]


def default_head(native: Iterable[str], channels: int = 4) -> str:
    """``dense:C`` where the family has a dense head, else its first native head (``box`` or ``vector:C``)."""
    native = tuple(native)
    if "dense" in native:
        return f"dense:{channels}"
    return "box" if native[0] == "box" else f"{native[0]}:{channels}"


def param_count(module: Any) -> int:
    """Number of parameters of an ``nn.Module`` (trainable or not)."""
    return sum(p.numel() for p in module.parameters())


def failure_threshold(chance: float) -> float:
    """Midpoint of chance and perfect accuracy: below it a distance bin counts as failed."""
    return chance + FAILURE_MIDPOINT * (1 - chance)


def check_finite(value: Any, stage: str) -> Any:
    """Return ``value`` unchanged; raise CellError naming ``stage`` if it holds NaN or inf.

    Accepts a tensor, a numpy array or a number. Used on model outputs and
    gradients, so a model that returns NaN gives an error record that says where.
    """
    if value is None:
        return value
    if hasattr(value, "isfinite") and hasattr(value, "all") and hasattr(value, "detach"):  # a torch tensor
        ok = bool(value.detach().isfinite().all())
    elif hasattr(value, "dtype") and hasattr(value, "shape"):  # numpy
        import numpy as np

        ok = bool(np.isfinite(value).all()) if np.issubdtype(value.dtype, np.number) else True
    else:
        ok = not (isinstance(value, float) and not math.isfinite(value))
    if not ok:
        raise CellError(f"non-finite values at stage '{stage}'")
    return value


def lazy_exports(package: str, table: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """(``__getattr__``, ``__dir__``) for ``package``: each name in ``table`` is imported from its module
    on first use (PEP 562), so importing the package stays cheap (and torch-free)."""

    def getattr_(name: str) -> Any:
        if name in table:
            return getattr(importlib.import_module(table[name]), name)
        raise AttributeError(f"module '{package}' has no attribute '{name}'")

    return getattr_, lambda: sorted(table)


@contextlib.contextmanager
def no_mha_fast_path() -> Iterator[None]:
    """Turn off PyTorch's fused inference path of ``nn.TransformerEncoderLayer`` inside the block (and
    restore the setting after): tracers, counters and linearised copies need the plain ops, and with a
    per-head float ``src_mask`` the fused path returned NaN (torch 2.13, CPU)."""
    import torch

    prev = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(prev)
