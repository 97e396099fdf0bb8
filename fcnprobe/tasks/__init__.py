"""Synthetic tasks, generated on the fly from a seed; the registry lives here.

Importing this package registers every task module in it (adding a task is adding a file).
"""
from fcnprobe.registry import import_submodules
from fcnprobe.tasks.base import TASKS, Batch, Task, create_task, list_tasks, register_task

import_submodules(__name__, __path__)

__all__ = ["TASKS", "Batch", "Task", "create_task", "list_tasks", "register_task"]
