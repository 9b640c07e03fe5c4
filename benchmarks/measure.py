"""Where and under what load a benchmark ran: machine, commit, date, and the CPU time other
processes took meanwhile.

Every entry of ``results.json`` is measured inside :class:`Entry`, which records

- ``machine``: CPU model (``/proc/cpuinfo``), cores this process may use, torch threads;
- ``date`` (ISO, local time) and ``commit`` (``git rev-parse HEAD``, ``+modified`` when the
  checkout has uncommitted changes);
- ``loadavg_start`` / ``loadavg_end``: ``os.getloadavg()`` (1, 5, 15 minutes);
- ``other_load``: cores kept busy by *other* processes during the entry, from ``/proc/stat``
  (all CPU time) minus this process's own CPU time. ``loadavg`` counts this benchmark too (one
  busy thread adds about 1), so ``other_load`` is what says whether someone else distorted the
  numbers; :data:`BUSY` is the threshold the table flags.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from rlntp.results import cpu_model, git_commit, git_modified

BUSY = 0.5  # other processes kept more than this many cores busy: the numbers are suspect


def cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0))


def machine(threads: int | None = None) -> dict[str, Any]:
    """CPU model, cores, torch threads (``threads``, else torch's current setting)."""
    return {"cpu": cpu_model(), "cores": cores(),
            "torch_threads": threads if threads is not None else torch.get_num_threads(),
            "torch": torch.__version__}


def commit() -> str:
    """``git rev-parse HEAD`` (``+modified`` with uncommitted changes), or "unknown"."""
    sha = git_commit() or "unknown"
    return sha + ("+modified" if git_modified() else "")


def _busy_seconds() -> float | None:
    """CPU seconds all processes have used since boot (``/proc/stat``), None where unreadable."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class Entry:
    """A context that stamps one benchmark entry with its machine, date, commit and load.

    >>> with Entry(threads=1) as e:  # doctest: +SKIP
    ...     e.value = measure()
    >>> e.record()  # {"value": ..., "machine": ..., "date": ..., "other_load": ...}
    """

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads
        self.value: Any = None
        self.details: dict[str, Any] = {}
        self.stamp: dict[str, Any] = {}

    def __enter__(self) -> Entry:
        self._t0, self._cpu0, self._busy0 = time.monotonic(), time.process_time(), _busy_seconds()
        self.stamp = {"machine": machine(self.threads), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                      "commit": commit(), "loadavg_start": [round(x, 2) for x in os.getloadavg()]}
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = time.monotonic() - self._t0
        own = time.process_time() - self._cpu0
        busy1 = _busy_seconds()
        other = None
        if self._busy0 is not None and busy1 is not None and elapsed > 0:
            other = round(max(0.0, (busy1 - self._busy0 - own) / elapsed), 2)
        self.stamp |= {"loadavg_end": [round(x, 2) for x in os.getloadavg()],
                       "other_load": other, "elapsed_s": round(elapsed, 2)}

    def record(self) -> dict[str, Any]:
        return {"value": self.value, **self.details, **self.stamp}


def is_busy(stamp: dict[str, Any]) -> bool:
    """Whether an entry's ``other_load`` (else its loadavg less its own threads) exceeds BUSY."""
    if stamp.get("other_load") is not None:
        return stamp["other_load"] > BUSY
    own = stamp.get("machine", {}).get("torch_threads", 1)
    return max(stamp["loadavg_start"][0], stamp["loadavg_end"][0]) - own > BUSY


def time_calls(fn: Callable[[], Any], warmup: int, reps: int, min_s: float = 0.0) -> list[float]:
    """Seconds per call of ``fn`` after ``warmup`` calls: at least ``reps`` calls, and more until
    ``min_s`` seconds have passed."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < reps or time.perf_counter() - start < min_s:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs)
