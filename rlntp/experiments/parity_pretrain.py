"""Chapter 1: next-token pre-training on the parity mixture D(p_cot) (paper Fig. 2).

One *run* is one (p_cot, seed): a fresh GPT trained online on D(p_cot), evaluated every
``pretrain_eval_every`` iterations on ``eval_size`` fixed test prompts (greedy and temperature
1), with checkpoints every ``ckpt_every`` iterations that the RL chapter branches from. Runs are
resumable and cached under ``cfg.path / "runs"`` (:mod:`rlntp.experiments.runs`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import pandas as pd

from rlntp.chapter import Chapter, Done
from rlntp.claims import Claim, Result, fmt, wilson
from rlntp.config import ExperimentConfig, ModelPart, NTPPart, param, require, require_list
from rlntp.data.parity import ParityTask
from rlntp.experiments.runs import pretrain_rows, pretrain_run
from rlntp.parallel import Stage

EXPERIMENT = "parity_pretrain"
# Accuracies are pooled over seeds (k right of n = eval_size x seeds) and judged by their 95%
# Wilson interval (rlntp.claims.wilson), so that a verdict is not decided by sampling noise.
CHANCE = 0.5  # "at chance": the interval contains 1/2 (a model answering x_1, or a coin flip)
LEARNED = 0.95  # "learned": the interval's lower end is at least this (clearly, not by luck)
CHAIN = 0.9  # sampled long answers right at least this often: the chain is known (else
#             "at chance" means nothing: a model that learned nothing is at chance too)


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


def pooled(values: pd.Series, n: int) -> tuple[float, float, float]:
    """The mean of per-seed accuracies, each measured on ``n`` prompts, and its 95% Wilson
    interval (k right of n x seeds)."""
    k, total = float((values * n).sum()), n * len(values)
    return (k / total, *wilson(k, total)) if total else (float("nan"), 0.0, 1.0)


UNKNOWN = "chain not known"


def _sweep(end: pd.DataFrame, ps: list[float], n: int, judge: Callable[[float, float, float], str],
           want: str, why_none: str) -> Result:
    """A verdict word per p_cot of ``ps`` (``judge(p, lo, hi)`` of the pooled greedy accuracy's
    interval; :data:`UNKNOWN` where the point cannot decide) and overall: the claim holds when
    every point that decides is ``want``; none decides: inconclusive, ``why_none``."""
    points = []
    for p in ps:
        mean, lo, hi = pooled(end[end.p_cot == p].acc_greedy, n)
        points.append((judge(p, lo, hi), f"p_cot = {p:g}: {mean:.2f} [{lo:.2f}, {hi:.2f}]"))
    text = (f"greedy accuracy [95% interval], pooled over {end.seed.nunique()} seed(s): "
            + "; ".join(f"{t} ({w})" for w, t in points))
    decided = [w for w, _ in points if w != UNKNOWN]
    return Result(text, all(w == want for w in decided)) if decided else Result(text, None, why_none)


def ntp_at_chance_below_third(df: pd.DataFrame, cfg: Any) -> Result:
    end = final(df)
    below = sorted(p for p in end.p_cot.unique() if p < 1 / 3)
    if not below:
        return Result("", None, "no p_cot below 1/3 in p_cot_values")
    known = end.groupby("p_cot").acc_sample_long.median() >= CHAIN

    def judge(p: float, lo: float, hi: float) -> str:
        if not known[p]:
            return UNKNOWN
        return "at chance" if lo <= CHANCE <= hi else "above chance" if lo > CHANCE else "below chance"

    return _sweep(end, below, cfg.eval_size, judge, "at chance", "the chain was not learned at any p_cot "
                  f"below 1/3 (long answers right < {CHAIN}): a model that learned nothing is at chance too")


def ntp_learns_above_third(df: pd.DataFrame, cfg: Any) -> Result:
    end = final(df)
    above = sorted(p for p in end.p_cot.unique() if p > 1 / 3)
    if not above:
        return Result("", None, "no p_cot above 1/3 in p_cot_values")
    return _sweep(end, above, cfg.eval_size, lambda p, lo, hi: "learned" if lo >= LEARNED else "not learned",
                  "learned", "")


def greedy_length_jumps(df: pd.DataFrame, cfg: Any) -> Result:
    """Fig. 2 centre: greedy decoding writes the whole chain (length d) on few prompts below 1/3
    and on most above: the pooled P(length = d), greedy, has its 95% interval below 1/2 at every
    p_cot < 1/3 whose chain is known and above 1/2 at every p_cot > 1/3."""
    end = final(df)
    below = [p for p in end.p_cot.unique() if p < 1 / 3]
    above = [p for p in end.p_cot.unique() if p > 1 / 3]
    if not below or not above:
        return Result("", None, "p_cot_values does not have values on both sides of 1/3")
    known = end.groupby("p_cot").acc_sample_long.median() >= CHAIN
    parts, ok = [], []
    for p in sorted(below + above):
        mean, lo, hi = pooled(end[end.p_cot == p].frac_len_d_greedy, cfg.eval_size)
        side = "long" if p > 1 / 3 else "short"
        parts.append(f"{mean:.2f} [{lo:.2f}, {hi:.2f}] at p_cot = {p:g}")
        if p > 1 / 3 or known[p]:
            ok.append(lo > 0.5 if side == "long" else hi < 0.5)
    text = "greedy P(length = d) [95% interval]: " + "; ".join(parts)
    return Result(text, bool(all(ok))) if len(ok) > len(above) else Result(
        text, None, f"the chain was not learned at any p_cot below 1/3 (long answers right < {CHAIN})")


def _per_p(final: pd.DataFrame, metric: str, ps: Any) -> str:
    """``metric`` per p_cot (median over seeds) as text, with the seed count."""
    med = final[final.p_cot.isin(ps)].groupby("p_cot")[metric].median()
    seeds = final.seed.nunique()
    return ", ".join(f"{fmt(v)} (p_cot = {p:g})" for p, v in med.items()) + f"; median of {seeds} seed(s)"


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
    """P(long) at T = 1, pooled over seeds, has p_cot inside its 95% interval at every p_cot < 1/3
    (calibrated up to sampling noise)."""
    end = final(df)
    below = sorted(p for p in end.p_cot.unique() if p < 1 / 3)
    if not below:
        return Result("", None, "no p_cot below 1/3 in p_cot_values")
    parts, ok = [], []
    for p in below:
        mean, lo, hi = pooled(end[end.p_cot == p].frac_long_sample, cfg.eval_size)
        parts.append(f"{mean:.3f} [{lo:.3f}, {hi:.3f}] at p_cot = {p:g}")
        ok.append(lo <= p <= hi)
    return Result("P(long) at T = 1 [95% interval]: " + "; ".join(parts), all(ok))


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



# --- what the notebook shows ---------------------------------------------------------------------
SUMMARY = ["acc_greedy", "acc_sample", "len_median_greedy", "frac_long_sample", "acc_sample_long"]


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """The final evaluation of the main sweep per p_cot (median over seeds)."""
    return final(df).groupby("p_cot")[SUMMARY].median()


def leap_table(df: pd.DataFrame, cfg: ParityPretrainConfig) -> pd.DataFrame:
    """Per p_cot of the leap-k runs: their final greedy accuracy and how often their sampled long
    answers are right, beside the plain chain's greedy accuracy (medians over seeds)."""
    leap = df[df.experiment.str.contains("leap")]
    end = leap[leap.step == leap.step.max()].pivot_table(index="p_cot", columns="metric",
                                                         values="value", aggfunc="median")
    return pd.DataFrame({
        f"leap-{cfg.leap_step}: greedy accuracy": end.get("acc_greedy"),
        f"leap-{cfg.leap_step}: sampled long answers right": end.get("acc_sample_long"),
        "plain chain: greedy accuracy": summary(df)["acc_greedy"],
    }).loc[sorted(end.index)]


