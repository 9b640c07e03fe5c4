"""Chapter 2: RL after next-token pre-training on parity: GRPO, REINFORCE, STaR (paper Figs. 1, 3).

A pre-training run on D(p_cot) (chapter 1's :func:`pretrain_run`, cached under this chapter's
folder) leaves checkpoints; an *RL run* starts from one of them and trains with one method, one
reward and one sampling temperature tau. It is evaluated every ``eval_every`` iterations (STaR:
every round) on fixed test prompts, greedy and at temperature 1. Sequences seen: pre-training
counts step x batch size, RL counts every generated response (GRPO/REINFORCE: prompts_per_iter
x num_generations per iteration, STaR: ``star_samples`` per round). The RL loop itself is the
shared :func:`rlntp.rl.train.train_rl`.

A side experiment repeats pre-training and the GRPO branches at a rare ``low_p_cot`` (paper: at
p_cot = 0.01 length still rises from almost all checkpoints); its rows are experiment
``parity_rl_low``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from rlntp.config import RLLoopPart, param, require
from rlntp.experiments.parity_pretrain import ParityBase
from rlntp.experiments.runs import (
    RLRun,
    check_checkpoints,
    pretrain_rows,
    pretrain_run,
    rl_rows,
    rl_run,
)
from rlntp.parallel import Stage, run_stages
from rlntp.rl.train import METHODS, RLHistory
from rlntp.task import REWARDS
from rlntp.train import History

EXPERIMENT = "parity_rl"
LOW = "parity_rl_low"

CPU = dict(pretrain_iters=700, pretrain_batch_size=256, pretrain_eval_every=50,
           n_layer=1, ckpt_every=50, eval_size=640)


@dataclasses.dataclass(frozen=True)
class ParityRLConfig(RLLoopPart, ParityBase):
    """Pre-training on D(p_cot), then RL from its checkpoints (``cpu`` preset: defaults + ``CPU``)."""

    CHAPTER: ClassVar[str] = "02_parity_rl"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(d=6, p_cot=0.25, seeds=(0,), pretrain_iters=40, pretrain_batch_size=32,
                      ckpt_every=10, branch_steps=(10, 20, 30), rl_branch=30, rl_iters=4,
                      temperatures=(1.0,), star_rounds=2, star_samples=64, eval_every=2,
                      eval_size=32, pretrain_eval_every=10, workers=1),
        "cpu": CPU,  # one layer learns the chain fastest on the cpu (ours)
        "paper": dict(d=50, p_cot=0.25, pretrain_iters=50_000, pretrain_batch_size=256,
                      n_layer=4, n_embd=128, n_head=4, ckpt_every=1000,
                      branch_steps=(5000, 10_000, 20_000, 30_000, 40_000), rl_branch=20_000,
                      rl_iters=1000, star_rounds=10, eval_every=20, eval_size=640,
                      pretrain_eval_every=1000),
    }

    p_cot: float = param(0.1, "fraction of long demonstrations in pre-training")
    branch_steps: tuple[int, ...] = param((150, 300, 600), "checkpoints GRPO starts from (Fig. 1)")
    rl_branch: int = param(600, "the checkpoint of the method comparison (Fig. 3) and of STaR")
    methods: tuple[str, ...] = param(tuple(METHODS), f"any of {tuple(METHODS)}")
    rewards: tuple[str, ...] = param(REWARDS, f"any of {REWARDS}")
    temperatures: tuple[float, ...] = param((0.75, 1.0, 1.5), "RL temperatures of the Fig. 3 grid")
    grid_n_seeds: int = param(0, "the Fig. 3 grid runs on the first N seeds (0: all)")
    low_p_cot: float = param(0.01, "a rare p_cot: pre-training and GRPO from every branch step, "
                             "every seed (0: skip)")

    def check(self) -> None:
        require(0 < self.p_cot <= 1, "p_cot", self.p_cot, "a float in (0, 1]")
        steps_ok = all(0 <= s <= self.pretrain_iters and s % self.ckpt_every == 0
                       and s % self.pretrain_eval_every == 0 for s in self.branch_steps)
        require(len(self.branch_steps) > 0 and steps_ok, "branch_steps", self.branch_steps,
                f"multiples of ckpt_every={self.ckpt_every} and pretrain_eval_every="
                f"{self.pretrain_eval_every} in 0..pretrain_iters={self.pretrain_iters}")
        require(self.rl_branch in self.branch_steps, "rl_branch", self.rl_branch,
                f"one of branch_steps={self.branch_steps}")
        for name, allowed in (("methods", tuple(METHODS)), ("rewards", REWARDS)):
            v = getattr(self, name)
            require(len(v) > 0 and set(v) <= set(allowed) and len(set(v)) == len(v), name, v,
                    f"a non-empty list of distinct values from {allowed}")
        require(len(self.temperatures) > 0 and all(t > 0 for t in self.temperatures),
                "temperatures", self.temperatures, "a non-empty list of positive floats")
        require(self.grid_n_seeds >= 0, "grid_n_seeds", self.grid_n_seeds,
                "an integer >= 0 (0: all seeds)")
        require(0 <= self.low_p_cot < self.p_cot, "low_p_cot", self.low_p_cot,
                f"0 (skip) or a float in (0, p_cot={self.p_cot})")


MAIN_RUNS = (("grpo", "e2e"), ("reinforce", "e2e"), ("star", "cot"))  # at tau = 1, every seed


def grid_seeds(cfg: ParityRLConfig) -> tuple[int, ...]:
    """The seeds of the Fig. 3 grid: the first ``grid_n_seeds`` (0: all)."""
    return cfg.seeds[:cfg.grid_n_seeds or None]


def rl_jobs(cfg: ParityRLConfig) -> list[RLRun]:
    """Fig. 1 (GRPO, e2e, tau = ``temperature`` from every branch step, every seed); at
    ``rl_branch`` the runs the checks need (:data:`MAIN_RUNS`, every seed) and the Fig. 3 grid
    (:func:`grid_seeds`). Only methods and rewards the config lists run."""
    t = cfg.temperature
    runs = [RLRun("grpo", "e2e", t, b, s) for b in cfg.branch_steps for s in cfg.seeds
            if "grpo" in cfg.methods and "e2e" in cfg.rewards]
    runs += [RLRun(m, r, t, cfg.rl_branch, s) for m, r in MAIN_RUNS if m in cfg.methods
             and r in cfg.rewards for s in cfg.seeds]
    for s in grid_seeds(cfg):
        runs += [RLRun(m, r, tau, cfg.rl_branch, s) for m in cfg.methods for r in cfg.rewards
                 for tau in cfg.temperatures]
    return list(dict.fromkeys(runs))  # drop duplicates, keep the order


def low_jobs(cfg: ParityRLConfig) -> list[RLRun]:
    """The side experiment at ``low_p_cot``: GRPO (e2e, tau = ``temperature``) from every
    branch step, every seed (none when ``low_p_cot`` is 0 or GRPO/e2e are left out)."""
    if not cfg.low_p_cot or "grpo" not in cfg.methods or "e2e" not in cfg.rewards:
        return []
    return [RLRun("grpo", "e2e", cfg.temperature, b, s) for b in cfg.branch_steps for s in cfg.seeds]


def stages(cfg: ParityRLConfig) -> list[Stage]:
    """Pre-training per seed (at p_cot and, for :func:`low_jobs`, at low_p_cot), then every RL
    run of :func:`rl_jobs` (longest first) and of :func:`low_jobs`."""
    task = cfg.task(cfg.p_cot)
    tasks = [task] + ([cfg.task(cfg.low_p_cot)] if low_jobs(cfg) else [])
    runs = [(cfg, task, r) for r in sorted(rl_jobs(cfg), key=lambda r: r.method != "star")]
    runs += [(cfg, tasks[-1], r) for r in low_jobs(cfg)]
    return [Stage("pre-training", pretrain_run, [(cfg, t, s) for t in tasks for s in cfg.seeds]),
            Stage("RL runs", rl_run, runs)]


def pretrain_all(cfg: ParityRLConfig) -> dict[float, dict[int, History]]:
    """The pre-training runs (cached and resumable): ``{p_cot: {seed: history}}``."""
    stage = stages(cfg)[0]
    (hists,) = run_stages([stage], cfg.n_workers)
    out: dict[float, dict[int, History]] = {}
    for (_, task, seed), hist in zip(stage.jobs, hists, strict=True):
        check_checkpoints(cfg, task)
        out.setdefault(task.p_cot, {})[seed] = hist
    return out


def rl_all(cfg: ParityRLConfig) -> dict[float, dict[RLRun, RLHistory]]:
    """The RL runs, from the pre-training checkpoints: ``{p_cot: {run: history}}``."""
    stage = stages(cfg)[1]
    (hists,) = run_stages([stage], cfg.n_workers)
    out: dict[float, dict[RLRun, RLHistory]] = {}
    for (_, task, run), hist in zip(stage.jobs, hists, strict=True):
        out.setdefault(task.p_cot, {})[run] = hist
    return out


def rows(cfg: ParityRLConfig, pre: dict[float, dict[int, History]] | None = None,
         rl: dict[float, dict[RLRun, RLHistory]] | None = None) -> list[dict[str, Any]]:
    """Tidy rows of the pre-training runs ``pre`` and the RL runs ``rl``: experiment
    :data:`EXPERIMENT` at p_cot, :data:`LOW` at low_p_cot."""
    out: list[dict[str, Any]] = []
    for p in dict.fromkeys([*(pre or {}), *(rl or {})]):
        task, exp = cfg.task(p), EXPERIMENT if p == cfg.p_cot else LOW
        for seed, hist in (pre or {}).get(p, {}).items():
            out += pretrain_rows(hist, cfg, task, seed, exp, cfg.d)
        out += rl_rows((rl or {}).get(p, {}), cfg, task, exp, cfg.d)
    return out
