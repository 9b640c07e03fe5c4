"""Run a chapter's stages as cluster jobs with submitit: SLURM, or submitit's local executor.

Every job is one run of a :class:`rlntp.parallel.Stage` (cached or resumable), so the chapter's
notebook, executed afterwards, finds every run done and only aggregates and plots::

    python -m rlntp.book --preset paper --launcher slurm --partition gpu --gpus 1 \\
        --only 01_parity_pretraining
    python -m rlntp.book --preset smoke --launcher local --only 01_parity_pretraining

A job that fails or is preempted is submitted again, at most ``retries`` times; being a run that
resumes from its last checkpoint, it continues where it stopped. Job logs go to
``RUNS_DIR/PRESET/CHAPTER/jobs/``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from rlntp.config import ConfigError, param, require
from rlntp.parallel import Stage

LAUNCHERS = ("local", "slurm")


@dataclasses.dataclass(frozen=True)
class Resources:
    """What each job asks the cluster for (flags of ``python -m rlntp.book``, or a YAML file)."""

    partition: str | None = param(None, "SLURM partition (None: the cluster's default)")
    gpus: int = param(0, "GPUs per job")
    cpus: int = param(1, "CPU cores per job (the job's torch threads)")
    mem_gb: int = param(8, "memory per job, GB")
    time_min: int = param(60, "time limit per job, minutes")
    retries: int = param(2, "resubmissions of a failed or preempted job")
    parallel: int = param(0, "jobs running at once (0: all at once on slurm, cpu cores // cpus locally)")

    def __post_init__(self) -> None:
        require(self.partition is None or isinstance(self.partition, str) and self.partition != "",
                "partition", self.partition, "a partition name, or none (the cluster's default)")
        for name, low in (("gpus", 0), ("retries", 0), ("parallel", 0), ("cpus", 1), ("mem_gb", 1),
                          ("time_min", 1)):
            value = getattr(self, name)
            require(type(value) is int and value >= low, name, value, f"an integer >= {low}")

    @classmethod
    def from_yaml(cls, path: str | Path, **flags: Any) -> Resources:
        """Fields from the YAML file ``path`` (a mapping), then the ``flags`` that are not None."""
        import yaml

        names = sorted(f.name for f in dataclasses.fields(cls))
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, ValueError, yaml.YAMLError) as e:
            raise ConfigError(f"--resources {path}: cannot be read: {' '.join(str(e).split())}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"--resources {path}: a mapping of fields ({', '.join(names)}), e.g. "
                              f"'gpus: 1', not a {type(data).__name__}")
        unknown = sorted(map(str, set(data) - set(names)))
        if unknown:
            raise ConfigError(f"--resources {path}: unknown keys {unknown}; allowed: {names}")
        try:
            return cls(**{**data, **{k: v for k, v in flags.items() if v is not None}})
        except ConfigError as e:
            raise ConfigError(f"--resources {path}: {e}") from None


def executor(kind: str, folder: Path, res: Resources):
    """A submitit executor for ``kind`` ("local" or "slurm") writing its logs to ``folder``."""
    import submitit

    require(kind in LAUNCHERS, "launcher", kind, f"one of {LAUNCHERS}")
    ex = submitit.AutoExecutor(folder=str(folder), cluster=kind)
    params: dict[str, Any] = dict(timeout_min=res.time_min, gpus_per_node=res.gpus,
                                  cpus_per_task=res.cpus, mem_gb=res.mem_gb, name="rlntp")
    if kind == "slurm" and res.partition:
        params["slurm_partition"] = res.partition
    ex.update_parameters(**params)
    return ex


def run_job(threads: int, fn: Any, *args: Any) -> Any:
    """One job on a node: ``fn(*args)`` with ``threads`` torch threads."""
    import torch

    torch.set_num_threads(threads)
    return fn(*args)


def launch(stages: Sequence[Stage], kind: str, folder: str | Path, res: Resources) -> None:
    """Run every job of every stage through submitit; wait with a progress bar; resubmit failed
    jobs up to ``res.retries`` times; raise with the last error if one still fails."""
    import os

    folder = Path(folder)
    ex = executor(kind, folder, res)
    limit = res.parallel or (max(1, len(os.sched_getaffinity(0)) // res.cpus) if kind == "local"
                             else 10**9)
    running: dict[int, Any] = {}
    try:
        for stage in stages:
            _run_stage(stage, ex, kind, res, limit, running)
    finally:  # stopped (Ctrl-C, SIGTERM) or failed: what was submitted is cancelled too
        for job in running.values():
            job.cancel(check=False)


def _run_stage(stage: Stage, ex: Any, kind: str, res: Resources, limit: int,
               running: dict[int, Any]) -> None:
    """Every job of ``stage``, at most ``limit`` at once; ``running`` holds the submitted ones."""
    todo = list(range(len(stage.jobs)))  # jobs not yet finished
    tries = dict.fromkeys(todo, 0)
    bar = tqdm(total=len(todo), desc=f"{stage.desc} ({kind})", unit="job")
    while todo or running:
        while todo and len(running) < limit:
            i = todo.pop(0)
            tries[i] += 1
            running[i] = ex.submit(run_job, res.cpus, stage.fn, *stage.jobs[i])
        time.sleep(0.5)
        for i, job in list(running.items()):
            if not job.done():
                continue
            del running[i]
            error = job.exception()
            if error is None:
                bar.update(1)
            elif tries[i] <= res.retries:
                tqdm.write(f"{stage.desc}: job {i} failed ({type(error).__name__}); "
                           f"resubmitting (try {tries[i] + 1} of {res.retries + 1})")
                todo.insert(0, i)
            else:
                bar.close()
                raise RuntimeError(f"{stage.desc}: job {i} failed {tries[i]} times; its log: "
                                   f"{job.paths.stderr}") from error
    bar.close()
