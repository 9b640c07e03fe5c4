"""Chapter 03: the linear theory (paper Sec. 4, Theorems 1-2), simulated with linear AR models.

Three experiments on :mod:`rlntp.models.linear`, each vectorised over p_cot (one batch of
models per seed; seeds run in parallel processes):

1. :func:`threshold_rows`: SGD pre-training on a fine p_cot grid: greedy accuracy jumps at 1/3.
2. :func:`post_training_rows`: STaR / REINFORCE after pre-training: the long fraction per round against
   the STaR recursion p_n = 2 p_{n-1} / (1 + p_{n-1}).
3. :func:`cost_rows`: pre-training plus RL sequences to reach greedy accuracy >= 0.95 versus d
   for p_cot = 1/d, 1/d^2 and 2^-d (censored at a budget).

Pre-training (ours): plain SGD on fresh batches, the learning rate decaying linearly to 0, for at
least ``sgd_steps_per_bit * d`` steps and long enough to see ``long_demos_per_bit * d`` long
demonstrations in expectation, but at most ``pretrain_budget`` sequences. Every experiment returns
tidy metric rows (:func:`rlntp.results.metric_rows`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from rlntp.chapter import Chapter, Done
from rlntp.claims import Claim, Result
from rlntp.config import ExperimentConfig, param, require, require_list, require_temperature
from rlntp.models.linear import (
    Rollouts,
    generate,
    init_weights,
    linear_ntp_loss,
    sample_mixture,
    sample_prompts_batch,
    sgd_step,
    token_nll,
)
from rlntp.parallel import Stage
from rlntp.results import cached, metric_rows, source_hash
from rlntp.rl.star import star_recursion
from rlntp.seeds import generator

RL_METHODS = ("star", "reinforce")
SCHEDULES = {"1/d": lambda d: 1 / d, "1/d^2": lambda d: 1 / d**2, "2^-d": lambda d: 2.0**-d}
SUCCESS = 0.95  # greedy accuracy that counts as "learned parity"
MAX_SAMPLES_PER_ROUND = 2**15  # cap of the RL samples per round


@dataclasses.dataclass(frozen=True)
class LinearTheoryConfig(ExperimentConfig):
    """Knobs of chapter 03; the defaults are the ``cpu`` preset."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"d": 5, "p_cot_values": (0.25, 0.3, 0.35, 0.4), "rl_p_cot_values": (0.1, 0.02),
                  "d_values": (4, 5), "sgd_steps_per_bit": 5, "long_demos_per_bit": 4,
                  "batch_size": 64, "pretrain_budget": 2**12, "rl_rounds": 3,
                  "samples_per_round": 200, "rl_long_per_round": 2, "star_steps": 5,
                  "eval_size": 100, "seeds": (0,), "workers": 1},
        "cpu": {},
        "paper": {"d": 32, "d_values": (4, 8, 16, 32, 48, 64), "pretrain_budget": 2**23,
                  "eval_size": 2000, "rl_rounds": 30},
    }
    CHAPTER: ClassVar[str] = "03_linear_theory"
    CPU_ONLY: ClassVar[bool] = True  # its paper preset runs in minutes on the CPU

    device: str = param("cpu", "the linear models always run on the cpu ('auto' or 'cpu')")
    d: int = param(16, "input bits in experiments 1 and 2")
    p_cot_values: tuple[float, ...] = param(tuple(round(0.25 + 0.01 * i, 2) for i in range(18)),
                                            "fine p_cot grid around 1/3 (experiment 1)")
    rl_p_cot_values: tuple[float, ...] = param((0.2, 0.1, 0.03, 0.01, 0.003),
                                               "starting points of RL (experiment 2)")
    d_values: tuple[int, ...] = param((4, 8, 16, 32), "input bits of experiment 3")
    sgd_steps_per_bit: int = param(20, "pre-training: at least this many SGD steps per input bit")
    batch_size: int = param(256, "sequences per SGD step")
    pretrain_learning_rate: float = param(6.0, "pre-training SGD learning rate (decays linearly to 0)")
    long_demos_per_bit: int = param(32, "... and until this many long demos per bit (expected)")
    pretrain_budget: int = param(2**20, "... but at most this many pre-training sequences")
    rl_method: tuple[str, ...] = param(RL_METHODS, "RL methods of experiment 2; experiment 3 uses "
                                                   "the first")
    rl_rounds: int = param(20, "RL rounds")
    samples_per_round: int = param(3200, "least sequences sampled per RL round (paper: 3,200)")
    star_steps: int = param(100, "SGD steps of STaR fine-tuning on the kept samples per round")
    star_learning_rate: float = param(1.0, "their learning rate (decays linearly to 0 in a round)")
    learning_rate: float = param(10.0, "REINFORCE learning rate")
    rl_long_per_round: int = param(32, "RL samples per round: enough for this many long ones")
    temperature: float = param(1.0, "RL sampling temperature")
    eval_size: int = param(1000, "test prompts per model and evaluation")

    def check(self) -> None:
        require(self.device in ("auto", "cpu"), "device", self.device,
                "'auto' or 'cpu': the linear models of this chapter run on the cpu")
        require(self.d >= 3, "d", self.d, "an integer >= 3 (for d = 2 the parity is a feature)")
        require_list(self, "d_values", "integers >= 3", lambda d: d >= 3)
        for name in ("p_cot_values", "rl_p_cot_values"):
            require_list(self, name, "numbers strictly between 0 and 1", lambda p: 0 < p < 1)
        require_list(self, "rl_method", f"values from {RL_METHODS}", lambda m: m in RL_METHODS)
        for name in ("sgd_steps_per_bit", "batch_size", "long_demos_per_bit", "rl_rounds",
                     "samples_per_round", "star_steps", "eval_size", "rl_long_per_round"):
            require(getattr(self, name) >= 1, name, getattr(self, name), "an integer >= 1")
        for name in ("pretrain_learning_rate", "star_learning_rate", "learning_rate"):
            require(getattr(self, name) > 0, name, getattr(self, name), "a number > 0")
        require_temperature(self)
        most = self.sgd_steps_per_bit * max(self.d, *self.d_values) * self.batch_size
        require(self.pretrain_budget >= most, "pretrain_budget", self.pretrain_budget,
                f"at least sgd_steps_per_bit * max(d, d_values) * batch_size = {most} sequences")

    @property
    def torch_device(self) -> str:
        return "cpu"

    def scale(self) -> str:
        return f"d = {self.d}, {super().scale()}"


