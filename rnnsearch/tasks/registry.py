"""Tasks by name."""

from __future__ import annotations

import inspect
from typing import Any

from rnnsearch.errors import UserError
from rnnsearch.tasks.arithmetic import Arithmetic
from rnnsearch.tasks.base import Task
from rnnsearch.tasks.memorize import Memorize
from rnnsearch.tasks.ptb import PTB
from rnnsearch.tasks.xml import XML

TASKS: dict[str, type[Task]] = {"memorize": Memorize, "arithmetic": Arithmetic, "xml": XML, "ptb": PTB}

_CACHE: dict[tuple, Task] = {}


def get_task(name: str, **options: Any) -> Task:
    """A task by name with its size options (cached: data is generated once per process)."""
    if name not in TASKS:
        raise UserError(f"unknown task {name!r} (known: {', '.join(TASKS)})")
    cls = TASKS[name]
    allowed = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = set(options) - allowed
    if unknown:
        raise UserError(f"task {name} has no option {sorted(unknown)[0]!r} (options: {', '.join(sorted(allowed))})")
    key = (name, tuple(sorted(options.items())))
    if key not in _CACHE:
        try:
            _CACHE[key] = cls(**options)
        except ValueError as e:
            raise UserError(str(e)) from None
    return _CACHE[key]
