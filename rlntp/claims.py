"""The paper's claims, each with the criterion that decides it from a chapter's ``metrics.csv``.

One place decides what "reproduced" means: the chapters quote :func:`sentence` of these results,
and the scorecard page (:func:`scorecard`) lists all of them, so prose can never disagree with
the page. A criterion is a small function ``measure(df, cfg) -> Result`` of a chapter's tidy
metrics and its resolved config; it states the numbers it used (with seeds), whether the claim
holds, and, when it could not be decided, why.

Verdicts: ``reproduced`` (holds at the paper's preset), ``reproduced at a smaller scale`` (holds
at ``smoke``/``cpu``), ``not reproduced`` (measured, and does not hold), ``not run`` (these
parameters do not measure it, or a precondition failed; ``why`` says which).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

VERDICTS = ("reproduced", "reproduced at a smaller scale", "not reproduced", "not run")
CHANCE = 0.6  # greedy accuracy at most this: "at chance" (chance is 0.5)
LEARNED = 0.95  # greedy accuracy at least this: "learned"
CHAIN = 0.9  # sampled long answers right at least this often: the chain is known


@dataclasses.dataclass(frozen=True)
class Result:
    """What a criterion measured: the numbers (text), whether the claim holds (None: not
    decided), and why it was not decided."""

    measured: str
    holds: bool | None
    why: str = ""


@dataclasses.dataclass(frozen=True)
class Claim:
    """One claim of the paper (``../shared/paper.md``), where we test it, and how it is decided."""

    key: str
    chapter: str
    section: str  # of paper.md
    statement: str
    paper_scale: str
    criterion: str
    figure: str  # the label of the figure that shows it
    measure: Callable[[pd.DataFrame, Any], Result]


def verdict(result: Result, preset: str) -> str:
    """The verdict of ``result`` measured at ``preset``."""
    if result.holds is None:
        return "not run"
    if not result.holds:
        return "not reproduced"
    return "reproduced" if preset == "paper" else "reproduced at a smaller scale"


def _f(x: float, fmt: str = ".2f") -> str:
    return "n/a" if x is None or pd.isna(x) else format(x, fmt)


def _final(df: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """Pre-training rows of ``experiment`` at the last step: one row per (p_cot, seed)."""
    sub = df[(df.experiment == experiment) & (df.phase == "pretrain")]
    sub = sub[sub.step == sub.step.max()]
    return sub.pivot_table(index=["p_cot", "seed"], columns="metric", values="value").reset_index()


def _per_p(final: pd.DataFrame, metric: str, ps: Any) -> str:
    """``metric`` per p_cot (median over seeds) as text, with the seed count."""
    med = final[final.p_cot.isin(ps)].groupby("p_cot")[metric].median()
    seeds = final.seed.nunique()
    return ", ".join(f"{_f(v)} (p_cot = {p:g})" for p, v in med.items()) + f"; median of {seeds} seed(s)"


# --- chapter 1: parity, next-token prediction --------------------------------------------------
PARITY = "parity_pretrain"


def ntp_at_chance_below_third(df: pd.DataFrame, cfg: Any) -> Result:
    final = _final(df, PARITY)
    below = sorted(p for p in final.p_cot.unique() if p < 1 / 3)
    if not below:
        return Result("", None, "no p_cot below 1/3 in p_cot_values")
    acc = final[final.p_cot.isin(below)].groupby("p_cot").acc_greedy.median()
    return Result("greedy accuracy " + _per_p(final, "acc_greedy", below), bool(acc.max() <= CHANCE))


def ntp_learns_above_third(df: pd.DataFrame, cfg: Any) -> Result:
    final = _final(df, PARITY)
    above = sorted(p for p in final.p_cot.unique() if p > 1 / 3)
    if not above:
        return Result("", None, "no p_cot above 1/3 in p_cot_values")
    acc = final[final.p_cot.isin(above)].groupby("p_cot").acc_greedy.median()
    return Result("greedy accuracy " + _per_p(final, "acc_greedy", above), bool(acc.min() >= LEARNED))


def chain_learned_below_third(df: pd.DataFrame, cfg: Any) -> Result:
    final = _final(df, PARITY)
    below = sorted(p for p in final.p_cot.unique() if 0 < p < 1 / 3)
    if not below or "acc_sample_long" not in final:
        return Result("", None, "no p_cot in (0, 1/3) in p_cot_values")
    right = final[final.p_cot.isin(below)].groupby("p_cot").acc_sample_long.median()
    short = final[final.p_cot.isin(below)].groupby("p_cot").len_median_greedy.median()
    return Result("sampled long answers right " + _per_p(final, "acc_sample_long", below)
                  + "; median greedy length " + ", ".join(f"{v:g}" for v in short),
                  bool(right.min() >= CHAIN and (short == 1).all()))


def length_calibrated(df: pd.DataFrame, cfg: Any) -> Result:
    final = _final(df, PARITY)
    below = final[final.p_cot < 1 / 3]
    if below.empty:
        return Result("", None, "no p_cot below 1/3 in p_cot_values")
    err = (below.groupby("p_cot").frac_long_sample.median() - below.groupby("p_cot").p_cot.first()).abs()
    return Result(f"max |P(long) - p_cot| = {_f(err.max(), '.3f')} over p_cot = "
                  + ", ".join(f"{p:g}" for p in err.index), bool(err.max() <= 0.05))


def leap_lowers_threshold(df: pd.DataFrame, cfg: Any) -> Result:
    leap = df[df.experiment.str.startswith(PARITY + "_leap")]
    if leap.empty:
        return Result("", None, "no leap-k run (leap_p_cot_values is empty)")
    final = _final(df, leap.experiment.iloc[0])
    right = final.groupby("p_cot").acc_sample_long.median()
    text = ("greedy accuracy " + _per_p(final, "acc_greedy", final.p_cot.unique())
            + "; sampled long answers right " + ", ".join(f"{_f(v)}" for v in right))
    if right.min() < CHAIN:
        return Result(text, None, f"the leap-{cfg.leap_step} chain was not learned (sampled long answers "
                      f"right {_f(right.min())} < {CHAIN}), so the threshold cannot be compared")
    acc = final.groupby("p_cot").acc_greedy.median()
    return Result(text, bool((acc >= LEARNED).any()))


# --- chapter 2: parity, RL -----------------------------------------------------------------------
RL_PARITY, RL_LOW = "parity_rl", "parity_rl_low"


def _rl(df: pd.DataFrame, method: str, reward: str, temperature: float, branch: int,
        experiment: str = RL_PARITY) -> pd.DataFrame:
    """One RL configuration's rows, one column per metric (index seed, step)."""
    sub = df[(df.experiment == experiment) & (df.phase == "rl") & (df.method == method)
             & (df.reward == reward)
             & np.isclose(df.temperature.astype(float), temperature) & (df.branch_step == branch)]
    return sub.pivot_table(index=["seed", "step"], columns="metric", values="value").reset_index()