def predicted_rounds(p0: float) -> float:
    """Rounds until the odds p/(1-p), doubling each round, pass 1/2: log2((1-p)/p) - 1."""
    return math.log2((1 - p0) / p0) - 1


def pretrain_steps(cfg: LinearTheoryConfig, p_cot: float, d: int) -> int:
    """Pre-training steps: at least sgd_steps_per_bit * d, enough to see long_demos_per_bit * d
    long demonstrations in expectation, at most the budget."""
    want = math.ceil(cfg.long_demos_per_bit * d / (p_cot * cfg.batch_size))
    return min(max(cfg.sgd_steps_per_bit * d, want), cfg.pretrain_budget // cfg.batch_size)


def rl_samples_per_round(cfg: LinearTheoryConfig, p_cot: float) -> int:
    """RL samples per round: enough for ``rl_long_per_round`` long responses from the model
    pre-trained at p_cot (expected), at least samples_per_round, at most MAX_SAMPLES_PER_ROUND."""
    want = math.ceil(cfg.rl_long_per_round / p_cot)
    return min(max(cfg.samples_per_round, want), MAX_SAMPLES_PER_ROUND)


@torch.no_grad()
def evaluate(W: torch.Tensor, d: int, n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Per-model test metrics (each (B,)) on n fresh prompts, greedy and at temperature 1."""
    x = sample_prompts_batch(W.shape[0], n, d, gen, split="test")
    greedy, sample = generate(W, x, 0.0, gen), generate(W, x, 1.0, gen)
    return {  # float64, so that e.g. 950/1000 >= SUCCESS here and in the saved metrics alike
        "acc_greedy": greedy.correct.double().mean(1),
        "acc_sample": sample.correct.double().mean(1),
        "len_median_greedy": greedy.length.double().median(1).values,
        "frac_long_sample": (sample.length == d).double().mean(1),
    }


def pretrain(cfg: LinearTheoryConfig, d: int, p_cot: list[float], gen: torch.Generator,
             n_evals: int = 0) -> tuple[torch.Tensor, list[tuple[int, dict]]]:
    """SGD on the NTP loss with fresh batches, one model per p_cot value.

    Model b trains for :func:`pretrain_steps` steps (then stays frozen). Returns the weights and
    ``n_evals`` evenly spaced evaluations ``(step, metrics)``.
    """
    p = torch.tensor(p_cot)
    steps = torch.tensor([pretrain_steps(cfg, q, d) for q in p_cot])
    total = int(steps.max())
    eval_at = {round(total * (i + 1) / n_evals) for i in range(n_evals)}
    W, curve = init_weights(len(p), d), []
    for step in range(total):
        active = (steps > step).nonzero()[:, 0]
        ro = sample_mixture(p[active], cfg.batch_size, d, gen)
        lr = cfg.pretrain_learning_rate * (1 - step / steps).clamp(min=0)            # linear decay per model
        sgd_step(W, linear_ntp_loss(W[active], ro), lr)
        if step + 1 in eval_at:
            curve.append((step + 1, evaluate(W, d, cfg.eval_size, gen)))
    return W.detach(), curve


def _rl_update(W: torch.Tensor, method: str, ro: Rollouts, cfg: LinearTheoryConfig,
               gen: torch.Generator) -> None:
    """One RL round on sampled rollouts ``ro``: STaR fine-tuning or one REINFORCE step."""
    reward = ro.correct.float()
    if method == "reinforce":
        adv = reward - reward.mean(1, keepdim=True)
        loss = (adv * token_nll(W, ro).sum(-1)).mean(1)   # -E[adv * log pi(response)]
        sgd_step(W, loss, cfg.learning_rate)
        return
    kept = reward.sum(1).long()                               # STaR: keep the correct ones
    order = torch.argsort(reward, dim=1, descending=True, stable=True)
    lr = cfg.star_learning_rate * (kept > 0).float()                     # nothing kept: no update
    for step in range(cfg.star_steps):
        j = (torch.rand(len(kept), cfg.batch_size, generator=gen) * kept[:, None].clamp(min=1))
        batch = ro.select(order.gather(1, j.long()))
        sgd_step(W, linear_ntp_loss(W, batch), lr * (1 - step / cfg.star_steps))


def post_train(W: torch.Tensor, cfg: LinearTheoryConfig, d: int, method: str,
               gen: torch.Generator, stop_early: bool = False) -> list[dict]:
    """``rl_rounds`` rounds of RL on copies of the models ``W``; per-round metrics per model.

    Round n reports the model after n updates: greedy test metrics and the long fraction,
    accuracy and mean reward of its ``samples_per_round`` samples (from which update n+1 learns).
    With ``stop_early`` it stops once every model is solved (greedy accuracy >= SUCCESS) or stuck
    (not one correct long sample this round: nothing pushes the long fraction up).
    """
    W = W.clone().requires_grad_(True)
    rounds = []
    for n in range(cfg.rl_rounds + 1):
        metrics = evaluate(W, d, cfg.eval_size, gen)
        x = sample_prompts_batch(W.shape[0], cfg.samples_per_round, d, gen)
        ro = generate(W.detach(), x, cfg.temperature, gen)
        metrics["frac_long_sample"] = (ro.length == d).double().mean(1)
        metrics["reward_mean"] = ro.correct.double().mean(1)
        rounds.append(metrics)
        stuck = ~((ro.length == d) & ro.correct).any(1)
        if n == cfg.rl_rounds or (stop_early and bool(((metrics["acc_greedy"] >= SUCCESS)
                                                       | stuck).all())):
            break
        _rl_update(W, method, ro, cfg, gen)
    return rounds


def _model_rows(metrics: dict[str, torch.Tensor], b: int, **keys: Any) -> list[dict]:
    return metric_rows({k: float(v[b]) for k, v in metrics.items()}, **keys)


def _threshold_job(cfg: LinearTheoryConfig, seed: int) -> list[dict]:
    gen = generator("linear_threshold", seed)
    _, curve = pretrain(cfg, cfg.d, list(cfg.p_cot_values), gen, n_evals=4)
    rows = []
    for step, metrics in curve:
        for b, p in enumerate(cfg.p_cot_values):
            rows += _model_rows(metrics, b, experiment="threshold", phase="pretrain", p_cot=p,
                                d=cfg.d, seed=seed, step=step,
                                sequences_seen=step * cfg.batch_size)
    return rows


def _rl_job(cfg: LinearTheoryConfig, p: float, seed: int) -> list[dict]:
    gen = generator("linear_rl", seed)
    n = rl_samples_per_round(cfg, p)
    run_cfg = dataclasses.replace(cfg, samples_per_round=n)
    W, _ = pretrain(run_cfg, cfg.d, [p], gen)
    seen = pretrain_steps(cfg, p, cfg.d) * cfg.batch_size
    pred = star_recursion(p, cfg.rl_rounds)
    rows = []
    for method in cfg.rl_method:
        for k, metrics in enumerate(post_train(W, run_cfg, cfg.d, method, gen, stop_early=True)):
            extra = {"frac_long_predicted": pred[k]} if method == "star" else {}
            rows += metric_rows({**{m: float(v[0]) for m, v in metrics.items()}, **extra},
                                experiment="rl", phase="rl", method=method, reward="end",
                                temperature=cfg.temperature, p_cot=p, d=cfg.d, seed=seed,
                                step=k, sequences_seen=seen + k * n)
    return rows


def _cost_job(cfg: LinearTheoryConfig, d: int, schedule: str, seed: int) -> list[dict]:
    gen = generator("linear_cost", seed, d)
    p = SCHEDULES[schedule](d)
    n = rl_samples_per_round(cfg, p)
    run_cfg = dataclasses.replace(cfg, samples_per_round=n)
    W, _ = pretrain(run_cfg, d, [p], gen)
    rounds = post_train(W, run_cfg, d, cfg.rl_method[0], gen, stop_early=True)
    hit = [i for i, m in enumerate(rounds) if m["acc_greedy"][0] >= SUCCESS]
    rl_rounds = hit[0] if hit else len(rounds) - 1    # censored: the rounds it ran
    pre = pretrain_steps(cfg, p, d) * cfg.batch_size
    return metric_rows(
        {"total_cost": pre + rl_rounds * n, "pretrain_sequences": pre, "samples_per_round": n,
         "rl_rounds_to_success": rl_rounds, "censored": float(not hit)},
        experiment=f"cost p_cot={schedule}", phase="rl", method=cfg.rl_method[0],
        temperature=cfg.temperature, p_cot=p, d=d, seed=seed)


JOBS = {"threshold": _threshold_job, "rl": _rl_job, "cost": _cost_job}


def _cached_job(cfg: LinearTheoryConfig, name: str, *args: Any) -> list[dict]:
    """One job of experiment ``name`` (a key of :data:`JOBS`), cached under ``cfg.path`` (keyed by
    the config, the code and the job's arguments)."""
    tag = "-".join(map(str, args))
    path = cfg.path / "runs" / f"{cfg.key()}-{source_hash()}" / f"{name}-{tag}.pt"
    return cached(path, lambda: JOBS[name](cfg, *args))


def stages(cfg: LinearTheoryConfig) -> list[Stage]:
    """Experiment 1: pre-training on the p_cot grid, evaluated at 4 points during training, per
    seed. Experiment 2: every method in ``rl_method`` after pre-training at each rl_p_cot value.
    Experiment 3: total sequences to greedy accuracy >= 0.95 versus d, three p_cot schedules."""
    return [
        Stage("threshold", _cached_job, [(cfg, "threshold", s) for s in cfg.seeds]),
        Stage("rl", _cached_job, [(cfg, "rl", p, s) for p in sorted(cfg.rl_p_cot_values)
                                  for s in cfg.seeds]),
        Stage("cost", _cached_job, [(cfg, "cost", d, name, s) for d in sorted(cfg.d_values, reverse=True)
                                    for name in SCHEDULES for s in cfg.seeds]),
    ]


def threshold_estimate(p_cot: np.ndarray, acc: np.ndarray, level: float = 0.75) -> float:
    """First p_cot where the (seed-mean) greedy accuracy crosses ``level``, interpolated."""
    order = np.argsort(p_cot)
    p, a = np.asarray(p_cot)[order], np.asarray(acc)[order]
    for i in range(1, len(p)):
        if a[i - 1] < level <= a[i]:
            return float(p[i - 1] + (level - a[i - 1]) * (p[i] - p[i - 1]) / (a[i] - a[i - 1]))
    return float("nan")


def loglog_slope(d: np.ndarray, cost: np.ndarray) -> float:
    """Least-squares slope of log(cost) against log(d)."""
    return float(np.polyfit(np.log(d), np.log(cost), 1)[0])


def rounds_to_success(rl: pd.DataFrame, max_rounds: int) -> pd.DataFrame:
    """First RL round with greedy accuracy >= 0.95 per (method, p_cot, seed); censored if none."""
    acc = rl[rl.metric == "acc_greedy"]
    out = []
    for (method, p, seed), g in acc.groupby(["method", "p_cot", "seed"]):
        hit = g[g.value >= SUCCESS].step
        out.append({"method": method, "p_cot": p, "seed": seed, "censored": hit.empty,
                    "rounds": max_rounds if hit.empty else int(hit.min())})
    return pd.DataFrame(out)


def summary_rows(cfg: LinearTheoryConfig, thr: pd.DataFrame, rl: pd.DataFrame, cost: pd.DataFrame
                 ) -> list[dict]:
    """The numbers the claims decide on, from the three experiments' rows: the 75% crossing of
    the seed-mean greedy accuracy, the log-log slope of cost against d per schedule (d where every
    seed succeeded, at least two), and STaR's largest gap to the recursion over rounds 1-3."""
    last = thr[thr.step == thr.step.max()]
    mean = last.pivot_table(index=["p_cot", "seed"], columns="metric", values="value").groupby("p_cot").mean()
    out = metric_rows({"threshold_estimate": threshold_estimate(mean.index.to_numpy(),
                                                                mean["acc_greedy"].to_numpy())},
                      experiment="threshold", phase="pretrain", d=cfg.d)
    for name, s in cost_slopes(cost).items():
        out += metric_rows({"cost_loglog_slope": s}, experiment=f"cost p_cot={name}", phase="rl",
                           method=cfg.rl_method[0])
    dev = star_gaps(rl)
    dev3 = float(dev[dev.index.get_level_values("step").isin([1, 2, 3])].max()) if len(dev) else np.nan
    return out + metric_rows({"star_max_dev_rounds_1_3": dev3}, experiment="rl", phase="rl",
                             method="star", d=cfg.d)


def star_gaps(rl: pd.DataFrame) -> pd.Series:
    """|STaR's long fraction - the recursion| per (p_cot, round), means over seeds."""
    star = rl[rl.method == "star"]
    fl = star[star.metric == "frac_long_sample"].groupby(["p_cot", "step"]).value.mean()
    pred = star[star.metric == "frac_long_predicted"].groupby(["p_cot", "step"]).value.mean()
    return (fl - pred).abs()


def cost_by_d(cost: pd.DataFrame, schedule: str) -> pd.DataFrame:
    """Mean cost and whether any seed was censored, per d, for one p_cot schedule."""
    wide = cost.pivot_table(index=["experiment", "p_cot", "d", "seed"], columns="metric",
                            values="value").reset_index()
    g = wide[wide.experiment == f"cost p_cot={schedule}"]
    return g.groupby("d").agg(cost=("total_cost", "mean"), censored=("censored", "max")).reset_index()


def cost_slopes(cost: pd.DataFrame) -> dict[str, float]:
    """The log-log slope of cost against d for the polynomial schedules (uncensored d, >= 2)."""
    slopes = {}
    for name in SCHEDULES:
        ok = cost_by_d(cost, name)
        ok = ok[ok.censored == 0]
        if name != "2^-d" and len(ok) >= 2:
            slopes[name] = loglog_slope(ok.d.to_numpy(), ok.cost.to_numpy())
    return slopes


def _rows(done: Done) -> dict[str, list[dict]]:
    return {name: [r for _, job_rows in done[name] for r in job_rows] for name in JOBS}


def experiments(done: Done) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The rows of experiments 1, 2 and 3 (threshold, rl, cost), each as a frame."""
    parts = _rows(done)
    return pd.DataFrame(parts["threshold"]), pd.DataFrame(parts["rl"]), pd.DataFrame(parts["cost"])


def rows(cfg: LinearTheoryConfig, done: Done) -> list[dict]:
    """The three experiments' rows, then :func:`summary_rows`."""
    parts = _rows(done)
    return parts["threshold"] + parts["rl"] + parts["cost"] + summary_rows(cfg, *experiments(done))



# --- what the notebook shows ---------------------------------------------------------------------
def final_means(thr: pd.DataFrame) -> pd.DataFrame:
    """Experiment 1 at the end of pre-training: every metric per p_cot (mean over seeds)."""
    last = thr[thr.step == thr.step.max()]
    final = last.pivot_table(index=["p_cot", "seed"], columns="metric", values="value").reset_index()
    return final.groupby("p_cot").mean(numeric_only=True)


def threshold_values(thr: pd.DataFrame, df: pd.DataFrame) -> dict[str, float]:
    """The numbers the text quotes on experiment 1: the 75% crossing (as in metrics.csv), the
    largest calibration error, the greedy accuracy well below the threshold and at the top."""
    mean = final_means(thr)
    return {"threshold_estimate": float(_metric(df, "threshold_estimate").iloc[0]),
            "calib_err": float((mean["frac_long_sample"] - mean.index).abs().max()),
            "acc_low": float(mean.loc[mean.index <= 0.3, "acc_greedy"].mean()),  # well below 1/3
            "acc_top": float(mean["acc_greedy"].iloc[-1])}


def star_long_table(rl: pd.DataFrame, rounds: int = 5) -> pd.DataFrame:
    """STaR's long fraction and the recursion per round (rows, up to ``rounds``) and p_cot (mean
    over seeds)."""
    star = rl[rl.method == "star"]
    fl = star[star.metric == "frac_long_sample"].groupby(["p_cot", "step"]).value.mean()
    pred = star[star.metric == "frac_long_predicted"].groupby(["p_cot", "step"]).value.mean()
    table = pd.DataFrame({"measured": fl, "recursion": pred}).unstack(0)
    return table[table.index <= rounds]


def rounds_values(rl: pd.DataFrame, df: pd.DataFrame, cfg: LinearTheoryConfig) -> dict[str, float]:
    """The numbers the text quotes on experiment 2: the slope of STaR's rounds against
    log2((1-p)/p) (p_cot where every seed succeeded, at least two), its gap to the recursion (as
    in metrics.csv) and the fewest and most rounds it needed (mean over seeds)."""
    star = rounds_to_success(rl, cfg.rl_rounds)
    star = star[star.method == "star"].groupby("p_cot").agg(rounds=("rounds", "mean"),
                                                            censored=("censored", "any"))
    fit = star[~star.censored]
    slope = (float(np.polyfit(np.log2((1 - fit.index) / fit.index), fit.rounds, 1)[0])
             if len(fit) >= 2 else np.nan)
    return {"rounds_slope": slope,
            "star_dev3": float(_metric(df, "star_max_dev_rounds_1_3").iloc[0]),
            "star_rounds_min": float(star.rounds.min()) if len(star) else np.nan,
            "star_rounds_max": float(star.rounds.max()) if len(star) else np.nan}


def rounds_table(rl: pd.DataFrame, cfg: LinearTheoryConfig) -> pd.DataFrame:
    """Rounds to greedy accuracy >= :data:`SUCCESS` and the censored fraction per method and
    p_cot (mean over seeds)."""
    return rounds_to_success(rl, cfg.rl_rounds).groupby(["method", "p_cot"])[["rounds", "censored"]].mean()


def cost_wide(cost: pd.DataFrame) -> pd.DataFrame:
    """Experiment 3, one column per metric (columns experiment, p_cot, d, seed, ...)."""
    return cost.pivot_table(index=["experiment", "p_cot", "d", "seed"], columns="metric",
                            values="value").reset_index()


def censored_ds(cost: pd.DataFrame) -> list[int]:
    """The d where p_cot = 2^-d failed on every seed."""
    cens = cost_wide(cost)
    cens = cens[cens.experiment == "cost p_cot=2^-d"].groupby("d").censored.mean()
    return [int(v) for v in cens[cens == 1].index]


def cost_report(cost: pd.DataFrame) -> str:
    """The log-log slopes and where p_cot = 2^-d always failed, one line each."""
    lines = [f"log-log slope of total cost vs d for p_cot = {name}: {s:.2f}"
             for name, s in cost_slopes(cost).items()]
    return "\n".join([*lines, f"p_cot = 2^-d censored (every seed) at d = {censored_ds(cost)}"])


def cost_values(cost: pd.DataFrame) -> dict[str, Any]:
    """The numbers the text quotes on experiment 3: both slopes, and the 2^-d failure in words."""
    slopes, cens = cost_slopes(cost), censored_ds(cost)
    return {"slope_1_d": slopes.get("1/d", np.nan), "slope_1_d2": slopes.get("1/d^2", np.nan),
            "exp_sentence": f"With p_cot = 2^-d every seed fails from d = {cens[0]} on (within our one "
            "budget): the model sees almost no long demonstration, and even a round of 2^15 samples "
            "draws no correct long response to reinforce." if cens else
            "With p_cot = 2^-d some seed succeeded at every d we ran."}


def cost_table(cost: pd.DataFrame) -> pd.DataFrame:
    """Per schedule and d, the cost's parts and the censored fraction (mean over seeds)."""
    cols = ["pretrain_sequences", "samples_per_round", "rl_rounds_to_success", "total_cost", "censored"]
    return cost_wide(cost).groupby(["experiment", "d"])[cols].mean()


# --- claims (paper.md sec. 2-3: Theorems 1 and 2) -------------------------------------------------
def _metric(df: pd.DataFrame, metric: str) -> pd.Series:
    return df[df.metric == metric].value


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


CHAPTER = Chapter(LinearTheoryConfig, rows, stages, claims=(
    Claim("thm1", "2", "Theorem 1: for autoregressive linear models, greedy accuracy after "
          "next-token prediction jumps from 1/2 to 1 at p_cot = 1/3", "a theorem (any d >= 2)",
          "the 75% crossing within 0.05 of 1/3", "fig-03-threshold", linear_threshold,
          paper="a jump at p_cot = 1/3 (Theorem 1, for d >= 2 and p_cot in (0, 3/4))"),
    Claim("thm2", "3", "Each STaR round maps the long fraction p to 2p/(1+p) (the recursion behind "
          "Theorem 2)", "a theorem", "max gap <= 0.1 over rounds 1-3", "fig-03-rounds", linear_star_recursion,
          paper="p_n = 2 p_{n-1} / (1 + p_{n-1}), so O(log((1-p)/p)) rounds (Sec. 3.2, quoted; Theorem 2)"),
    Claim("poly", "3", "Pre-training + RL costs poly(d) unless p_cot is exponentially small in d",
          "a theorem", "log-log slope of cost <= 4 for p_cot = 1/d and 1/d^2; p_cot = 2^-d fails at the "
          "largest d", "fig-03-cost", linear_polynomial_cost,
          paper="poly(d) unless p_cot is exponentially small in d (Theorem; abstract)"),
))
