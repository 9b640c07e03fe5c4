"""Chapter 1: next-token pre-training on the parity mixture D(p_cot) (paper Fig. 2).

One *run* is one (p_cot, seed): a fresh GPT trained online on D(p_cot), evaluated every
``pretrain_eval_every`` iterations on ``eval_size`` fixed test prompts (greedy and temperature
1), with checkpoints every ``ckpt_every`` iterations that the RL chapter branches from. Runs are
resumable and cached under ``cfg.path / "runs"`` (:mod:`rlntp.experiments.runs`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import pandas as pd

from rlntp.chapter import Chapter, Done
from rlntp.claims import Claim, Result, fmt
from rlntp.config import ExperimentConfig, ModelPart, NTPPart, param, require, require_list
from rlntp.data.parity import ParityTask
from rlntp.experiments.runs import pretrain_rows, pretrain_run
from rlntp.parallel import Stage

EXPERIMENT = "parity_pretrain"
CHANCE = 0.6  # greedy accuracy at most this: "at chance" (chance is 0.5)
LEARNED = 0.95  # greedy accuracy at least this: "learned"
CHAIN = 0.9  # sampled long answers right at least this often: the chain is known


@dataclasses.dataclass(frozen=True)
class ParityBase(NTPPart, ModelPart, ExperimentConfig):
    """What every parity chapter has: d, the model and its next-token pre-training."""

    d: int = param(16, "input bits")

    def check(self) -> None:
        require(self.d >= 2, "d", self.d, "an integer >= 2")

    def task(self, p_cot: float, chain_step: int = 1) -> ParityTask:
        return ParityTask(self.d, p_cot, chain_step)

    def scale(self) -> str:
        return f"d = {self.d}, GPT {self.n_layer} x {self.n_embd}, {super().scale()}"


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
            require_list(self, name, "numbers in (0, 1]", lambda p: 0 < p <= 1)
        require(1 <= self.chain_step <= self.d, "chain_step", self.chain_step, f"1..d (d={self.d})")
        require(1 <= self.leap_step <= self.d, "leap_step", self.leap_step, f"1..d (d={self.d})")


def stages(cfg: ParityPretrainConfig) -> list[Stage]:
    """Every (p_cot, seed) run of the main sweep and of the leap-k side experiment."""
    tasks = [cfg.task(p, cfg.chain_step) for p in cfg.p_cot_values]
    tasks += [cfg.task(p, cfg.leap_step) for p in cfg.leap_p_cot_values]
    return [Stage("pre-training runs", pretrain_run, [(cfg, t, s) for t in tasks for s in cfg.seeds])]


def rows(cfg: ParityPretrainConfig, done: Done) -> list[dict[str, Any]]:
    """Tidy rows of every run: experiment ``parity_pretrain``, or ``parity_pretrain_leapK``."""
    out: list[dict[str, Any]] = []
    for (_, task, s), hist in done["pre-training runs"]:
        k = task.chain_step
        exp = EXPERIMENT if k == cfg.chain_step else f"{EXPERIMENT}_leap{k}"
        out += pretrain_rows(hist, cfg, task, s, exp)
    return out


# --- claims (paper.md sec. 2), decided on the final evaluation, median over seeds -------------------
def final(df: pd.DataFrame, experiment: str = EXPERIMENT) -> pd.DataFrame:
    """Pre-training rows of ``experiment`` at the last step: one row per (p_cot, seed)."""
    sub = df[(df.experiment == experiment) & (df.phase == "pretrain")]
    sub = sub[sub.step == sub.step.max()]
    return sub.pivot_table(index=["p_cot", "seed"], columns="metric", values="value").reset_index()


def _per_p(final: pd.DataFrame, metric: str, ps: Any) -> str:
    """``metric`` per p_cot (median over seeds) as text, with the seed count."""
    med = final[final.p_cot.isin(ps)].groupby("p_cot")[metric].median()
    seeds = final.seed.nunique()
    return ", ".join(f"{fmt(v)} (p_cot = {p:g})" for p, v in med.items()) + f"; median of {seeds} seed(s)"


def ntp_at_chance_below_third(df: pd.DataFrame, cfg: Any) -> Result:
    end = final(df)
    below = sorted(p for p in end.p_cot.unique() if p < 1 / 3)
    if not below:
        return Result("", None, "no p_cot below 1/3 in p_cot_values")
    acc = end[end.p_cot.isin(below)].groupby("p_cot").acc_greedy.median()
    return Result("greedy accuracy " + _per_p(end, "acc_greedy", below), bool(acc.max() <= CHANCE))


def ntp_learns_above_third(df: pd.DataFrame, cfg: Any) -> Result:
    end = final(df)
    above = sorted(p for p in end.p_cot.unique() if p > 1 / 3)
    if not above:
        return Result("", None, "no p_cot above 1/3 in p_cot_values")
    acc = end[end.p_cot.isin(above)].groupby("p_cot").acc_greedy.median()
    return Result("greedy accuracy " + _per_p(end, "acc_greedy", above), bool(acc.min() >= LEARNED))


def chain_learned_below_third(df: pd.DataFrame, cfg: Any) -> Result:
    end = final(df)
    below = sorted(p for p in end.p_cot.unique() if 0 < p < 1 / 3)
    if not below or "acc_sample_long" not in end:
        return Result("", None, "no p_cot in (0, 1/3) in p_cot_values")
    right = end[end.p_cot.isin(below)].groupby("p_cot").acc_sample_long.median()
    short = end[end.p_cot.isin(below)].groupby("p_cot").len_median_greedy.median()
    return Result("sampled long answers right " + _per_p(end, "acc_sample_long", below)
                  + "; median greedy length " + ", ".join(f"{v:g}" for v in short),
                  bool(right.min() >= CHAIN and (short == 1).all()))


def length_calibrated(df: pd.DataFrame, cfg: Any) -> Result:
    end = final(df)
    below = end[end.p_cot < 1 / 3]
    if below.empty:
        return Result("", None, "no p_cot below 1/3 in p_cot_values")
    err = (below.groupby("p_cot").frac_long_sample.median() - below.groupby("p_cot").p_cot.first()).abs()
    return Result(f"max |P(long) - p_cot| = {fmt(err.max(), '.3f')} over p_cot = "
                  + ", ".join(f"{p:g}" for p in err.index), bool(err.max() <= 0.05))


def leap_lowers_threshold(df: pd.DataFrame, cfg: Any) -> Result:
    leap = df[df.experiment.str.startswith(EXPERIMENT + "_leap")]
    if leap.empty:
        return Result("", None, "no leap-k run (leap_p_cot_values is empty)")
    end = final(df, leap.experiment.iloc[0])
    right = end.groupby("p_cot").acc_sample_long.median()
    text = ("greedy accuracy " + _per_p(end, "acc_greedy", end.p_cot.unique())
            + "; sampled long answers right " + ", ".join(f"{fmt(v)}" for v in right))
    if right.min() < CHAIN:
        return Result(text, None, f"the leap-{cfg.leap_step} chain was not learned (sampled long answers "
                      f"right {fmt(right.min())} < {CHAIN}), so the threshold cannot be compared")
    acc = end.groupby("p_cot").acc_greedy.median()
    return Result(text, bool((acc >= LEARNED).any()))


TRANSFORMER = "GPT from scratch, d = 50, depth 2-8, width 128-256, 3 seeds"
CHAPTER = Chapter(ParityPretrainConfig, rows, stages, claims=(
    Claim("ntp_chance", "2", "Below p_cot = 1/3, next-token prediction alone stays at chance under "
          "greedy decoding", TRANSFORMER, f"final greedy acc <= {CHANCE} at every p_cot < 1/3",
          "fig-01-threshold", ntp_at_chance_below_third),
    Claim("ntp_learns", "2", "Above p_cot = 1/3, next-token prediction alone learns parity",
          TRANSFORMER, f"final greedy acc >= {LEARNED} at every p_cot > 1/3", "fig-01-threshold",
          ntp_learns_above_third),
    Claim("chain_known", "2", "Below 1/3 the model has learned the chain, yet greedy decoding answers "
          "short", TRANSFORMER, f"sampled long answers right >= {CHAIN} and median greedy length 1 at "
          "every p_cot in (0, 1/3)", "fig-01-training", chain_learned_below_third),
    Claim("calibrated", "2", "The model is calibrated in length: P(long) at T = 1 is about p_cot",
          TRANSFORMER, "max |P(long) - p_cot| <= 0.05 over p_cot < 1/3", "fig-01-calibration",
          length_calibrated),
    Claim("leap2", "4", "A leap-2 chain lowers the threshold below 1/3 (appendix)", TRANSFORMER,
          f"greedy acc >= {LEARNED} at some p_cot < 1/3, once the leap chain is learned (long answers "
          f"right >= {CHAIN})", "fig-01-threshold", leap_lowers_threshold),
))