def _first_step(w: pd.DataFrame, ok: pd.Series) -> pd.Series:
    """Per seed, the first step where ``ok`` holds (NaN: never)."""
    return w[ok].groupby("seed").step.min().reindex(sorted(w.seed.unique()))


def _rl_learns(method: str, reward: str) -> Callable[[pd.DataFrame, Any], Result]:
    def measure(df: pd.DataFrame, cfg: Any) -> Result:
        w = _rl(df, method, reward, cfg.temperature, cfg.rl_branch)
        if w.empty:
            return Result("", None, f"{method} with the {reward} reward is not in methods x rewards")
        budget = cfg.rl_iters if method != "star" else min(10, cfg.star_rounds)
        ok = (w.acc_greedy >= LEARNED) & ((w.len_median_greedy == cfg.d) | (method == "star"))
        first = _first_step(w, ok)
        unit = "rounds" if method == "star" else "iterations"
        text = (f"{unit} to greedy acc >= {LEARNED}: " + ", ".join(
            f"seed {s}: {'never' if pd.isna(v) else int(v)}" for s, v in first.items())
            + f" (budget {budget}; from step {cfg.rl_branch}, tau = {cfg.temperature:g})")
        return Result(text, bool(first.notna().all() and first.max() <= budget))
    return measure