def _ps(frame: pd.DataFrame) -> str:
    return ", ".join(f"{p:g}" for p in frame.index)


def threshold_sentence(df: pd.DataFrame, cfg: ParityPretrainConfig) -> str:
    """Both sides of 1/3 in words: greedy accuracy and length, calibration and chain below it
    (and, closest to it, how often greedy went long against the argument's margin); accuracy
    above it."""
    table, end = summary(df), final(df)
    below, above = table[table.index < 1 / 3], table[table.index > 1 / 3]
    parts = []
    if not below.empty:
        parts.append(
            f"Below the threshold (p_cot = {_ps(below)}) the final greedy accuracy is at most "
            f"{below.acc_greedy.max():.2f} (chance is 0.5), the median greedy response has length "
            f"{below.len_median_greedy.max():.0f}, the sampled long fraction is within "
            f"{(below.frac_long_sample - below.index).abs().max():.3f} of p_cot, and sampled long "
            f"answers are right at least {below.acc_sample_long.min():.2f} of the time (how well "
            "the model knows the chain).")
        p_near = below.index.max()  # closest below 1/3: how often greedy went long, against the margin
        long_near = end[end.p_cot == p_near].frac_long_greedy.median()
        parts.append(f"Closest to the threshold, at p_cot = {p_near:g}, greedy decoding answers long on "
                     f"{long_near:.0%} of the test prompts (median over seeds)" + (
                         ". There the argument's margin between stopping and continuing after the first "
                         f"token is (1-3p)/(1+p) = {(1 - 3 * p_near) / (1 + p_near):.3f}: a model whose "
                         "probabilities are off by half of that on a prompt answers long on it."
                         if long_near > 0 else "."))
    if not above.empty:
        parts.append(f"Above it (p_cot = {_ps(above)}) the final greedy accuracy is at least "
                     f"{above.acc_greedy.min():.2f}.")
    return " ".join(parts) or "These parameters have no p_cot on either side of 1/3."


