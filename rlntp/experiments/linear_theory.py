"""Chapter 03: the linear theory (paper Sec. 4, Theorems 1-2), simulated with linear AR models.

Three experiments on :mod:`rlntp.models.linear`, each vectorised over p_cot (one batch of
models per seed; seeds run in parallel processes):

1. :func:`threshold_rows`: SGD pre-training on a fine p_cot grid: greedy accuracy jumps at 1/3.
2. :func:`post_training_rows`: STaR / REINFORCE after pre-training: the long fraction per round against
   the STaR recursion p_n = 2 p_{n-1} / (1 + p_{n-1}).
3. :func:`cost_search`: the total budget (pre-training plus RL sequences) from which STaR reaches
   greedy accuracy >= 0.95, measured by a search, versus d for p_cot = 1/d, 1/d^2 and 2^-d
   (censored at a cap), and whether it grows like a polynomial of bounded degree.

Pre-training (ours): plain SGD on fresh batches, the learning rate decaying linearly to 0. In
experiments 1 and 2 it runs for at least ``sgd_steps_per_bit * d`` steps and long enough to see
``long_demos_per_bit * d`` long demonstrations in expectation, but at most ``pretrain_budget``
sequences; in experiment 3 the search sets its length. Every experiment returns tidy metric rows
(:func:`rlntp.results.metric_rows`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from rlntp.chapter import Chapter, Done
from rlntp.claims import Claim, Result, fmt
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
from rlntp.task import is_test

RL_METHODS = ("star", "reinforce")
SCHEDULES = {"1/d": lambda d: 1 / d, "1/d^2": lambda d: 1 / d**2, "2^-d": lambda d: 2.0**-d}
SUCCESS = 0.95  # greedy accuracy that counts as "learned parity"
MAX_SAMPLES_PER_ROUND = 2**15  # cap of the RL samples per round
# a cost counts from d = 8: 33 held-out prompts there (4 at d = 6), enough for 0.95 to mean something
MIN_COST_D = 8
# polynomial: cost(2d) <= 2^5 cost(d). Pre-training ~ (d / p_cot) log d has degree ~3.4 over
# d = 8 -> 16 at p_cot = 1/d^2; +1.6 for the search's resolution and seed noise; 2^-d gives ~8
MAX_DEGREE = 5.0
# O(log) rounds: the slope of STaR's rounds against log2((1-p)/p) is <= 2 (the recursion gives 1;
# 2 lets a round achieve only half a doubling of the odds) ...
ROUNDS_SLOPE = 2.0
# ... and each p_cot needs <= 3 + 2 log2((1-p)/p) rounds (the recursion: log2((1-p)/p) - 1 to
# pass 1/3, plus a margin above 1/3 for 95% greedy accuracy)
ROUNDS_INTERCEPT = 3.0


@dataclasses.dataclass(frozen=True)
class LinearTheoryConfig(ExperimentConfig):
    """Knobs of chapter 03; the defaults are the ``cpu`` preset."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"d": 5, "p_cot_values": (0.25, 0.3, 0.35, 0.4), "rl_p_cot_values": (0.1, 0.02),
                  "d_values": (4, 8), "sgd_steps_per_bit": 5, "long_demos_per_bit": 4,
                  "batch_size": 64, "pretrain_budget": 2**12, "cost_cap": 2**12, "rl_rounds": 3,
                  "samples_per_round": 200, "rl_long_per_round": 2, "star_steps": 5,
                  "eval_size": 100, "seeds": (0,), "workers": 1},
        "cpu": {},
        "paper": {"d": 32, "d_values": (8, 16, 32, 64), "pretrain_budget": 2**23,
                  "cost_cap": 2**24,
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
    d_values: tuple[int, ...] = param((8, 16), "input bits of experiment 3 (costs count from 8 "
                                      "bits on, with 33 held-out prompts)")
    sgd_steps_per_bit: int = param(20, "pre-training: at least this many SGD steps per input bit")
    batch_size: int = param(256, "sequences per SGD step")
    pretrain_learning_rate: float = param(6.0, "pre-training SGD learning rate (decays linearly to 0)")
    long_demos_per_bit: int = param(32, "... and until this many long demos per bit (expected)")
    pretrain_budget: int = param(2**20, "... but at most this many pre-training sequences")
    cost_start: int = param(2**11, "experiment 3, the smallest pre-training budget tried but 0 (sequences)")
    cost_per_doubling: int = param(1, "experiment 3, pre-training budgets tried per doubling ...")
    # seeds 100, 101 (cost_cap 2^18, 2^19): p_cot = 1/d^2 at d = 16 succeeded only from 2^18
    # pre-training sequences (cost 3.1e5, 3.2e5); 2^-d censored at d = 16 (and at d = 8 with 2^18)
    cost_cap: int = param(2**19, "... up to this many (the search's cap)")
    rl_method: tuple[str, ...] = param(RL_METHODS, "RL methods of experiment 2; experiment 3 uses "
                                                   "the first, with samples_per_round a round")
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
                     "samples_per_round", "star_steps", "eval_size", "rl_long_per_round",
                     "cost_start", "cost_per_doubling", "cost_cap"):
            require(getattr(self, name) >= 1, name, getattr(self, name), "an integer >= 1")
        for name in ("pretrain_learning_rate", "star_learning_rate", "learning_rate"):
            require(getattr(self, name) > 0, name, getattr(self, name), "a number > 0")
        require_temperature(self)
        most = self.sgd_steps_per_bit * self.d * self.batch_size
        require(self.pretrain_budget >= most, "pretrain_budget", self.pretrain_budget,
                f"at least sgd_steps_per_bit * d * batch_size = {most} sequences")
        require(self.cost_cap >= self.cost_start, "cost_cap", self.cost_cap,
                f"at least cost_start = {self.cost_start} sequences")

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
             n_evals: int = 0, steps: list[int] | None = None
             ) -> tuple[torch.Tensor, list[tuple[int, dict]]]:
    """SGD on the NTP loss with fresh batches, one model per p_cot value.

    Model b trains for ``steps[b]`` steps (default: :func:`pretrain_steps`), then stays frozen.
    Returns the weights and ``n_evals`` evenly spaced evaluations ``(step, metrics)``.
    """
    p = torch.tensor(p_cot)
    steps = torch.tensor(steps or [pretrain_steps(cfg, q, d) for q in p_cot])
    total = int(steps.max())
    eval_at = {round(total * (i + 1) / n_evals) for i in range(n_evals)}
    W, curve = init_weights(len(p), d), []
    for step in range(total):
        active = (steps > step).nonzero()[:, 0]
        ro = sample_mixture(p[active], cfg.batch_size, d, gen)
        lr = cfg.pretrain_learning_rate * (1 - step / steps.clamp(min=1)).clamp(min=0)  # decay per model
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
               gen: torch.Generator, stop_early: bool = False,
               matters: Callable[[list[dict]], torch.Tensor] | None = None) -> list[dict]:
    """``rl_rounds`` rounds of RL on copies of the models ``W``; per-round metrics per model.

    Round n reports the model after n updates: greedy test metrics and the long fraction,
    accuracy and mean reward of its ``samples_per_round`` samples (from which update n+1 learns).
    With ``stop_early`` it stops once every model is solved (greedy accuracy >= SUCCESS), stuck
    (not one correct long sample this round: nothing pushes the long fraction up) or, by
    ``matters(rounds so far)`` ((B,) bool), no longer of interest.
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
        going = (metrics["acc_greedy"] < SUCCESS) & ((ro.length == d) & ro.correct).any(1)
        if matters is not None:
            going &= matters(rounds)
        if n == cfg.rl_rounds or (stop_early and not bool(going.any())):
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


def budget_steps(cfg: LinearTheoryConfig) -> list[int]:
    """The pre-training budgets (in SGD steps) experiment 3 tries: none (RL from the zero model),
    then ``cost_start`` sequences times 2^(k / cost_per_doubling), k = 0, 1, ..., up to
    ``cost_cap``."""
    n = int(math.log2(cfg.cost_cap / cfg.cost_start) * cfg.cost_per_doubling + 1e-9)
    return sorted({0} | {max(1, round(cfg.cost_start * 2 ** (k / cfg.cost_per_doubling) / cfg.batch_size))
                         for k in range(n + 1)})


def cost_search(cfg: LinearTheoryConfig, d: int, p: float, gen: torch.Generator) -> dict[str, float]:
    """The smallest total budget (pre-training + RL sequences) from which RL succeeds, measured.

    One model per budget of :func:`budget_steps` (trained as one batch), then RL from each within
    the fixed RL budget (``rl_rounds`` rounds of ``samples_per_round``), stopped once no model can
    still beat the cheapest success; the cost is the smallest total over the models that reach
    greedy accuracy >= SUCCESS. Without one it is censored: the cost is then only bounded below,
    by the largest budget (``cost_low``; ``cost_high`` inf).
    """
    B, n, steps = cfg.batch_size, cfg.samples_per_round, budget_steps(cfg)
    pre = torch.tensor(steps) * B

    def totals(rounds: list[dict]) -> torch.Tensor:     # per model: the total at its first success
        solved = torch.stack([m["acc_greedy"] >= SUCCESS for m in rounds])
        first = torch.where(solved.any(0), solved.int().argmax(0), 10**9)
        return (pre + first * n).double()

    def matters(rounds: list[dict]) -> torch.Tensor:    # one more round could still beat the best
        return pre + len(rounds) * n < totals(rounds).min()

    W, _ = pretrain(cfg, d, [p] * len(steps), gen, steps=steps)
    rounds = post_train(W, cfg, d, cfg.rl_method[0], gen, stop_early=True, matters=matters)
    cost = totals(rounds)
    b = int(cost.argmin())
    if cost[b] >= 10**9:
        top = float(pre[-1])
        return {"total_cost": top, "pretrain_sequences": top, "censored": 1.0, "cost_low": top,
                "cost_high": math.inf}
    total = float(cost[b])
    return {"total_cost": total, "pretrain_sequences": float(pre[b]),
            "rl_rounds_to_success": (total - float(pre[b])) / n, "censored": 0.0, "cost_low": total,
            "cost_high": total}


def _cost_job(cfg: LinearTheoryConfig, d: int, schedule: str, seed: int) -> list[dict]:
    gen = generator("linear_cost", seed, d)
    p = SCHEDULES[schedule](d)
    return metric_rows({**cost_search(cfg, d, p, gen), "samples_per_round": cfg.samples_per_round},
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
    the seed-mean greedy accuracy and STaR's largest gap to the recursion over rounds 1-3 (the cost
    and rounds criteria read experiments 2 and 3's rows)."""
    last = thr[thr.step == thr.step.max()]
    mean = last.pivot_table(index=["p_cot", "seed"], columns="metric", values="value").groupby("p_cot").mean()
    out = metric_rows({"threshold_estimate": threshold_estimate(mean.index.to_numpy(),
                                                                mean["acc_greedy"].to_numpy())},
                      experiment="threshold", phase="pretrain", d=cfg.d)
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