def star_recursion_gaps(df: pd.DataFrame, cfg: Any) -> list[float]:
    """|measured long fraction - recursion iterated from the measured p_0| at rounds 1-3, for
    every seed of STaR (cot reward, tau = ``temperature``, from ``rl_branch``)."""
    from rlntp.rl.star import star_recursion

    w = _rl(df, "star", "cot", cfg.temperature, cfg.rl_branch)
    gaps = []
    for _, run in w.groupby("seed"):
        run = run.sort_values("step")
        rec = star_recursion(run.frac_long_sample.iloc[0], int(run.step.max()))
        pairs = zip(run.step, run.frac_long_sample, strict=True)
        gaps += [abs(v - rec[int(k)]) for k, v in pairs if 1 <= k <= 3]
    return gaps


def star_recursion_transformer(df: pd.DataFrame, cfg: Any) -> Result:
    w = _rl(df, "star", "cot", cfg.temperature, cfg.rl_branch)
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
    pre = df[(df.experiment == RL_PARITY) & (df.phase == "pretrain")].pivot_table(
        index=["seed", "step"], columns="metric", values="value")
    cases, runs = [], 0
    for b in cfg.branch_steps:
        w = _rl(df, "grpo", "e2e", cfg.temperature, b)
        for s, run in w.groupby("seed"):
            runs += 1
            chain = pre.loc[(s, b), "acc_sample_long"] if (s, b) in pre.index else np.nan
            long = run[(run.len_median_greedy > 1) & (run.acc_greedy < LEARNED)].sort_values("step")
            if chain < CHAIN and not long.empty:
                first = long.iloc[0]
                cases.append(f"step {b}, seed {s}: long answers right {_f(chain)}; at RL iteration "
                             f"{int(first.step)} length {first.len_median_greedy:g}, accuracy "
                             f"{_f(first.acc_greedy)} ({len(long)} of {len(run)} evaluations)")
    if not runs:
        return Result("", None, "no GRPO branch with the e2e reward")
    return Result(f"{len(cases)} of {runs} GRPO runs" + (": " + "; ".join(cases) if cases else ""),
                  bool(cases))


def star_hot_fails(df: pd.DataFrame, cfg: Any) -> Result:
    hot = max(cfg.temperatures)
    w = _rl(df, "star", "e2e", hot, cfg.rl_branch)
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
        w = _rl(df, "grpo", "e2e", cfg.temperature, b, RL_LOW)
        ends += [(b, s, run.sort_values("step").iloc[-1]) for s, run in w.groupby("seed")]
    if not ends:
        return Result("", None, "no GRPO branch with the e2e reward at low_p_cot")
    up = [e for e in ends if e[2].len_median_greedy > 1]
    pre = df[(df.experiment == RL_LOW) & (df.phase == "pretrain") & (df.metric == "acc_sample_long")
             & df.step.isin(cfg.branch_steps)].value
    text = (f"sampled long answers right {_f(pre.median())} at the checkpoints (median); "
            f"median greedy length rose above 1 in {len(up)} of {len(ends)} GRPO runs (branch steps "
            + ", ".join(f"{b}" for b in cfg.branch_steps) + f"; {len({s for _, s, _ in ends})} seed(s)); "
            "final greedy accuracy " + ", ".join(
                f"{_f(e.acc_greedy)} (step {b}, seed {s})" for b, s, e in ends))
    return Result(text, bool(len(up) >= 0.75 * len(ends)))


# --- chapter 3: linear theory --------------------------------------------------------------------
def _metric(df: pd.DataFrame, metric: str, **where: str) -> pd.Series:
    sub = df[df.metric == metric]
    for k, v in where.items():
        sub = sub[sub[k] == v]
    return sub.value


def linear_threshold(df: pd.DataFrame, cfg: Any) -> Result:
    est = _metric(df, "threshold_estimate")
    if est.empty or pd.isna(est.iloc[0]):
        return Result("", None, "the p_cot grid does not cross 75% greedy accuracy")
    return Result(f"greedy accuracy crosses 75% at p_cot = {est.iloc[0]:.3f} (d = {cfg.d})",
                  bool(abs(est.iloc[0] - 1 / 3) <= 0.05))