TRANSFORMER = "GPT from scratch, d = 50, depth 2-8, width 128-256, 3 seeds"
INTERVAL = "greedy acc pooled over seeds, 95% Wilson interval"
CHAPTER = Chapter(ParityPretrainConfig, rows, stages, claims=(
    Claim("ntp_chance", "2", "Below p_cot = 1/3, next-token prediction alone stays at chance under "
          "greedy decoding", TRANSFORMER, f"{INTERVAL} contains 1/2 at every p_cot < 1/3 whose chain is "
          f"known (long answers right >= {CHAIN}); no such p_cot: inconclusive", "fig-01-threshold",
          ntp_at_chance_below_third, paper="~50% at every p_cot < 1/3 (Fig. 2 right)"),
    Claim("ntp_learns", "2", "Above p_cot = 1/3, next-token prediction alone learns parity",
          TRANSFORMER, f"{INTERVAL} above {LEARNED} at every p_cot > 1/3", "fig-01-threshold",
          ntp_learns_above_third, paper="~100% at every p_cot > 1/3 (Fig. 2 right)"),
    Claim("chain_known", "2", "Below 1/3 the model has learned the chain, yet greedy decoding answers "
          "short", TRANSFORMER, f"sampled long answers right >= {CHAIN} and median greedy length 1 at "
          "every p_cot in (0, 1/3)", "fig-01-training", chain_learned_below_third,
          paper="the chain is learned, greedy answers short (Sec. 3.2, in words)"),
    Claim("calibrated", "2", "The model is calibrated in length: P(long) at T = 1 is about p_cot",
          TRANSFORMER, "p_cot inside the 95% interval of P(long) at T = 1 (pooled over seeds) at every "
          "p_cot < 1/3", "fig-01-calibration", length_calibrated,
          paper="P(long) at T = 1 ~ p_cot (Sec. 3.2, in words; Fig. 2 centre)"),
    Claim("length_jump", "2", "Greedy decoding writes the whole chain (length d) rarely below 1/3 and "
          "mostly above it", TRANSFORMER, "pooled greedy P(length = d), 95% interval below 1/2 at every "
          "p_cot < 1/3 whose chain is known, above 1/2 at every p_cot > 1/3", "fig-01-training",
          greedy_length_jumps, paper="P(length = d), greedy, jumps at 1/3 (Fig. 2 centre)"),
    Claim("ntp_cost", "4", "Next-token prediction alone needs extreme resources to learn parity below "
          "1/3", TRANSFORMER, "the number of samples for NTP alone to learn, against d", "fig-01-threshold",
          lambda df, cfg: Result("", None, "not measured: NTP alone does not learn within any budget we "
                                 "can run; a search over budgets against d is future work"),
          paper="exponentially many samples, or extreme compute (abstract)"),
    Claim("leap2", "4", "A leap-2 chain lowers the threshold below 1/3 (appendix)", TRANSFORMER,
          f"greedy acc >= {LEARNED} at some p_cot < 1/3, once the leap chain is learned (long answers "
          f"right >= {CHAIN})", "fig-01-threshold", leap_lowers_threshold,
          paper="a threshold below 1/3 (appendix; its value is not in our sources)"),
))