def cost_bounds(cost: pd.DataFrame, schedule: str) -> pd.DataFrame:
    """Per d, for one p_cot schedule: the geometric seed-means of the cost's lower and
    upper bounds (:func:`cost_search`; 0 and inf where unbounded) and whether a seed was censored."""
    w = cost_wide(cost)
    g = w[w.experiment == f"cost p_cot={schedule}"]
    with np.errstate(divide="ignore", invalid="ignore"):
        return g.groupby("d").agg(low=("cost_low", _gmean), high=("cost_high", _gmean),
                                  censored=("censored", "max"))


def _gmean(v: pd.Series) -> float:
    return float(np.exp(np.log(v.to_numpy(float)).mean()))


def growth_degrees(cost: pd.DataFrame, schedule: str) -> pd.DataFrame:
    """Per doubling (d, 2d) of the measured d: the degree k in cost(2d) = 2^k cost(d), as an
    interval [low, high] from the cost bounds (nan where a bound is undefined)."""
    b = cost_bounds(cost, schedule)
    b = b[b.index >= MIN_COST_D]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = [{"d": d, "low": np.log2(b.low[2 * d] / b.high[d]), "high": np.log2(b.high[2 * d] / b.low[d])}
               for d in b.index if 2 * d in b.index]
    return pd.DataFrame(out, columns=["d", "low", "high"])


