"""Run independent jobs (seeds, p_cot values, ...) on all CPU cores, with one progress bar.

On a 2-core laptop two processes with one torch thread each are much faster for small models
than one process with two threads, and far faster than two processes with two threads each.
Jobs must be picklable top-level functions and arguments (they run in ``spawn`` processes).
"""

from __future__ import annotations

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
    """
    if workers <= 1 or len(jobs) <= 1:
        return [fn(*job) for job in tqdm(jobs, desc=desc, leave=False)]
    ctx = mp.get_context("spawn")
    with ctx.Pool(min(workers, len(jobs)), initializer=_init_worker) as pool:
        handles = [pool.apply_async(fn, job) for job in jobs]
        return [h.get() for h in tqdm(handles, desc=desc, leave=False)]