def linear_star_recursion(df: pd.DataFrame, cfg: Any) -> Result:
    dev = _metric(df, "star_max_dev_rounds_1_3")
    if dev.empty or pd.isna(dev.iloc[0]):
        return Result("", None, "STaR is not in rl_method")
    return Result(f"max |long fraction - 2p/(1+p) iterated| over rounds 1-3 = {dev.iloc[0]:.3f}",
                  bool(dev.iloc[0] <= 0.1))


def linear_polynomial_cost(df: pd.DataFrame, cfg: Any) -> Result:
    slopes = {e.split("=", 1)[1]: v for e, v in
              df[df.metric == "cost_loglog_slope"].set_index("experiment").value.items()}
    cost = df[df.metric == "censored"]
    exp_cens = cost[cost.experiment == "cost p_cot=2^-d"]
    largest = exp_cens[exp_cens.d == exp_cens.d.max()].value if not exp_cens.empty else pd.Series([])
    d_range = f"d in {sorted(int(v) for v in cost.d.unique())}"
    if not {"1/d", "1/d^2"} <= slopes.keys() or largest.empty:
        return Result(f"slopes {slopes} ({d_range})", None,
                      "some schedule did not succeed on at least two d on every seed")
    text = (f"log-log slope of cost vs d: {slopes['1/d']:.2f} (p_cot = 1/d), {slopes['1/d^2']:.2f} "
            f"(1/d^2); p_cot = 2^-d fails on {int(largest.sum())} of {len(largest)} seeds at the "
            f"largest d ({d_range}; one budget)")
    return Result(text, bool(max(slopes.values()) <= 4 and largest.all()))


# --- chapter 4: multiplication -------------------------------------------------------------------
def _mult_checks(df: pd.DataFrame, cfg: Any, rows: list[int]) -> Result:
    from rlntp.experiments.multiplication import checks

    table = checks(df, cfg).iloc[rows]
    if table.holds.isna().any():
        return Result("", None, "no GRPO run from the last branch step")
    text = "; ".join(f"{name}: {_f(v)}" for name, v in table.measured.items())
    return Result(text + f" (median of {df.seed.nunique()} seeds)", bool(table.holds.all()))


def mult_ntp_short(df: pd.DataFrame, cfg: Any) -> Result:
    return _mult_checks(df, cfg, [0, 1, 2, 3])


def mult_grpo_learns(df: pd.DataFrame, cfg: Any) -> Result:
    return _mult_checks(df, cfg, [4, 5])


def mult_too_early(df: pd.DataFrame, cfg: Any) -> Result:
    from rlntp.experiments.multiplication import rl_outcomes, too_early

    outcome = rl_outcomes(df, cfg)
    if len(outcome) < 2:
        return Result("", None, "GRPO ran from fewer than two branch steps")
    early = too_early(outcome, cfg)
    if early is None:
        return Result("no branch raised length without accuracy", False)
    return Result(f"from step {early.name}: long answers right {early.ckpt_acc_sample_long:.2f}; "
                  f"length {early.ckpt_len_mean_greedy:.1f} -> {early.rl_len_mean_greedy:.1f}, greedy "
                  f"accuracy {early.rl_acc_greedy:.2f}", True)


# --- chapter 5: GSM8K and MATH -------------------------------------------------------------------
NO_SIGNAL = "not decided if no GRPO group had reward variance"


def _llm_formats(star: pd.DataFrame) -> str:
    """Long vs short accuracy of the responses sampled at T = 1 from the checkpoint (its star
    rows), pooled over seeds; "" if the run did not sample."""
    w = star.pivot_table(index="seed", columns="metric", values="value", dropna=False)
    if "n_sample_long" not in w:
        return ""
    parts = []
    for f in ("long", "short"):
        n = w[f"n_sample_{f}"].sum()
        acc = (w[f"acc_sample_{f}"].fillna(0) * w[f"n_sample_{f}"]).sum() / n if n else np.nan
        parts.append(f"{f} ones right {_f(acc)} (n = {n:.0f})")
    return "; of the answers sampled at T = 1 from the checkpoint, " + ", ".join(parts)