def polynomial(degrees: pd.DataFrame) -> bool | None:
    """Whether the cost grows at most like d^MAX_DEGREE at every doubling of d: False if some
    degree is surely above, True if every one is surely at most, else None (undecided)."""
    if (degrees.low > MAX_DEGREE).any():
        return False
    return True if len(degrees) and (degrees.high <= MAX_DEGREE).all() else None


def degree_text(degrees: pd.DataFrame) -> str:
    """The degrees per doubling, e.g. "8->16: 3.1" or "8->16: >= 6.0" (a bound), or "none"."""
    def one(lo: float, hi: float) -> str:
        if lo == hi:
            return fmt(lo, ".1f")
        return f">= {lo:.1f}" if hi == np.inf and np.isfinite(lo) else \
            f"<= {hi:.1f}" if lo == -np.inf and np.isfinite(hi) else "unknown"
    return ", ".join(f"{int(r.d)}->{2 * int(r.d)}: {one(r.low, r.high)}"
                     for r in degrees.itertuples()) or "none"


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
    log2((1-p)/p) (:func:`rounds_slope`) and the criterion's bounds, its gap to the recursion (as in
    metrics.csv) and the fewest and most rounds it needed (mean over seeds)."""
    star = star_rounds(rl, cfg)
    return {"rounds_slope": rounds_slope(star), "rounds_slope_max": ROUNDS_SLOPE,
            "rounds_intercept_max": ROUNDS_INTERCEPT,
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


def held_out_prompts(d: int) -> int:
    """How many of the 2^d prompts are in the held-out test split (:func:`rlntp.task.is_test`)."""
    return int(is_test(torch.tensor(list(itertools.product((0, 1), repeat=d)))).sum())


def cost_values(cost: pd.DataFrame) -> dict[str, str]:
    """The numbers the text quotes on experiment 3: the criterion's degree and smallest d, per
    schedule the degrees per doubling of d (:func:`degree_text`) and the d where some seed's search
    hit the cap."""
    tags = {"1/d": "1_d", "1/d^2": "1_d2", "2^-d": "2_d"}
    out = {"max_degree": f"{MAX_DEGREE:g}", "min_cost_d": MIN_COST_D,
           "held_out_min_d": held_out_prompts(MIN_COST_D), "prompts_min_d": 2**MIN_COST_D}
    for name, tag in tags.items():
        b = cost_bounds(cost, name)
        out[f"degrees_{tag}"] = degree_text(growth_degrees(cost, name))
        out[f"censored_{tag}"] = ", ".join(str(int(d)) for d in b.index[b.censored > 0]) or "none"
    return out


def cost_table(cost: pd.DataFrame) -> pd.DataFrame:
    """Per schedule and d, the cost's parts, bounds and the censored fraction (mean over seeds)."""
    cols = ["pretrain_sequences", "rl_rounds_to_success", "total_cost", "cost_low", "cost_high", "censored"]
    wide = cost_wide(cost)                                     # every column, also where none succeeded
    wide = wide.reindex(columns=[*wide.columns.difference(cols), *cols])
    return wide.groupby(["experiment", "d"])[cols].mean()


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


