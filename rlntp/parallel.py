"""Run independent jobs (seeds, p_cot values, ...) on all CPU cores, with one progress bar.

A chapter's work is a list of :class:`Stage` s: each a function and the argument tuples of its
independent jobs (one run each: cached or resumable, so running a job twice only loads it);
a later stage may read what an earlier one saved. The same stages run here, in worker processes
(:func:`run_stages`), or as cluster jobs (:mod:`rlntp.launch`).

On a 2-core laptop two processes with one torch thread each are much faster for small models
than one process with two threads, and far faster than two processes with two threads each.
Jobs must be picklable top-level functions and arguments (they run in ``spawn`` processes).
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
from tqdm.auto import tqdm

T = TypeVar("T")


def _init_worker() -> None:
    torch.set_num_threads(1)


def run_jobs(fn: Callable[..., T], jobs: Sequence[tuple[Any, ...]], workers: int = 1,
             desc: str = "runs") -> list[T]:
    """``[fn(*job) for job in jobs]``, in ``workers`` processes when ``workers > 1``.

    With one worker the jobs run in this process with the torch thread count left as it is.
    Fewer than ``2 * workers`` jobs run all at once, one process each: n jobs of equal length
    then take n / workers of one job's time on the time-shared cores, where ``workers``
    processes would take ceil(n / workers), leaving a core idle in the last round (3 seeds on
    2 cores: 1.5 instead of 2).
    """
    if workers <= 1 or len(jobs) <= 1:
        return [fn(*job) for job in tqdm(jobs, desc=desc, leave=False)]
    ctx = mp.get_context("spawn")
    processes = len(jobs) if len(jobs) < 2 * workers else workers
    with ctx.Pool(processes, initializer=_init_worker) as pool:
        handles = [pool.apply_async(fn, job) for job in jobs]
        return [h.get() for h in tqdm(handles, desc=desc, leave=False)]


@dataclasses.dataclass(frozen=True)
class Stage:
    """Independent jobs ``fn(*args)`` for each ``args`` in ``jobs``; ``desc`` names them."""

    desc: str
    fn: Callable[..., Any]
    jobs: list[tuple[Any, ...]]


def run_stages(stages: Sequence[Stage], workers: int = 1) -> list[list[Any]]:
    """Each stage's results, in order (a stage starts when the previous one has finished)."""
    return [run_jobs(st.fn, st.jobs, workers, st.desc) for st in stages]
