"""Chapter 4: multiplication, a GPT trained from scratch on a long/short mixture, then GRPO
(paper Figs. 4 and 5 left).

Per seed, one pre-training run on the n x n multiplication mixture (:mod:`rlntp.data.multiplication`)
with checkpoints; from each checkpoint in ``branch_steps``, one RL run per method in ``methods``
(GRPO by default) with the ``reward`` kind at ``temperature``. Everything is resumable and cached
(:mod:`rlntp.experiments.runs`). Sequences seen: pre-training counts step x batch size, RL every
generated response.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from rlntp.config import ExperimentConfig, ModelPart, NTPPart, RLLoopPart, param, require
from rlntp.data.multiplication import MAX_DIGITS, MultiplicationTask
from rlntp.experiments.runs import (
    RLRun,
    check_checkpoints,
    pretrain_rows,
    pretrain_run,
    rl_rows,
    rl_run,
)
from rlntp.parallel import run_jobs
from rlntp.rl.train import METHODS, RLHistory
from rlntp.task import REWARDS
from rlntp.train import History

EXPERIMENT = "multiplication"

CPU = dict(n_layer=2, n_head=4, n_embd=128, pretrain_iters=6000, pretrain_batch_size=128,
           pretrain_eval_every=250, ckpt_every=250, eval_size=256, rl_iters=60, eval_every=5)


@dataclasses.dataclass(frozen=True)
class MultiplicationConfig(RLLoopPart, NTPPart, ModelPart, ExperimentConfig):
    """Pre-training on the multiplication mixture, then RL (``cpu`` preset: defaults + ``CPU``)."""

    CHAPTER: ClassVar[str] = "04_multiplication"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(digits=2, seeds=(0,), n_layer=1, n_embd=32, n_head=2, pretrain_iters=40,
                      pretrain_batch_size=32, pretrain_eval_every=10, ckpt_every=10,
                      eval_size=32, branch_steps=(20, 40), rl_iters=4, eval_every=2, workers=1),
        "cpu": CPU,
        "paper": dict(digits=5, n_layer=12, n_head=12, n_embd=768, pretrain_iters=100_000,
                      pretrain_batch_size=256, pretrain_learning_rate=3e-4, warmup_steps=1000,
                      pretrain_eval_every=2000, ckpt_every=2000, eval_size=640,
                      branch_steps=(10_000, 20_000, 40_000, 60_000, 80_000), rl_iters=500,
                      prompts_per_iter=16, eval_every=20),
    }

    digits: int = param(3, f"operand digits n (n x n multiplication; 1..{MAX_DIGITS})")
    p_cot: float = param(0.25, "fraction of long demonstrations in pre-training")
    branch_steps: tuple[int, ...] = param((1000, 3000, 5500), "checkpoints RL starts from")
    methods: tuple[str, ...] = param(("grpo",), f"RL methods, any of {tuple(METHODS)}")
    reward: str = param("e2e", f"RL reward, one of {REWARDS}")

    def check(self) -> None:
        require(1 <= self.digits <= MAX_DIGITS, "digits", self.digits,
                f"an integer in 1..{MAX_DIGITS} (products must fit int64)")
        require(0 <= self.p_cot <= 1, "p_cot", self.p_cot, "a number in [0, 1]")
        steps_ok = all(0 <= s <= self.pretrain_iters and s % self.ckpt_every == 0
                       and s % self.pretrain_eval_every == 0 for s in self.branch_steps)
        require(len(self.branch_steps) > 0 and steps_ok, "branch_steps", self.branch_steps,
                f"multiples of ckpt_every={self.ckpt_every} and pretrain_eval_every="
                f"{self.pretrain_eval_every} in 0..pretrain_iters={self.pretrain_iters}")
        require(len(self.methods) > 0 and set(self.methods) <= set(METHODS)
                and len(set(self.methods)) == len(self.methods), "methods", self.methods,
                f"a non-empty list of distinct values from {tuple(METHODS)}")
        require(self.reward in REWARDS, "reward", self.reward, f"one of {REWARDS}")

    @property
    def task(self) -> MultiplicationTask:
        return MultiplicationTask(self.digits, self.p_cot)


def rl_jobs(cfg: MultiplicationConfig) -> list[RLRun]:
    """Every method from every branch step, for every seed."""
    return [RLRun(m, cfg.reward, cfg.temperature, b, s) for m in cfg.methods
            for b in cfg.branch_steps for s in cfg.seeds]


def run_all(cfg: MultiplicationConfig) -> list[dict[str, Any]]:
    """Pre-training (one run per seed), then the RL runs; their tidy metric rows."""
    task = cfg.task
    pre: list[History] = run_jobs(pretrain_run, [(cfg, task, s) for s in cfg.seeds],
                                  cfg.n_workers, desc="pre-training")
    check_checkpoints(cfg, task)
    runs = rl_jobs(cfg)
    hists: list[RLHistory] = run_jobs(rl_run, [(cfg, task, r) for r in runs], cfg.n_workers,
                                      desc="RL runs")
    rows: list[dict[str, Any]] = []
    for seed, hist in zip(cfg.seeds, pre, strict=True):
        rows += pretrain_rows(hist, cfg, task, seed, EXPERIMENT, cfg.digits)
    return rows + rl_rows(dict(zip(runs, hists, strict=True)), cfg, task, EXPERIMENT, cfg.digits)
