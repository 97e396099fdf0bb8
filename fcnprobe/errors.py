"""Exception types that the CLI turns into one-line messages and exit codes.

``UsageError`` is the user's mistake (exit 2); ``CellError`` is a probe cell that
failed and becomes an error record instead of stopping the sweep.
"""
from __future__ import annotations


class UsageError(ValueError):
    """Bad input from the user: an unknown name, an impossible device, a bad flag."""


class CellError(RuntimeError):
    """A probe cell could not produce a result (NaN output, wrong rank, ...)."""