def _llm_advantage(dataset: str) -> Callable[[pd.DataFrame, Any], Result]:
    def measure(df: pd.DataFrame, cfg: Any) -> Result:
        sub = df[df.experiment == dataset]
        if sub.empty:
            return Result("", None, f"this run fine-tunes on {cfg.dataset}; run with "
                          f"-p datasets '[\"{dataset}\"]'")
        last = max(cfg.sft_checkpoints)
        star = sub[(sub.phase == "sft") & (sub.step == last)]
        sft = star[star.metric == "acc_greedy"].value.mean()
        branch = sub[(sub.phase == "rl") & (sub.branch_step == last)]
        ends = branch.groupby("seed").step.transform("max")
        rl = branch[(branch.step == ends) & (branch.metric == "acc_greedy")].value.mean()
        flat = branch[branch.metric == "frac_reward_zero_std"].value
        stopped = branch[branch.metric == "stopped_early"].value
        steps = int(branch.step.max()) if not branch.empty else 0
        text = (f"greedy accuracy after SFT epoch {last}: {_f(sft)}, after {steps} GRPO step(s): "
                f"{_f(rl)} ({sub.seed.nunique()} seed(s)); groups without reward variance: "
                f"{_f(flat.mean(), '.0%')}" + _llm_formats(star))
        if not flat.empty and flat.min() >= 1:
            how = (f"GRPO stopped early after {steps} step(s)" if (stopped > 0).any()
                   else f"in all {steps} step(s)")
            return Result(text, None, f"no GRPO group had reward variance ({how}): GRPO got no "
                          "signal at this scale")
        return Result(text, bool(rl - sft >= 0.05))
    return measure


