"""Exception types that the CLI turns into one-line messages and exit codes.

``UsageError`` is the user's mistake (exit 2); ``CellError`` is a probe cell that
failed and becomes an error record instead of stopping the sweep.
``SweepInterrupted`` (exit 130) and ``WorkerLost`` (exit 1) stop a sweep with
its finished records kept; ``CellTimeout`` is a cell (or a group of cells) that
ran past ``--cell-timeout`` and becomes error records with ``error_type: Timeout``.
"""
from __future__ import annotations


class UsageError(ValueError):
    """Bad input from the user: an unknown name, an impossible device, a bad flag."""


class CellError(RuntimeError):
    """A probe cell could not produce a result (NaN output, wrong rank, ...)."""


class SweepInterrupted(Exception):
    """Ctrl-C during a sweep; finished records are on disk."""


class WorkerLost(Exception):
    """A worker process died; finished records are on disk and a re-run resumes."""


class CellTimeout(Exception):
    """A cell ran longer than its time limit; its worker was killed (or its alarm fired)."""

    error_type = "Timeout"  # the ``error_type`` of the records it becomes

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the cell ran longer than --cell-timeout {seconds:g} s and was stopped")
        self.seconds = seconds


class RunDirBusy(UsageError):
    """Another live fcnprobe process holds the run directory's lock."""