def _cost_growth(want: dict[str, bool]) -> Callable[[pd.DataFrame, Any], Result]:
    """A criterion: each schedule of ``want`` grows polynomially (True: degree <= MAX_DEGREE at
    every doubling of d) or not (False: above at some doubling), by :func:`polynomial`."""
    def measure(df: pd.DataFrame, cfg: Any) -> Result:
        cost = df[df.experiment.astype(str).str.startswith("cost p_cot=")]
        if cost.empty:
            return Result("", None, "experiment 3 did not run")
        degrees = {name: growth_degrees(cost, name) for name in want}
        poly = {name: polynomial(g) for name, g in degrees.items()}
        text = "; ".join(f"p_cot = {name}: {degree_text(g)}" for name, g in degrees.items())
        text = (f"degree k in cost(2d) = 2^k cost(d) (geometric means over seeds): {text} "
                f"(d in {sorted(int(v) for v in cost.d.unique())}, cap {cfg.cost_cap} sequences)")
        if any(v is not None and v != want[name] for name, v in poly.items()):
            return Result(text, False)
        undecided = [name for name, v in poly.items() if v is None]
        if undecided:
            return Result(text, None, f"no doubling of d >= {MIN_COST_D} decides p_cot = "
                          f"{', '.join(undecided)}: a search censored at the cap, or too few d")
        return Result(text, True)
    return measure


linear_polynomial_cost = _cost_growth({"1/d": True, "1/d^2": True})
linear_exponential_cost = _cost_growth({"2^-d": False})


