"""Data generators: the synthetic tasks (listed in :data:`TASKS`) and the text datasets
(``math_text``).

Every module of this package that declares ``TASK = TaskEntry(...)`` (:class:`rlntp.task.TaskEntry`)
is a task of :data:`TASKS`: ``python -m rlntp.data NAME`` prints its examples and the protocol
tests check it. Nothing to register by hand.
"""

from __future__ import annotations

import importlib
import pkgutil

from rlntp.task import P_COT, Param, TaskEntry

__all__ = ["P_COT", "TASKS", "Param", "TaskEntry", "tasks"]


def tasks() -> dict[str, TaskEntry]:
    """Every task of this package by its command name, in module-name order."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):  # __main__, the command line
            continue
        entry = getattr(importlib.import_module(f"{__name__}.{info.name}"), "TASK", None)
        if isinstance(entry, TaskEntry):
            found[entry.name] = entry
    return found


TASKS: dict[str, TaskEntry] = tasks()
