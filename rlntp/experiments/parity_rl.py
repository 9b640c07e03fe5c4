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
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from rlntp.chapter import Chapter, Done
from rlntp.claims import Claim, Result, fmt
from rlntp.config import TEMPERATURES, RLLoopPart, is_temperature, param, require, require_list
from rlntp.experiments.parity_pretrain import CHAIN, CHANCE, LEARNED, TRANSFORMER, ParityBase
from rlntp.experiments.runs import (
    RLRun,
    pretrain_rows,
    pretrain_run,
    require_branch_steps,
    rl_rows,
    rl_run,
)
from rlntp.parallel import Stage
from rlntp.rl.star import star_recursion
from rlntp.rl.train import METHODS
from rlntp.task import REWARDS

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
        require_branch_steps(self)
        require(self.rl_branch in self.branch_steps, "rl_branch", self.rl_branch,
                f"one of branch_steps={self.branch_steps}")
        for name, allowed in (("methods", tuple(METHODS)), ("rewards", REWARDS)):
            require_list(self, name, f"values from {allowed}", lambda v, allowed=allowed: v in allowed)
        require_list(self, "temperatures", TEMPERATURES, is_temperature)
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


def rows(cfg: ParityRLConfig, done: Done) -> list[dict[str, Any]]:
    """Tidy rows: every pre-training run, then every RL run; experiment :data:`EXPERIMENT` at
    p_cot, :data:`LOW` at low_p_cot."""
    def experiment(task: Any) -> str:
        return EXPERIMENT if task.p_cot == cfg.p_cot else LOW

    out: list[dict[str, Any]] = []
    for (_, task, seed), hist in done["pre-training"]:
        out += pretrain_rows(hist, cfg, task, seed, experiment(task))
    for (_, task, run), hist in done["RL runs"]:
        out += rl_rows({run: hist}, cfg, task, experiment(task))
    return out


# --- claims (paper.md sec. 3) -------------------------------------------------------------------
def rl_wide(df: pd.DataFrame, method: str, reward: str, temperature: float, branch: int,
            experiment: str = EXPERIMENT) -> pd.DataFrame:
    """One RL configuration's rows, one column per metric (index seed, step)."""
    sub = df[(df.experiment == experiment) & (df.phase == "rl") & (df.method == method)
             & (df.reward == reward)
             & np.isclose(df.temperature.astype(float), temperature) & (df.branch_step == branch)]
    return sub.pivot_table(index=["seed", "step"], columns="metric", values="value").reset_index()


def _rl_learns(method: str, reward: str) -> Callable[[pd.DataFrame, Any], Result]:
    def measure(df: pd.DataFrame, cfg: Any) -> Result:
        w = rl_wide(df, method, reward, cfg.temperature, cfg.rl_branch)
        if w.empty:
            return Result("", None, f"{method} with the {reward} reward is not in methods x rewards")
        budget = cfg.rl_iters if method != "star" else min(10, cfg.star_rounds)
        ok = (w.acc_greedy >= LEARNED) & ((w.len_median_greedy == cfg.d) | (method == "star"))
        first = w[ok].groupby("seed").step.min().reindex(sorted(w.seed.unique()))  # NaN: never
        unit = "rounds" if method == "star" else "iterations"
        text = (f"{unit} to greedy acc >= {LEARNED}: " + ", ".join(
            f"seed {s}: {'never' if pd.isna(v) else int(v)}" for s, v in first.items())
            + f" (budget {budget}; from step {cfg.rl_branch}, tau = {cfg.temperature:g})")
        return Result(text, bool(first.notna().all() and first.max() <= budget))
    return measure


def star_recursion_gaps(df: pd.DataFrame, cfg: Any) -> list[float]:
    """|measured long fraction - recursion iterated from the measured p_0| at rounds 1-3, for
    every seed of STaR (cot reward, tau = ``temperature``, from ``rl_branch``)."""
    w = rl_wide(df, "star", "cot", cfg.temperature, cfg.rl_branch)
    gaps = []
    for _, run in w.groupby("seed"):
        run = run.sort_values("step")
        rec = star_recursion(run.frac_long_sample.iloc[0], int(run.step.max()))
        pairs = zip(run.step, run.frac_long_sample, strict=True)
        gaps += [abs(v - rec[int(k)]) for k, v in pairs if 1 <= k <= 3]
    return gaps


def star_recursion_transformer(df: pd.DataFrame, cfg: Any) -> Result:
    w = rl_wide(df, "star", "cot", cfg.temperature, cfg.rl_branch)
    if w.empty:
        return Result("", None, "STaR with the cot reward is not in methods x rewards")
    gaps = star_recursion_gaps(df, cfg)
    if not gaps:
        return Result("", None, "every STaR run stopped before round 1")
    return Result(f"max |long fraction - recursion| over rounds 1-3 = {max(gaps):.3f} "
                  f"({w.seed.nunique()} seed(s))", bool(max(gaps) <= 0.1))


