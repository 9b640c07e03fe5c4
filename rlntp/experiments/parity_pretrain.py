"""Chapter 1: next-token pre-training on the parity mixture D(p_cot) (paper Fig. 2).

One *run* is one (p_cot, seed): a fresh GPT trained online on D(p_cot), evaluated every
``pretrain_eval_every`` iterations on ``eval_size`` fixed test prompts (greedy and temperature
1), with checkpoints every ``ckpt_every`` iterations that the RL chapter branches from. Runs are
resumable and cached under ``cfg.path / "runs"`` (:mod:`rlntp.experiments.runs`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from rlntp.config import ExperimentConfig, ModelPart, NTPPart, param, require
from rlntp.data.parity import ParityTask
from rlntp.experiments.runs import pretrain_rows, pretrain_run
from rlntp.parallel import Stage, run_stages

EXPERIMENT = "parity_pretrain"


@dataclasses.dataclass(frozen=True)
class ParityBase(NTPPart, ModelPart, ExperimentConfig):
    """What every parity chapter has: d, the model and its next-token pre-training."""

    d: int = param(16, "input bits")

    def check(self) -> None:
        require(self.d >= 2, "d", self.d, "an integer >= 2")

    def task(self, p_cot: float, chain_step: int = 1) -> ParityTask:
        return ParityTask(self.d, p_cot, chain_step)


@dataclasses.dataclass(frozen=True)
class ParityPretrainConfig(ParityBase):
    """Next-token pre-training on D(p_cot) for several p_cot (``cpu`` preset: defaults + its
    entry in ``PRESETS``)."""

    CHAPTER: ClassVar[str] = "01_parity_pretraining"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(d=8, p_cot_values=(0.1, 0.5), seeds=(0,), pretrain_iters=60,
                      pretrain_batch_size=32, pretrain_eval_every=30, eval_size=64, ckpt_every=30,
                      leap_p_cot_values=(0.25,), workers=1),
        # one layer and batch 256, as in chapter 2: learns the chain fastest on the cpu (ours)
        "cpu": dict(n_layer=1, pretrain_batch_size=256, pretrain_iters=1000, pretrain_eval_every=50,
                    ckpt_every=50, eval_size=640),
        "paper": dict(d=50, pretrain_iters=50_000, pretrain_batch_size=256, n_layer=4, n_embd=128,
                      n_head=4, pretrain_eval_every=1000, eval_size=640, ckpt_every=1000,
                      p_cot_values=(0.05, 0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6)),
    }

    p_cot_values: tuple[float, ...] = param((0.1, 0.2, 0.25, 0.3, 0.4, 0.6),
                                            "fractions of long demonstrations to sweep")
    chain_step: int = param(1, "1: the plain chain of prefix parities; k: every k-th")
    leap_step: int = param(2, "the chain step of the leap-k side experiment")
    leap_p_cot_values: tuple[float, ...] = param((0.25,), "p_cot values of the leap-k runs")

    def check(self) -> None:
        for name in ("p_cot_values", "leap_p_cot_values"):
            v = getattr(self, name)
            require(all(0 < p <= 1 for p in v), name, v, "values in (0, 1]")
            require(len(set(v)) == len(v), name, v, "distinct values")
        require(1 <= self.chain_step <= self.d, "chain_step", self.chain_step, f"1..d (d={self.d})")
        require(1 <= self.leap_step <= self.d, "leap_step", self.leap_step, f"1..d (d={self.d})")


def stages(cfg: ParityPretrainConfig) -> list[Stage]:
    """Every (p_cot, seed) run of the main sweep and of the leap-k side experiment."""
    tasks = [cfg.task(p, cfg.chain_step) for p in cfg.p_cot_values]
    tasks += [cfg.task(p, cfg.leap_step) for p in cfg.leap_p_cot_values]
    return [Stage("pre-training runs", pretrain_run, [(cfg, t, s) for t in tasks for s in cfg.seeds])]


def run_all(cfg: ParityPretrainConfig) -> list[dict[str, Any]]:
    """The runs of :func:`stages` (cached: a finished run is loaded), as tidy rows."""
    (stage,) = stages(cfg)
    (histories,) = run_stages([stage], cfg.n_workers)
    rows: list[dict[str, Any]] = []
    for (_, task, s), hist in zip(stage.jobs, histories, strict=True):
        k = task.chain_step
        exp = EXPERIMENT if k == cfg.chain_step else f"{EXPERIMENT}_leap{k}"
        rows += pretrain_rows(hist, cfg, task, s, exp, cfg.d)
    return rows