P1, P2, P3 = "01_parity_pretraining", "02_parity_rl", "03_linear_theory"
P4, P5 = "04_multiplication", "05_gsm8k_math"
TRANSFORMER = "GPT from scratch, d = 50, depth 2-8, width 128-256, 3 seeds"
CLAIMS = [
    Claim("ntp_chance", P1, "2", "Below p_cot = 1/3, next-token prediction alone stays at chance under "
          "greedy decoding", TRANSFORMER, f"final greedy acc <= {CHANCE} at every p_cot < 1/3",
          "fig-01-threshold", ntp_at_chance_below_third),
    Claim("ntp_learns", P1, "2", "Above p_cot = 1/3, next-token prediction alone learns parity",
          TRANSFORMER, f"final greedy acc >= {LEARNED} at every p_cot > 1/3", "fig-01-threshold",
          ntp_learns_above_third),
    Claim("chain_known", P1, "2", "Below 1/3 the model has learned the chain, yet greedy decoding answers "
          "short", TRANSFORMER, f"sampled long answers right >= {CHAIN} and median greedy length 1 at "
          "every p_cot in (0, 1/3)", "fig-01-training", chain_learned_below_third),
    Claim("calibrated", P1, "2", "The model is calibrated in length: P(long) at T = 1 is about p_cot",
          TRANSFORMER, "max |P(long) - p_cot| <= 0.05 over p_cot < 1/3", "fig-01-calibration",
          length_calibrated),
    Claim("leap2", P1, "4", "A leap-2 chain lowers the threshold below 1/3 (appendix)", TRANSFORMER,
          f"greedy acc >= {LEARNED} at some p_cot < 1/3, once the leap chain is learned (long answers "
          f"right >= {CHAIN})", "fig-01-threshold", leap_lowers_threshold),
    Claim("grpo", P2, "3", "GRPO after next-token prediction learns parity within few iterations, the "
          "median greedy length growing from 1 to d", TRANSFORMER + "; n = 64 per iteration",
          f"every seed reaches greedy acc >= {LEARNED} with median length d within rl_iters",
          "fig-02-branches", _rl_learns("grpo", "e2e")),
    Claim("reinforce", P2, "3", "REINFORCE does the same", TRANSFORMER + "; n = 64 per iteration",
          f"every seed reaches greedy acc >= {LEARNED} with median length d within rl_iters",
          "fig-02-methods", _rl_learns("reinforce", "e2e")),
    Claim("star", P2, "3", "STaR (chain-of-thought reward) learns parity in a few rounds",
          TRANSFORMER + "; n = 3,200 per round", f"every seed reaches greedy acc >= {LEARNED} within "
          "10 rounds", "fig-02-methods", _rl_learns("star", "cot")),
    Claim("star_recursion", P2, "3", "STaR's long fraction follows p_n = 2p_{n-1}/(1+p_{n-1})",
          TRANSFORMER, "max gap <= 0.1 over rounds 1-3 (recursion from the measured round 0)",
          "fig-02-star", star_recursion_transformer),
    Claim("too_early", P2, "3", "RL started too early raises length without generalising",
          TRANSFORMER, f"some GRPO run from a checkpoint whose long answers are right < {CHAIN} has an "
          f"evaluation with median greedy length > 1 and greedy acc < {LEARNED}", "fig-02-branches",
          too_early_parity),
    Claim("star_hot", P2, "3", "STaR at high temperature with the end-to-end reward fails",
          TRANSFORMER, f"final greedy acc <= {CHANCE} on every seed at the highest temperature",
          "fig-02-methods", star_hot_fails),
    Claim("grpo_001", P2, "3", "At p_cot = 0.01, length still rises under GRPO from almost all "
          "checkpoints", TRANSFORMER, "median greedy length > 1 at the end of >= 75% of the GRPO runs "
          "(branch step x seed)", "fig-02-low", grpo_length_rises_at_001),
    Claim("thm1", P3, "2", "Theorem 1: for autoregressive linear models, greedy accuracy after "
          "next-token prediction jumps from 1/2 to 1 at p_cot = 1/3", "a theorem (any d >= 2)",
          "the 75% crossing within 0.05 of 1/3", "fig-03-threshold", linear_threshold),
    Claim("thm2", P3, "3", "Theorem 2: each STaR round maps the long fraction p to 2p/(1+p)",
          "a theorem", "max gap <= 0.1 over rounds 1-3", "fig-03-rounds", linear_star_recursion),
    Claim("poly", P3, "3", "Pre-training + RL costs poly(d) unless p_cot is exponentially small in d",
          "a theorem", "log-log slope of cost <= 4 for p_cot = 1/d and 1/d^2; p_cot = 2^-d fails at the "
          "largest d", "fig-03-cost", linear_polynomial_cost),
    Claim("mult_ntp", P4, "5", "Multiplication: after next-token prediction on the mixture, greedy "
          "decoding answers short and wrong although the chain is known", "5 x 5 digits, GPT-2, "
          "p_cot = 0.25, 3 seeds", "calibrated within 0.05, greedy length short, greedy no better than "
          f"sampled short answers, long answers right >= {CHAIN}", "fig-04-grpo", mult_ntp_short),
    Claim("mult_grpo", P4, "5", "Multiplication: GRPO from the checkpoints raises greedy accuracy as "
          "responses grow to the long format", "5 x 5 digits, GPT-2, 3 seeds", "greedy acc >= "
          "pre-training alone + 0.5 at equal sequences; mean length >= 95% of the long format",
          "fig-04-grpo", mult_grpo_learns),
    Claim("mult_early", P4, "5", "Multiplication: GRPO from too early a checkpoint lengthens answers "
          "without making them right", "5 x 5 digits, GPT-2, 3 seeds", "some branch: mean greedy "
          "length up by half the gap between the formats, greedy acc < 0.5", "fig-04-grpo", mult_too_early),
    Claim("gsm8k", P5, "6", "GSM8K: SFT on a mixture with p_cot = 0.05, then GRPO, beats SFT alone",
          "Llama 3.2 3B base, full GSM8K, 30 SFT epochs", "greedy acc after GRPO >= after SFT + 0.05 "
          f"(last checkpoint); {NO_SIGNAL}", "fig-05-sft-grpo", _llm_advantage("gsm8k")),
    Claim("math", P5, "6", "MATH: the same", "Llama 3.2 3B base, full MATH, 30 SFT epochs",
          f"greedy acc after GRPO >= after SFT + 0.05 (last checkpoint); {NO_SIGNAL}",
          "fig-05-sft-grpo", _llm_advantage("math")),
]


