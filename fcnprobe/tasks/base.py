"""The task interface: a seeded, vectorised generator of (inputs, targets, metadata).

A task is a registered class. ``sample(n, generator)`` draws a batch on the
generator's device with no Python loop per sample; ``meta`` holds the tensors
needed to bin results (cue positions, distances). ``chance`` is the accuracy of
the best input-blind guess.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch

from fcnprobe.registry import Registry

TASKS: Registry = Registry("task")


@dataclasses.dataclass
class Batch:
    inputs: torch.Tensor  # (B, C, H, W)
    targets: torch.Tensor  # (B, H, W) class ids for dense tasks, (B,) or (B, K) otherwise
    meta: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)  # per-sample tensors


class Task:
    """Base class for tasks; subclasses set ``kind`` and implement ``sample``."""

    name: str = ""
    kind: str = "dense"  # dense | vector | box: the head the task needs
    in_channels: int = 3

    def __init__(self, image_size: int = 32, **params: Any) -> None:
        self.image_size = image_size
        self.params = params

    @property
    def chance(self) -> float:
        raise NotImplementedError

    @property
    def num_outputs(self) -> int:
        raise NotImplementedError

    @property
    def head(self) -> str:
        """The head string a model needs for this task."""
        return "box" if self.kind == "box" else f"{self.kind}:{self.num_outputs}"

    def sample(self, n: int, generator: torch.Generator) -> Batch:
        raise NotImplementedError


def register_task(name: str, **meta: Any) -> Callable[[type], type]:
    """Class decorator registering a Task subclass under ``name``.

    Metadata the probes read (``TASKS.meta(name)``): ``kind`` (the head it needs),
    ``distance`` (what the distance of ``distances()`` measures, in words),
    ``bins`` (how the context probe bins it: ``near_cue`` fine bins from the cue,
    ``uniform`` bins over ``min_distance..max_distance``, ``fixed`` one bin at
    ``task.distance``) and ``sweep_param`` (a constructor argument swept per cell).
    """

    def deco(cls: type) -> type:
        cls.name = name
        TASKS.add(name, cls, **meta)
        return cls

    return deco


def list_tasks(pattern: str = "*") -> list[str]:
    return TASKS.names(pattern)


def create_task(name: str, **kwargs: Any) -> Task:
    return TASKS.get(name)(**kwargs)
