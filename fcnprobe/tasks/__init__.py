"""Synthetic tasks, generated on the fly from a seed; the registry lives here.

Importing this package registers every task module that exists.
"""
import importlib

from fcnprobe.tasks.base import TASKS, Batch, Task, create_task, list_tasks, register_task

_TASK_MODULES = ("context", "locate", "multi_output")

for _name in _TASK_MODULES:
    try:
        importlib.import_module(f"fcnprobe.tasks.{_name}")
    except ModuleNotFoundError as _exc:  # not built yet
        if _exc.name != f"fcnprobe.tasks.{_name}":
            raise

__all__ = ["TASKS", "Batch", "Task", "create_task", "list_tasks", "register_task"]
