"""Experiments: one module per chapter, each declaring one ``CHAPTER``
(:class:`rlntp.chapter.Chapter`: its config, stages, rows and claims).

:func:`chapters` finds them: every list of chapters (the runner, the cluster launcher, the
benchmarks, the scorecard) is derived from it, so a new chapter module is found by all of them.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from rlntp.chapter import Chapter


@functools.cache
def chapters() -> dict[str, Chapter]:
    """Every chapter of this package by name (its notebook's name), in name order."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        chapter = getattr(importlib.import_module(f"{__name__}.{info.name}"), "CHAPTER", None)
        if isinstance(chapter, Chapter):
            found[chapter.name] = chapter
    return dict(sorted(found.items()))