def too_early_parity(df: pd.DataFrame, cfg: Any) -> Result:
    """Per GRPO run (branch step x seed) from a checkpoint whose chain is not known: is there an
    evaluation where the median greedy length is above 1 while greedy accuracy is below
    :data:`LEARNED` (length up, no generalisation, even if it falls back later)?"""
    pre = df[(df.experiment == EXPERIMENT) & (df.phase == "pretrain")].pivot_table(
        index=["seed", "step"], columns="metric", values="value")
    cases, runs = [], 0
    for b in cfg.branch_steps:
        w = rl_wide(df, "grpo", "e2e", cfg.temperature, b)
        for s, run in w.groupby("seed"):
            runs += 1
            chain = pre.loc[(s, b), "acc_sample_long"] if (s, b) in pre.index else np.nan
            long = run[(run.len_median_greedy > 1) & (run.acc_greedy < LEARNED)].sort_values("step")
            if chain < CHAIN and not long.empty:
                first = long.iloc[0]
                cases.append(f"step {b}, seed {s}: long answers right {fmt(chain)}; at RL iteration "
                             f"{int(first.step)} length {first.len_median_greedy:g}, accuracy "
                             f"{fmt(first.acc_greedy)} ({len(long)} of {len(run)} evaluations)")
    if not runs:
        return Result("", None, "no GRPO branch with the e2e reward")
    return Result(f"{len(cases)} of {runs} GRPO runs" + (": " + "; ".join(cases) if cases else ""),
                  bool(cases))


def star_hot_fails(df: pd.DataFrame, cfg: Any) -> Result:
    hot = max(cfg.temperatures)
    w = rl_wide(df, "star", "e2e", hot, cfg.rl_branch)
    if w.empty:
        return Result("", None, "STaR with the e2e reward is not run at this preset's temperatures")
    end = w[w.step == w.groupby("seed").step.transform("max")]
    return Result(f"final greedy accuracy at tau = {hot:g}: " + ", ".join(
        f"seed {s}: {v:.2f}" for s, v in zip(end.seed, end.acc_greedy, strict=True)),
        bool(end.acc_greedy.max() <= CHANCE))


def grpo_length_rises_at_001(df: pd.DataFrame, cfg: Any) -> Result:
    """Per (branch step, seed) GRPO run of the ``low_p_cot`` side experiment: does the median
    greedy length rise above 1? "Almost all": at least 3 runs in 4."""
    if not np.isclose(cfg.low_p_cot, 0.01):
        return Result("", None, f"low_p_cot = {cfg.low_p_cot}; run the chapter with -p low_p_cot 0.01")
    ends = []
    for b in cfg.branch_steps:
        w = rl_wide(df, "grpo", "e2e", cfg.temperature, b, LOW)
        ends += [(b, s, run.sort_values("step").iloc[-1]) for s, run in w.groupby("seed")]
    if not ends:
        return Result("", None, "no GRPO branch with the e2e reward at low_p_cot")
    up = [e for e in ends if e[2].len_median_greedy > 1]
    pre = df[(df.experiment == LOW) & (df.phase == "pretrain") & (df.metric == "acc_sample_long")
             & df.step.isin(cfg.branch_steps)].value
    text = (f"sampled long answers right {fmt(pre.median())} at the checkpoints (median); "
            f"median greedy length rose above 1 in {len(up)} of {len(ends)} GRPO runs (branch steps "
            + ", ".join(f"{b}" for b in cfg.branch_steps) + f"; {len({s for _, s, _ in ends})} seed(s)); "
            "final greedy accuracy " + ", ".join(
                f"{fmt(e.acc_greedy)} (step {b}, seed {s})" for b, s, e in ends))
    return Result(text, bool(len(up) >= 0.75 * len(ends)))


N64 = TRANSFORMER + "; n = 64 per iteration"
CHAPTER = Chapter(ParityRLConfig, rows, stages, claims=(
    Claim("grpo", "3", "GRPO after next-token prediction learns parity within few iterations, the "
          "median greedy length growing from 1 to d", N64,
          f"every seed reaches greedy acc >= {LEARNED} with median length d within rl_iters",
          "fig-02-branches", _rl_learns("grpo", "e2e")),
    Claim("reinforce", "3", "REINFORCE does the same", N64,
          f"every seed reaches greedy acc >= {LEARNED} with median length d within rl_iters",
          "fig-02-methods", _rl_learns("reinforce", "e2e")),
    Claim("star", "3", "STaR (chain-of-thought reward) learns parity in a few rounds",
          TRANSFORMER + "; n = 3,200 per round", f"every seed reaches greedy acc >= {LEARNED} within "
          "10 rounds", "fig-02-methods", _rl_learns("star", "cot")),
    Claim("star_recursion", "3", "STaR's long fraction follows p_n = 2p_{n-1}/(1+p_{n-1})",
          TRANSFORMER, "max gap <= 0.1 over rounds 1-3 (recursion from the measured round 0)",
          "fig-02-star", star_recursion_transformer),
    Claim("too_early", "3", "RL started too early raises length without generalising",
          TRANSFORMER, f"some GRPO run from a checkpoint whose long answers are right < {CHAIN} has an "
          f"evaluation with median greedy length > 1 and greedy acc < {LEARNED}", "fig-02-branches",
          too_early_parity),
    Claim("star_hot", "3", "STaR at high temperature with the end-to-end reward fails",
          TRANSFORMER, f"final greedy acc <= {CHANCE} on every seed at the highest temperature",
          "fig-02-methods", star_hot_fails),
    Claim("grpo_001", "3", "At p_cot = 0.01, length still rises under GRPO from almost all "
          "checkpoints", TRANSFORMER, "median greedy length > 1 at the end of >= 75% of the GRPO runs "
          "(branch step x seed)", "fig-02-low", grpo_length_rises_at_001),
))
