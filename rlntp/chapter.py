"""A chapter of the book as one object: its config, its runs, its metric rows and its claims.

Every module of :mod:`rlntp.experiments` declares one ``CHAPTER = Chapter(...)``, and every list
of chapters (the book runner, the cluster launcher, the benchmarks, the scorecard) is derived
from those objects (:func:`rlntp.experiments.chapters`). A notebook narrates and calls it::

    cfg = resolve_notebook(CHAPTER.config, globals())
    run = CHAPTER.run(cfg)           # every stage's jobs (cached), then tidy rows -> metrics.csv
    show_claims(run.metrics, cfg)    # CHAPTER.claims decided on those rows

The one runner (:meth:`Chapter.run`) executes the stages in order (a later stage may read what an
earlier one saved), hands each job's arguments and result to the chapter's ``rows`` function and
writes its ``metrics.csv``. The same stages go to a cluster as jobs (:mod:`rlntp.launch`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pandas as pd

from rlntp.claims import Claim
from rlntp.parallel import Stage, run_stages
from rlntp.results import write_metrics

# stage description -> [(job arguments, job result)] in the stage's order
Done = dict[str, list[tuple[tuple[Any, ...], Any]]]


@dataclasses.dataclass(frozen=True)
class Run:
    """What :meth:`Chapter.run` returns: the tidy metrics and every job's raw result."""

    metrics: pd.DataFrame
    done: Done


def _no_stages(cfg: Any) -> list[Stage]:
    return []


def _no_data(cfg: Any) -> str | None:
    return None


@dataclasses.dataclass(frozen=True)
class Chapter:
    """A chapter: ``config`` (an :class:`rlntp.config.ExperimentConfig` whose ``CHAPTER`` names
    the notebook), ``stages(cfg)`` (its independent runs), ``rows(cfg, done)`` (their tidy metric
    rows), its ``claims`` (possibly none) and ``data(cfg)``, a hash of the contents of the data
    files it reads (None: it reads none)."""

    config: type
    rows: Callable[[Any, Done], list[dict[str, Any]]]
    stages: Callable[[Any], list[Stage]] = _no_stages
    claims: tuple[Claim, ...] = ()
    data: Callable[[Any], str | None] = _no_data

    @property
    def name(self) -> str:
        """The notebook's name, e.g. ``01_parity_pretraining``."""
        return self.config.CHAPTER

    def run(self, cfg: Any) -> Run:
        """Every stage in order (finished runs are loaded from their caches), then the rows,
        written to ``cfg.path / "metrics.csv"``."""
        stages = self.stages(cfg)
        results = run_stages(stages, cfg.n_workers)
        done = {st.desc: list(zip(st.jobs, res, strict=True)) for st, res in zip(stages, results,
                                                                                  strict=True)}
        rows = self.rows(cfg, done)
        write_metrics(rows, cfg.path / "metrics.csv")
        return Run(pd.DataFrame(rows), done)