def scale(cfg: Any) -> str:
    """The scale of a run in a few words: task size, model, seeds."""
    parts = [f"d = {cfg.d}"] if hasattr(cfg, "d") else []
    parts += [f"{cfg.digits} x {cfg.digits} digits"] if hasattr(cfg, "digits") else []
    parts += [f"{cfg.dataset}, {cfg.model}"] if hasattr(cfg, "model") else []
    parts += [f"GPT {cfg.n_layer} x {cfg.n_embd}"] if hasattr(cfg, "n_layer") else []
    seeds = len(cfg.seeds)
    return ", ".join(parts + [f"{seeds} seed{'s' if seeds > 1 else ''}"])


def chapter_claims(chapter: str) -> list[Claim]:
    return [c for c in CLAIMS if c.chapter == chapter]


def assess(chapter: str, df: pd.DataFrame, cfg: Any) -> pd.DataFrame:
    """The claims of ``chapter`` decided on ``df`` (its metrics) and ``cfg`` (its resolved config):
    one row per claim with statement, measured, criterion, verdict and why."""
    rows = []
    for c in chapter_claims(chapter):
        r = c.measure(df, cfg)
        rows.append(dict(claim=c.statement, measured=r.measured, criterion=c.criterion,
                         verdict=verdict(r, cfg.preset), why=r.why, key=c.key, figure=c.figure,
                         scale=scale(cfg)))
    return pd.DataFrame(rows).set_index("key")


def sentence(table: pd.DataFrame) -> str:
    """The chapter's closing sentence, chosen by the verdicts of :func:`assess`."""
    by = {v: list(table.index[table.verdict == v]) for v in VERDICTS}
    def lower(text: str) -> str:  # "Below ..." -> "below ...", but "GRPO", "STaR" stay
        return text if text[1:2].isupper() else text[:1].lower() + text[1:]

    names = lambda keys: "; ".join(lower(table.claim[k]) for k in keys)  # noqa: E731
    parts = []
    if by["reproduced"] or by["reproduced at a smaller scale"]:
        parts.append(f"Reproduced here: {names(by['reproduced'] + by['reproduced at a smaller scale'])}.")
    if by["not reproduced"]:
        parts.append(f"Not reproduced at this preset: {names(by['not reproduced'])}.")
    if by["not run"]:
        parts.append("Not decided by this run: " + "; ".join(
            f"{lower(table.claim[k])} ({table.why[k]})" for k in by["not run"]) + ".")
    return " ".join(parts)


def load_run(out_dir: Path) -> tuple[pd.DataFrame, Any] | None:
    """A finished chapter run's metrics and its config, rebuilt from ``config.json`` (device
    'auto': the reader's machine may lack the run's GPU); None if either file is missing."""
    from rlntp.config import resolve
    from rlntp.experiments import chapter

    if not (out_dir / "metrics.csv").is_file() or not (out_dir / "config.json").is_file():
        return None
    info = json.loads((out_dir / "config.json").read_text())
    _, cls = chapter(out_dir.name)
    params = {k: v for k, v in info["config"].items() if k in cls.field_names()}
    params.update(device="auto", out_dir=str(out_dir))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a paper run read on a CPU machine
        cfg = resolve(cls, **params)
    return pd.read_csv(out_dir / "metrics.csv"), cfg


def scorecard(runs: dict[str, Path]) -> pd.DataFrame:
    """Every claim decided on the runs in ``runs`` (chapter -> its output folder); a chapter
    without a finished run gives "not run"."""
    rows = []
    for name in dict.fromkeys(c.chapter for c in CLAIMS):
        loaded = load_run(runs[name]) if name in runs else None
        if loaded is None:
            rows += [dict(key=c.key, claim=c.statement, measured="", criterion=c.criterion,
                          verdict="not run", why="the chapter was not run", figure=c.figure,
                          scale="")
                     for c in chapter_claims(name)]
        else:
            rows += assess(name, *loaded).reset_index().to_dict("records")
    return pd.DataFrame(rows).set_index("key")