def star_rounds(df: pd.DataFrame, cfg: Any) -> pd.DataFrame:
    """STaR's rounds to greedy accuracy >= SUCCESS per p_cot (mean over seeds; a seed that never
    succeeded counts rl_rounds, so the mean is then a lower bound), x = log2((1-p)/p)."""
    rl = df[(df.experiment == "rl") & (df.method == "star")]
    r = rounds_to_success(rl, cfg.rl_rounds)
    if r.empty:
        return pd.DataFrame(columns=["x", "rounds", "censored"])
    g = r.groupby("p_cot").agg(rounds=("rounds", "mean"), censored=("censored", "any"))
    return g.assign(x=np.log2((1 - g.index) / g.index))


def rounds_slope(g: pd.DataFrame) -> float:
    """Least-squares slope of :func:`star_rounds`' rounds against x over the p_cot where every seed
    succeeded (nan for fewer than 3)."""
    fit = g[~g.censored]
    return float(np.polyfit(fit.x, fit.rounds, 1)[0]) if len(fit) >= 3 else np.nan


def linear_star_log_rounds(df: pd.DataFrame, cfg: Any) -> Result:
    g = star_rounds(df, cfg)
    if g.empty:
        return Result("", None, "STaR is not in rl_method")
    bound = ROUNDS_INTERCEPT + ROUNDS_SLOPE * g.x
    fit, slope = g[~g.censored], rounds_slope(g)
    pts = ", ".join(f"{p:g}: {r.rounds:.1f}{'+' if r.censored else ''}" for p, r in g.iterrows())
    text = (f"STaR rounds (mean over seeds; + a lower bound) per p_cot {pts}; fitted slope against "
            f"log2((1-p)/p) = {fmt(slope)} over {len(fit)} p_cot where every seed succeeded")
    if (g.rounds > bound).any() or slope > ROUNDS_SLOPE:
        return Result(text, False)
    if len(fit) < 3 or g.censored.any():
        return Result(text, None, "STaR did not succeed on every seed at every p_cot, or at fewer "
                      "than 3 p_cot")
    return Result(text, True)


CHAPTER = Chapter(LinearTheoryConfig, rows, stages, claims=(
    Claim("thm1", "2", "Theorem 1: for autoregressive linear models, greedy accuracy after "
          "next-token prediction jumps from 1/2 to 1 at p_cot = 1/3", "a theorem (any d >= 2)",
          "the 75% crossing within 0.05 of 1/3", "fig-03-threshold", linear_threshold,
          paper="a jump at p_cot = 1/3 (Theorem 1, for d >= 2 and p_cot in (0, 3/4))"),
    Claim("thm2", "3", "Each STaR round maps the long fraction p to 2p/(1+p) (the recursion behind "
          "Theorem 2)", "a theorem", "max gap <= 0.1 over rounds 1-3", "fig-03-rounds", linear_star_recursion,
          paper="p_n = 2 p_{n-1} / (1 + p_{n-1}), so O(log((1-p)/p)) rounds (Sec. 3.2, quoted; Theorem 2)"),
    Claim("thm2_rounds", "3", "Theorem 2: STaR reaches high greedy accuracy in O(log((1-p)/p)) rounds, "
          "with the recursion's constant (one round per doubling of the odds) within a factor 2",
          "a theorem", f"fitted slope of rounds against log2((1-p)/p) <= {ROUNDS_SLOPE:g} and every "
          f"p_cot within {ROUNDS_INTERCEPT:g} + {ROUNDS_SLOPE:g} log2((1-p)/p) rounds", "fig-03-rounds",
          linear_star_log_rounds,
          paper="O(log((1-p_cot)/p_cot)) rounds of STaR (Sec. 3.2; Theorem 2)"),
    Claim("poly", "3", "Pre-training + RL costs poly(d) when p_cot is 1/d or 1/d^2",
          "a theorem", f"cost(2d) <= 2^{MAX_DEGREE:g} cost(d) at every doubling of d >= {MIN_COST_D} "
          "measured, for both schedules (costs measured by a search; one doubling cannot show "
          "growth that keeps increasing)", "fig-03-cost", linear_polynomial_cost,
          paper="poly(d) unless p_cot is exponentially small in d (Theorem; abstract)"),
    Claim("exp", "3", "Pre-training + RL costs more than poly(d) when p_cot = 2^-d",
          "a theorem", f"cost(2d) > 2^{MAX_DEGREE:g} cost(d) at some doubling of d >= {MIN_COST_D} "
          "(a search censored at the cap gives a lower bound)", "fig-03-cost", linear_exponential_cost,
          paper="poly(d) unless p_cot is exponentially small in d (Theorem; abstract)"),
))
